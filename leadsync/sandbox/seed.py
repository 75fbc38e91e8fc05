"""Seed data for the sandbox CRMs: one invented population, seen from HubSpot and from Salesforce.

`generate` draws people (names from several cultures, companies with domains, titles, a
lifecycle funnel, engagement that grows with the stage) and writes each person as a HubSpot
contact, a Salesforce lead, or both, with the small disagreements real portals and orgs have.
It is dirty on purpose, a few percent of each kind: padded and mixed-case emails, missing and
invalid ones, duplicate people, SystemModstamp ties. The sync has to cope with all of it.

Everything comes from one `random.Random(seed)` and the `now` passed in, so the same arguments
give the same data. It is built for 100,000-record benchmarks: strings come from shared tables
and timestamps are integer milliseconds formatted through lookup tables.
"""

from __future__ import annotations

import gc
import math
import random
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from leadsync.sandbox.ids import salesforce_id
from leadsync.sandbox.salesforce_conversion import seeded_contact, seeded_contact_role
from leadsync.sandbox.schema import (
    LEAD,
    LIFECYCLE_STAGES,
    OPPORTUNITY,
    OPPORTUNITY_CONTACT_ROLE,
    SANDBOX_OWNERS,
)
from leadsync.sandbox.seed_details import Details, Place

__all__ = ["SeedContact", "SeedData", "generate"]

_FIRST_CONTACT_ID = 1001  # where the HubSpot emulator numbers contacts from, too


@dataclass(frozen=True, slots=True)
class SeedContact:
    """A HubSpot contact: its record id and its properties, every value a string."""

    id: int
    properties: dict[str, str]


@dataclass(frozen=True, slots=True)
class SeedData:
    """The records to load into the emulators. Salesforce records hold every standard field
    (None when unset) keyed by canonical name; leadsync's own `Leadsync_*__c` fields are absent."""

    hubspot_contacts: list[SeedContact]
    salesforce_leads: list[dict[str, Any]]
    salesforce_opportunities: list[dict[str, Any]]
    # The Contacts converted leads became (ConvertedContactId), one per converted lead.
    salesforce_contacts: list[dict[str, Any]] = field(default_factory=list)
    # The contact role tying each such Contact to the Opportunity its conversion created.
    salesforce_contact_roles: list[dict[str, Any]] = field(default_factory=list)


def generate(*, seed: int, leads: int, overlap: float, now: datetime) -> SeedData:
    """`leads` records per CRM, `overlap` (0..1) of them people present in both CRMs.

    Every timestamp lies in the nine months up to `now` (a naive `now` is taken as UTC), except
    the expected close dates of open opportunities, which lie ahead of it.
    """
    if leads < 0:
        raise ValueError(f"leads must be 0 or more, not {leads}")
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be between 0 and 1, not {overlap}")
    with _collector_paused():
        return _Generator(random.Random(seed), _Clock(now), Details(seed)).build(leads, overlap)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building.

    Hundreds of thousands of fresh dicts trigger it again and again, and each pass rescans the
    growing heap for cycles these records never form: a fifth of the run time, for nothing.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --------------------------------------------------------------------------------------------
# Rates: each is the share of records (or people) that get the treatment.
# --------------------------------------------------------------------------------------------

_DUPLICATE_RATE = 0.02  # records per CRM that are a second record of someone already there
_LINKED_RATE = 0.6  # shared people whose contact carries HubSpot's salesforceleadid
_OTHER_EMAIL_RATE = 0.05  # unlinked shared people known to HubSpot under another address
_PERSONAL_EMAIL_RATE = 0.12
_NON_ASCII_RATE = 0.1
_MISSING_EMAIL_RATE = 0.02
_INVALID_EMAIL_RATE = 0.015
_MESSY_EMAIL_RATE = 0.03  # mixed case and/or whitespace padding
_MODSTAMP_TIE_RATE = 0.04  # leads caught in a mass update that stamps them all alike
_PHONE_RATE = 0.55
_TITLE_RATE = 0.95
_HUBSPOT_REVENUE_RATE = 0.45
_SALESFORCE_REVENUE_RATE = 0.6
_EMPLOYEES_RATE = 0.75
_SALESFORCE_INDUSTRY_RATE = 0.85
_LEAD_SOURCE_RATE = 0.9
_OWNER_BEFORE_SQL_RATE = 0.2
_OPPORTUNITY_RATE = 0.85  # converted leads that got an opportunity at conversion

_DAY_MS = 86_400_000
_WINDOW_DAYS = 274  # about nine months of history
_DAYS_AHEAD = 181  # open opportunities expect to close within half a year

_T = TypeVar("_T")


def _weighted(pairs: Sequence[tuple[_T, int]]) -> tuple[_T, ...]:
    """A table in which each item appears `weight` times: one uniform index draws by weight."""
    return tuple(item for item, weight in pairs for _ in range(weight))


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Culture:
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    # Spellings beyond ASCII that the culture also uses; empty when it has none.
    accented_first_names: tuple[str, ...] = ()
    accented_last_names: tuple[str, ...] = ()


_ENGLISH = _Culture(
    (
        "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
        "William", "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
        "Thomas", "Sarah", "Charles", "Karen", "Christopher", "Nancy", "Daniel", "Lisa",
        "Matthew", "Emily", "Anthony", "Margaret", "Mark", "Sandra", "Olivia", "Ethan", "Noah",
        "Liam", "Ava", "Sophia", "Grace", "Ryan", "Megan", "Kevin", "Laura", "Brian", "Rachel",
        "Jason", "Amanda", "Tyler", "Hannah", "Oliver", "Charlotte", "Harry", "Amelia",
        "George", "Isla", "Jack", "Poppy", "Sean", "Aoife", "Connor", "Siobhan", "Fiona",
    ),
    (
        "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
        "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson",
        "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
        "Wright", "Scott", "Hill", "Green", "Adams", "Baker", "Nelson", "Carter", "Mitchell",
        "Roberts", "Turner", "Phillips", "Campbell", "Parker", "Evans", "Edwards", "Collins",
        "Stewart", "Morris", "Murphy", "Cook", "Rogers", "O'Brien", "Kelly", "Hughes", "Price",
        "Bennett", "Wood", "Barnes", "Ross", "Henderson", "Coleman", "Jenkins", "Perry",
        "Powell", "Patterson", "Foster", "Sanders", "Fletcher", "McCarthy", "O'Connor",
    ),
)  # fmt: skip
_INDIAN = _Culture(
    (
        "Aarav", "Vivaan", "Aditya", "Arjun", "Rohan", "Priya", "Ananya", "Diya", "Kavya",
        "Neha", "Rahul", "Sanjay", "Vikram", "Deepa", "Anjali", "Rajesh", "Sunita", "Amit",
        "Pooja", "Karthik", "Lakshmi", "Suresh", "Meera", "Nikhil",
    ),
    (
        "Sharma", "Patel", "Singh", "Kumar", "Gupta", "Reddy", "Iyer", "Nair", "Mehta",
        "Joshi", "Rao", "Desai", "Chopra", "Banerjee", "Menon", "Agarwal", "Pillai", "Bhat",
        "Kapoor", "Verma", "Krishnan", "Das",
    ),
)  # fmt: skip
_CHINESE = _Culture(
    (
        "Wei", "Fang", "Jing", "Lei", "Min", "Hui", "Xin", "Yan", "Jun", "Hao", "Mei", "Ying",
        "Tao", "Xiaoling", "Jian", "Yifan",
    ),
    (
        "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu",
        "Sun", "Ma", "Zhu", "Hu", "Lin", "Guo", "He",
    ),
)  # fmt: skip
_JAPANESE = _Culture(
    (
        "Haruto", "Yuto", "Sota", "Yui", "Hina", "Sakura", "Ren", "Takumi", "Kenji", "Akiko",
        "Hiroshi", "Yuki", "Naoko", "Daiki", "Emi", "Kaito",
    ),
    (
        "Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura",
        "Kobayashi", "Kato", "Yoshida", "Yamada", "Sasaki", "Matsumoto", "Inoue", "Kimura",
    ),
)  # fmt: skip
_AFRICAN = _Culture(
    (
        "Chinedu", "Ngozi", "Oluwaseun", "Amara", "Kwame", "Abena", "Tunde", "Folake",
        "Sipho", "Thandiwe", "Kofi", "Zanele",
    ),
    (
        "Okafor", "Adeyemi", "Okonkwo", "Mensah", "Nkosi", "Balogun", "Eze", "Boateng",
        "Dlamini", "Abiodun", "Owusu", "Ndlovu",
    ),
)  # fmt: skip
_DUTCH = _Culture(
    ("Daan", "Sanne", "Bram", "Fleur", "Thijs", "Lotte", "Joost", "Femke", "Sem", "Anouk"),
    (
        "de Vries", "van Dijk", "Jansen", "Bakker", "Visser", "Smit", "de Jong",
        "van den Berg", "Mulder", "Bos", "Vermeulen",
    ),
)  # fmt: skip
_HISPANIC = _Culture(
    (
        "Carlos", "Maria", "Juan", "Ana", "Luis", "Sofia", "Diego", "Camila", "Javier",
        "Lucia", "Miguel", "Isabel", "Pablo", "Valentina", "Mateo", "Gabriel", "Beatriz",
    ),
    (
        "Garcia", "Rodriguez", "Martinez", "Lopez", "Gonzalez", "Hernandez", "Perez",
        "Sanchez", "Ramirez", "Torres", "Flores", "Rivera", "Morales", "Ortiz", "Silva",
        "Costa", "Santos", "Oliveira", "Souza", "Pereira", "Ferreira",
    ),
    ("José", "María", "Sofía", "Lucía", "Martín", "Andrés", "Raúl", "Inés", "João", "Sebastián"),
    (
        "Muñoz", "Pérez", "Martínez", "González", "Hernández", "Gómez", "Gonçalves", "Núñez",
        "Fernández", "Ibáñez", "Araújo",
    ),
)  # fmt: skip
_GERMAN = _Culture(
    (
        "Lukas", "Anna", "Felix", "Lena", "Jonas", "Laura", "Maximilian", "Paul", "Julia",
        "Tobias", "Katrin", "Stefan", "Sabine", "Andreas", "Matthias",
    ),
    (
        "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
        "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Neumann", "Zimmermann", "Braun",
    ),
    ("Jürgen", "Jörg", "Günter", "Käthe", "Sönke", "Björn", "Bärbel"),
    ("Müller", "Schröder", "Schäfer", "Krüger", "Böhm", "Köhler", "Weiß", "Groß", "Jäger"),
)  # fmt: skip
_FRENCH = _Culture(
    (
        "Louis", "Camille", "Hugo", "Manon", "Jules", "Lucas", "Julie", "Nicolas", "Claire",
        "Pierre", "Sophie", "Antoine", "Marie", "Mathieu", "Isabelle",
    ),
    (
        "Bernard", "Dubois", "Durand", "Leroy", "Moreau", "Simon", "Laurent", "Michel",
        "Garnier", "Fontaine", "Rousseau", "Blanc", "Mercier", "Girard",
    ),
    ("François", "Zoë", "Hélène", "Chloé", "Léa", "Élodie", "Jérôme", "Gaëlle", "Noël", "Anaïs"),
    ("Lefèvre", "Gérard", "Rivière", "Dupré", "Hébert", "Lemaître", "Bérubé", "Chevalier-Pâris"),
)  # fmt: skip
_NORDIC = _Culture(
    ("Erik", "Lars", "Ingrid", "Nils", "Astrid", "Magnus", "Freja", "Oskar", "Elin", "Sven"),
    (
        "Johansson", "Andersson", "Hansen", "Nielsen", "Larsen", "Karlsson", "Nilsson",
        "Eriksson", "Berg", "Lindberg",
    ),
    ("Søren", "Bjørn", "Åsa", "Jørgen", "Mårten", "Øystein", "Sigrún", "Björk"),
    ("Sørensen", "Jørgensen", "Østergaard", "Ångström", "Lindström", "Åberg", "Håkansson"),
)  # fmt: skip
_SLAVIC = _Culture(
    ("Piotr", "Tomasz", "Katarzyna", "Jan", "Pavel", "Petra", "Marek", "Jakub", "Ewa", "Agnieszka"),
    (
        "Nowak", "Kowalski", "Novak", "Horak", "Mazur", "Krawczyk", "Kaczmarek", "Svoboda",
        "Lewandowski",
    ),
    ("Łukasz", "Małgorzata", "Paweł", "Jiří", "Tomáš", "Ondřej", "Kateřina", "Zoë"),
    (
        "Dvořák", "Wójcik", "Wiśniewski", "Dąbrowski", "Černý", "Procházka", "Kučera",
        "Němec", "Szymański", "Woźniak",
    ),
)  # fmt: skip
_VIETNAMESE = _Culture(
    ("Minh", "Anh", "Linh", "Huy", "Lan", "Tuan", "Hoa", "Nam"),
    ("Nguyen", "Tran", "Le", "Pham", "Hoang", "Vu", "Bui"),
    ("Đức", "Thảo", "Phương", "Hương", "Quỳnh", "Dũng"),
    ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Đặng", "Bùi", "Võ"),
)  # fmt: skip
_TURKISH = _Culture(
    ("Mehmet", "Emre", "Elif", "Can", "Zeynep", "Burak", "Ceren", "Deniz"),
    ("Kaya", "Demir", "Arslan", "Polat", "Kurt"),
    ("Ayşe", "Gülşen", "Çağrı", "Özge", "Barış"),
    ("Yılmaz", "Şahin", "Çelik", "Öztürk", "Aydın", "Doğan", "Koç"),
)  # fmt: skip

# Most people get an ASCII name from any culture; the rest an accented one from those that have.
_ASCII_CULTURES = _weighted(
    [
        (_ENGLISH, 40),
        (_INDIAN, 10),
        (_CHINESE, 6),
        (_JAPANESE, 4),
        (_AFRICAN, 4),
        (_DUTCH, 4),
        (_HISPANIC, 10),
        (_GERMAN, 8),
        (_FRENCH, 6),
        (_NORDIC, 3),
        (_SLAVIC, 3),
        (_VIETNAMESE, 1),
        (_TURKISH, 1),
    ]
)
_ACCENTED_CULTURES = _weighted(
    [
        (_HISPANIC, 6),
        (_GERMAN, 5),
        (_FRENCH, 5),
        (_NORDIC, 3),
        (_SLAVIC, 3),
        (_VIETNAMESE, 2),
        (_TURKISH, 2),
    ]
)

# Letters that Unicode decomposition does not reduce to ASCII on its own.
_EXTRA_FOLDS = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "đ": "d", "Đ": "D", "ı": "i", "æ": "ae"}
)


def _email_key(name: str) -> str:
    """The ASCII letters a person's name contributes to an email address: Łukasz -> lukasz."""
    decomposed = unicodedata.normalize("NFKD", name.translate(_EXTRA_FOLDS))
    return "".join(char for char in decomposed if char.isascii() and char.isalnum()).lower()


_EMAIL_KEYS: dict[str, str] = {
    name: _email_key(name)
    for culture in {*_ASCII_CULTURES, *_ACCENTED_CULTURES}
    for pool in (
        culture.first_names,
        culture.last_names,
        culture.accented_first_names,
        culture.accented_last_names,
    )
    for name in pool
}


@dataclass(frozen=True, slots=True)
class _Country:
    name: str
    code: str
    phone_prefix: str
    tld: str
    legal_suffix: str


_COUNTRIES = _weighted(
    [
        (_Country("United States", "US", "+1", ".com", "Inc."), 36),
        (_Country("United Kingdom", "GB", "+44", ".co.uk", "Ltd"), 12),
        (_Country("Germany", "DE", "+49", ".de", "GmbH"), 9),
        (_Country("France", "FR", "+33", ".fr", "SAS"), 6),
        (_Country("Canada", "CA", "+1", ".ca", "Inc."), 6),
        (_Country("Australia", "AU", "+61", ".com.au", "Pty Ltd"), 5),
        (_Country("India", "IN", "+91", ".in", "Pvt Ltd"), 7),
        (_Country("Japan", "JP", "+81", ".co.jp", "K.K."), 4),
        (_Country("Brazil", "BR", "+55", ".com.br", "Ltda."), 4),
        (_Country("Netherlands", "NL", "+31", ".nl", "B.V."), 4),
        (_Country("Spain", "ES", "+34", ".es", "S.L."), 2),
        (_Country("Sweden", "SE", "+46", ".se", "AB"), 2),
        (_Country("Singapore", "SG", "+65", ".sg", "Pte Ltd"), 2),
        (_Country("Mexico", "MX", "+52", ".mx", "S.A. de C.V."), 1),
    ]
)

_COMPANY_ROOTS = (
    "Acme", "Northwind", "Globex", "Initech", "Vandelay", "Contoso", "Fabrikam", "Blue Harbor",
    "Silver Peak", "Redwood", "Ironclad", "Brightline", "Cobalt", "Evergreen", "Summit",
    "Pinnacle", "Horizon", "Keystone", "Beacon", "Granite", "Maple", "Cedar", "Falcon", "Orion",
    "Nimbus", "Vertex", "Quantum", "Polaris", "Atlas", "Helix", "Lumen", "Nova", "Apex",
    "Sterling", "Meridian", "Crescent", "Tidewater", "Bluebird", "Copperleaf", "Driftwood",
    "Foxglove", "Juniper", "Kestrel", "Lighthouse", "Magnolia", "Northstar", "Oakridge",
    "Pioneer", "Riverbend", "Sandstone", "Sequoia", "Stonebridge", "Sunrise", "Trailhead",
    "Westfield", "Wildflower", "Zenith", "Aurora", "Bramble", "Cascade", "Clearwater",
    "Fairview", "Goldfinch", "Highland", "Ivory", "Lakeside", "Mosaic", "Oceanic", "Prairie",
    "Redstone", "Skyline", "Thistle", "Valiant", "Willow", "Zephyr", "Amber", "Birchwood",
    "Harborview", "Ridgeline", "Everbright",
)  # fmt: skip

# Company name nouns; some say which Salesforce industry the company is in, None = any.
_COMPANY_NOUNS: tuple[tuple[str, str | None], ...] = (
    ("Analytics", "Technology"), ("Systems", "Technology"), ("Software", "Technology"),
    ("Cloud", "Technology"), ("Data", "Technology"), ("Security", "Technology"),
    ("Labs", "Biotechnology"), ("Bio", "Biotechnology"), ("Pharma", "Healthcare"),
    ("Health", "Healthcare"), ("Logistics", "Transportation"), ("Freight", "Shipping"),
    ("Foods", "Food & Beverage"), ("Brewing", "Food & Beverage"), ("Energy", "Energy"),
    ("Solar", "Energy"), ("Capital", "Finance"), ("Bank", "Banking"), ("Insurance", "Insurance"),
    ("Robotics", "Machinery"), ("Manufacturing", "Manufacturing"), ("Materials", "Chemicals"),
    ("Media", "Media"), ("Studios", "Entertainment"), ("Networks", "Telecommunications"),
    ("Telecom", "Telecommunications"), ("Retail", "Retail"), ("Outfitters", "Apparel"),
    ("Construction", "Construction"), ("Engineering", "Engineering"),
    ("Academy", "Education"), ("Hotels", "Hospitality"), ("Farms", "Agriculture"),
    ("Devices", "Electronics"), ("Consulting", "Consulting"), ("Partners", None),
    ("Solutions", None), ("Group", None), ("Holdings", None), ("Industries", None),
    ("Ventures", None), ("Works", None), ("Dynamics", None), ("Digital", None),
    ("Interactive", None), ("Brands", None), ("Foundation", "Not For Profit"),
    ("Utilities", "Utilities"), ("Outdoors", "Recreation"), ("Environmental", "Environmental"),
)  # fmt: skip

_SALESFORCE_INDUSTRIES_ANY = _weighted(
    [
        ("Technology", 12), ("Finance", 5), ("Healthcare", 5), ("Manufacturing", 5),
        ("Retail", 4), ("Consulting", 4), ("Education", 3), ("Media", 2),
        ("Telecommunications", 2), ("Transportation", 2), ("Insurance", 2), ("Banking", 2),
        ("Government", 1), ("Other", 3), ("Communications", 1), ("Hospitality", 1),
        ("Construction", 1), ("Energy", 1),
    ]
)  # fmt: skip

# HubSpot's industry is free text; portals fill it from LinkedIn-style labels.
_HUBSPOT_INDUSTRY_LABELS: dict[str, str] = {
    "Agriculture": "Farming", "Apparel": "Apparel & Fashion", "Banking": "Banking",
    "Biotechnology": "Biotechnology", "Chemicals": "Chemicals",
    "Communications": "Public Relations and Communications", "Construction": "Construction",
    "Consulting": "Management Consulting", "Education": "Education Management",
    "Electronics": "Consumer Electronics", "Energy": "Oil & Energy",
    "Engineering": "Mechanical or Industrial Engineering", "Entertainment": "Entertainment",
    "Environmental": "Environmental Services", "Finance": "Financial Services",
    "Food & Beverage": "Food & Beverages", "Government": "Government Administration",
    "Healthcare": "Hospital & Health Care", "Hospitality": "Hospitality",
    "Insurance": "Insurance", "Machinery": "Machinery", "Manufacturing": "Manufacturing",
    "Media": "Online Media", "Not For Profit": "Nonprofit Organization Management",
    "Recreation": "Recreational Facilities and Services", "Retail": "Retail",
    "Shipping": "Package/Freight Delivery", "Technology": "Computer Software",
    "Telecommunications": "Telecommunications", "Transportation": "Logistics and Supply Chain",
    "Utilities": "Utilities", "Other": "Other",
}  # fmt: skip

# (Salesforce wording, HubSpot wording, weight): the same job, sometimes phrased differently.
_TITLES = _weighted(
    [
        (("CEO", "Chief Executive Officer"), 2), (("CFO", "Chief Financial Officer"), 1),
        (("CTO", "Chief Technology Officer"), 1), (("CMO", "Chief Marketing Officer"), 1),
        (("COO", "Chief Operating Officer"), 1), (("Founder", "Co-Founder"), 2),
        (("Owner", "Owner"), 2), (("VP Marketing", "VP of Marketing"), 2),
        (("VP Sales", "Vice President, Sales"), 2),
        (("VP Engineering", "VP, Engineering"), 1),
        (("Director of Sales", "Sales Director"), 3),
        (("Director of Marketing", "Marketing Director"), 3),
        (("Director of IT", "IT Director"), 2),
        (("Head of Growth", "Growth Lead"), 2),
        (("Head of Revenue Operations", "Head of RevOps"), 2),
        (("Marketing Manager", "Marketing Mgr"), 6), (("Sales Manager", "Sales Mgr"), 5),
        (("Product Manager", "Product Manager"), 5),
        (("Operations Manager", "Ops Manager"), 4),
        (("HR Manager", "Human Resources Manager"), 2),
        (("Software Engineer", "Software Engineer"), 6),
        (("Senior Software Engineer", "Sr. Software Engineer"), 4),
        (("Data Analyst", "Data Analyst"), 4), (("Account Executive", "AE"), 4),
        (("Sales Development Representative", "SDR"), 4),
        (("Marketing Coordinator", "Marketing Coordinator"), 4),
        (("Procurement Specialist", "Procurement Specialist"), 2),
        (("Consultant", "Senior Consultant"), 3), (("Office Manager", "Office Manager"), 2),
        (("Intern", "Marketing Intern"), 2), (("Student", "Student"), 1),
    ]
)  # fmt: skip

_PERSONAL_DOMAINS = _weighted(
    [
        ("gmail.com", 50),
        ("outlook.com", 20),
        ("yahoo.com", 12),
        ("hotmail.com", 10),
        ("icloud.com", 8),
    ]
)

# A person's stage is an index into LIFECYCLE_STAGES, HubSpot's funnel order.
_SUBSCRIBER, _LEAD, _MQL, _SQL, _OPPORTUNITY, _CUSTOMER, _EVANGELIST, _OTHER = range(8)
_STAGES = _weighted(
    [
        (_SUBSCRIBER, 320),
        (_LEAD, 330),
        (_MQL, 130),
        (_SQL, 90),
        (_OPPORTUNITY, 60),
        (_CUSTOMER, 50),
        (_EVANGELIST, 10),
        (_OTHER, 10),
    ]
)
# A person's stage decides how engaged they are: a multiplier on every engagement signal.
_ENGAGEMENT = (0.35, 0.6, 1.2, 1.6, 2.0, 2.2, 2.6, 0.5)

_OPEN, _WORKING, _CONVERTED, _NOT_CONVERTED = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
# Salesforce converts a lead once an opportunity is real; before that the status follows the funnel.
_LEAD_STATUS_BY_STAGE: tuple[tuple[str, ...], ...] = (
    _weighted([(_OPEN, 75), (_WORKING, 15), (_NOT_CONVERTED, 10)]),
    _weighted([(_OPEN, 55), (_WORKING, 35), (_NOT_CONVERTED, 10)]),
    _weighted([(_OPEN, 30), (_WORKING, 60), (_NOT_CONVERTED, 10)]),
    _weighted([(_OPEN, 10), (_WORKING, 75), (_NOT_CONVERTED, 15)]),
    (_CONVERTED,),
    (_CONVERTED,),
    (_CONVERTED,),
    (_NOT_CONVERTED,),
)
_RATING_BY_STAGE: tuple[tuple[str | None, ...], ...] = (
    _weighted([(None, 70), ("Cold", 25), ("Warm", 5)]),
    _weighted([(None, 60), ("Cold", 25), ("Warm", 15)]),
    _weighted([(None, 50), ("Warm", 35), ("Hot", 10), ("Cold", 5)]),
    _weighted([(None, 40), ("Hot", 35), ("Warm", 25)]),
    _weighted([(None, 40), ("Hot", 50), ("Warm", 10)]),
    _weighted([(None, 50), ("Hot", 40), ("Warm", 10)]),
    _weighted([(None, 50), ("Hot", 50)]),
    _weighted([(None, 50), ("Cold", 50)]),
)
_HUBSPOT_LEAD_STATUS_BY_STAGE: tuple[tuple[str | None, ...], ...] = (
    _weighted([(None, 80), ("NEW", 20)]),
    _weighted([(None, 40), ("NEW", 25), ("OPEN", 20), ("ATTEMPTED_TO_CONTACT", 15)]),
    _weighted([(None, 30), ("OPEN", 25), ("IN_PROGRESS", 25), ("ATTEMPTED_TO_CONTACT", 20)]),
    _weighted([(None, 20), ("IN_PROGRESS", 35), ("CONNECTED", 35), ("BAD_TIMING", 10)]),
    _weighted([(None, 30), ("OPEN_DEAL", 70)]),
    _weighted([(None, 70), ("CONNECTED", 30)]),
    _weighted([(None, 80), ("CONNECTED", 20)]),
    _weighted([(None, 30), ("UNQUALIFIED", 50), ("BAD_TIMING", 20)]),
)
_OPEN_OPPORTUNITY_STAGES = _weighted(
    [
        ("Prospecting", 20),
        ("Qualification", 20),
        ("Needs Analysis", 15),
        ("Proposal/Price Quote", 15),
        ("Negotiation/Review", 10),
        ("Closed Lost", 20),
    ]
)
_OPPORTUNITY_NAMES = ("New Business", "Expansion", "Pilot", "Annual Subscription", "Renewal")

# (HubSpot original source, the Salesforce LeadSource a sales team would file it under, weight).
_SOURCES = _weighted(
    [
        (("ORGANIC_SEARCH", "Web"), 25),
        (("PAID_SEARCH", "Web"), 12),
        (("DIRECT_TRAFFIC", "Web"), 15),
        (("EMAIL_MARKETING", "Other"), 8),
        (("SOCIAL_MEDIA", "Web"), 6),
        (("PAID_SOCIAL", "Web"), 6),
        (("REFERRALS", "Partner Referral"), 10),
        (("OTHER_CAMPAIGNS", "Other"), 6),
        (("OFFLINE", "Phone Inquiry"), 6),
        (("OFFLINE", "Purchased List"), 6),
    ]
)

# HubSpot's ranges, with the largest count each holds; the last is open-ended.
_EMPLOYEE_RANGES = (
    (5, "1-5"),
    (25, "5-25"),
    (50, "25-50"),
    (100, "50-100"),
    (500, "100-500"),
    (1000, "500-1000"),
    (math.inf, "1000+"),
)

# Numbers HubSpot keeps as strings; shared rather than formatted per record.
_NUMBER_TEXTS = tuple(str(n) for n in range(301))


def _looks_valid(email: str) -> bool:
    local, at, domain = email.strip().rpartition("@")
    return bool(local and at and "." in domain)


def _employee_range(count: int) -> str:
    return next(label for ceiling, label in _EMPLOYEE_RANGES if count <= ceiling)


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


class _Clock:
    """Integer milliseconds since a UTC midnight before the history window, and their texts.

    Formatting goes through per-day, per-second-of-day and per-millisecond tables: far cheaper
    than a datetime per value when there are half a million of them.
    """

    __slots__ = (
        "_dates",
        "_day_prefixes",
        "_hubspot_millis",
        "_times",
        "now",
    )

    def __init__(self, now: datetime) -> None:
        now_utc = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        first_day = (now_utc - timedelta(days=_WINDOW_DAYS)).date()
        origin = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
        self.now = (now_utc - origin) // timedelta(milliseconds=1)
        day_count = self.now // _DAY_MS + _DAYS_AHEAD + 1
        self._dates = [(first_day + timedelta(days=n)).isoformat() for n in range(day_count)]
        self._day_prefixes = [f"{date}T" for date in self._dates]
        minutes = [f"{hour:02d}:{minute:02d}:" for hour in range(24) for minute in range(60)]
        seconds = [f"{second:02d}." for second in range(60)]
        self._times = [minute + second for minute in minutes for second in seconds]
        self._hubspot_millis = [f"{milli:03d}Z" for milli in range(1000)]

    def hubspot(self, offset: int) -> str:
        """`2024-05-01T10:00:00.000Z`"""
        day, in_day = divmod(offset, _DAY_MS)
        second, milli = divmod(in_day, 1000)
        return f"{self._day_prefixes[day]}{self._times[second]}{self._hubspot_millis[milli]}"

    def salesforce(self, offset: int) -> str:
        """`2024-05-01T10:00:00.000+0000`: Salesforce keeps whole seconds (timestamps.py)."""
        day, in_day = divmod(offset, _DAY_MS)
        return f"{self._day_prefixes[day]}{self._times[in_day // 1000]}000+0000"

    def date(self, offset: int) -> str:
        """`2024-05-01`, one shared string per day."""
        return self._dates[offset // _DAY_MS]


# --------------------------------------------------------------------------------------------
# The population
# --------------------------------------------------------------------------------------------


class _Company:
    __slots__ = (
        "country",
        "domain",
        "employee_range",
        "employees",
        "hubspot_industry",
        "hubspot_name",
        "hubspot_revenue",
        "hubspot_website",
        "place",
        "salesforce_country",
        "salesforce_industry",
        "salesforce_name",
        "salesforce_revenue",
        "salesforce_website",
    )

    country: _Country
    domain: str
    employees: int
    employee_range: str
    hubspot_industry: str
    hubspot_name: str
    hubspot_revenue: str
    hubspot_website: str
    place: Place
    salesforce_country: str
    salesforce_industry: str
    salesforce_name: str
    salesforce_revenue: float
    salesforce_website: str


class _Person:
    """One human being, before either CRM has written them down."""

    __slots__ = (
        "company",
        "created",
        "email",
        "first",
        "hubspot_email",
        "hubspot_first",
        "last",
        "lead",
        "linked",
        "mobile",
        "owner",
        "phone",
        "shared",
        "source",
        "stage",
        "title",
    )

    company: _Company
    created: int  # first contact with the business, ms on the clock
    email: str  # lower case, unique in the population
    first: str
    hubspot_email: str  # usually `email`; another address of theirs for a few
    hubspot_first: bool  # a shared person reached HubSpot before Salesforce
    last: str
    lead: dict[str, Any] | None  # the Salesforce lead, once written
    linked: bool  # HubSpot's Salesforce integration links the two records
    mobile: str | None
    owner: int
    phone: str | None
    shared: bool  # in both CRMs
    source: tuple[str, str]
    stage: int
    title: tuple[str, str] | None


class _Generator:
    """Draws the population and writes it into both CRMs; one instance per `generate` call."""

    def __init__(self, rng: random.Random, clock: _Clock, details: Details) -> None:
        self._random = rng.random
        self._rng = rng
        self._clock = clock
        self._details = details
        self._used_emails: set[str] = set()
        self._companies: list[_Company] = []

    def _pick(self, table: Sequence[_T]) -> _T:
        return table[int(self._random() * len(table))]

    def _chance(self, rate: float) -> bool:
        return self._random() < rate

    def build(self, leads: int, overlap: float) -> SeedData:
        # Duplicates count towards `leads`: a second record of a person is still a record.
        duplicates = int(leads * _DUPLICATE_RATE)
        people_per_crm = leads - duplicates
        shared = min(people_per_crm, round(leads * overlap))
        only = people_per_crm - shared
        self._companies = self._make_companies(shared + 2 * only)
        shared_people = [self._new_person(shared=True) for _ in range(shared)]
        hubspot_people = shared_people + [self._new_person() for _ in range(only)]
        salesforce_people = shared_people + [self._new_person() for _ in range(only)]
        salesforce_leads, opportunities = self._salesforce_records(salesforce_people, duplicates)
        contacts = self._hubspot_records(hubspot_people, duplicates)
        return SeedData(
            contacts,
            salesforce_leads,
            opportunities,
            _converted_contacts(salesforce_leads),
            _conversion_contact_roles(salesforce_leads),
        )

    # ------------------------------------------------------------------ companies and people

    def _make_companies(self, people: int) -> list[_Company]:
        # About thirty people per company, as B2B funnels have; names never repeat.
        name_count = len(_COMPANY_ROOTS) * len(_COMPANY_NOUNS)
        count = min(name_count, max(10, people // 30))
        return [self._new_company(index) for index in self._rng.sample(range(name_count), count)]

    def _new_company(self, name_index: int) -> _Company:
        root = _COMPANY_ROOTS[name_index // len(_COMPANY_NOUNS)]
        noun, industry = _COMPANY_NOUNS[name_index % len(_COMPANY_NOUNS)]
        country = self._pick(_COUNTRIES)
        company = _Company()
        company.country = country
        base_name = f"{root} {noun}"
        legal_name = f"{base_name} {country.legal_suffix}"
        names = (legal_name, base_name) if self._chance(0.4) else (base_name, legal_name)
        company.salesforce_name = names[0]
        # Marketing and sales spell the company alike, except for the legal suffix now and then.
        company.hubspot_name = names[1] if self._chance(0.2) else names[0]
        tld = country.tld if self._chance(0.5) else ".com"
        company.domain = f"{_email_key(root)}{_email_key(noun)}{tld}"
        company.salesforce_website = self._pick(
            (f"https://www.{company.domain}", f"www.{company.domain}", f"http://{company.domain}")
        )
        company.hubspot_website = f"https://www.{company.domain}"
        company.salesforce_country = country.code if self._chance(0.15) else country.name
        company.salesforce_industry = industry or self._pick(_SALESFORCE_INDUSTRIES_ANY)
        company.hubspot_industry = _HUBSPOT_INDUSTRY_LABELS[company.salesforce_industry]
        # Company sizes are log-normal: many small firms, a long tail up to 50,000 people.
        company.employees = max(1, min(50_000, int(self._rng.lognormvariate(4.0, 1.9))))
        company.employee_range = _employee_range(company.employees)
        per_employee = 60_000 + int(self._random() * 340_000)
        revenue = float(f"{company.employees * per_employee:.3g}")
        company.salesforce_revenue = revenue
        company.hubspot_revenue = str(int(revenue))
        company.place = self._details.place(country.code)
        return company

    def _new_person(self, *, shared: bool = False) -> _Person:
        r = self._random
        person = _Person()
        self._name(person)
        # Larger share of people at the first companies: a few accounts dominate any funnel.
        companies = self._companies
        person.company = company = companies[int(len(companies) * r() * r())]
        person.email = self._new_email(person, personal=r() < _PERSONAL_EMAIL_RATE)
        person.hubspot_email = person.email
        person.shared = shared
        person.hubspot_first = False
        person.linked = shared and r() < _LINKED_RATE
        if shared and not person.linked and r() < _OTHER_EMAIL_RATE:
            person.hubspot_email = self._new_email(person, personal=not self._is_personal(person))
        # Table lookups by hand rather than through _pick: this runs once per person.
        person.title = _TITLES[int(r() * len(_TITLES))] if r() < _TITLE_RATE else None
        person.phone = self._phone(company.country) if r() < _PHONE_RATE else None
        person.mobile = self._details.mobile(company.country.phone_prefix)
        person.stage = _STAGES[int(r() * len(_STAGES))]
        person.owner = int(r() * len(SANDBOX_OWNERS))
        person.source = _SOURCES[int(r() * len(_SOURCES))]
        # More people arrive lately than nine months ago: the funnel grows.
        person.created = self._clock.now - int(_WINDOW_DAYS * _DAY_MS * r() ** 1.3)
        person.lead = None
        return person

    def _name(self, person: _Person) -> None:
        r = self._random
        if r() < _NON_ASCII_RATE:
            culture = _ACCENTED_CULTURES[int(r() * len(_ACCENTED_CULTURES))]
            # At least one of the two names carries letters beyond ASCII.
            mode = r()
            first_pool = culture.accented_first_names if mode < 0.7 else culture.first_names
            last_pool = culture.accented_last_names if mode >= 0.4 else culture.last_names
        else:
            culture = _ASCII_CULTURES[int(r() * len(_ASCII_CULTURES))]
            first_pool, last_pool = culture.first_names, culture.last_names
        person.first = first_pool[int(r() * len(first_pool))]
        person.last = last_pool[int(r() * len(last_pool))]

    def _is_personal(self, person: _Person) -> bool:
        return not person.email.endswith(person.company.domain)

    def _new_email(self, person: _Person, *, personal: bool) -> str:
        first, last = _EMAIL_KEYS[person.first], _EMAIL_KEYS[person.last]
        shape = self._random()
        if shape < 0.45:
            local = f"{first}.{last}"
        elif shape < 0.7:
            local = f"{first[0]}{last}"
        elif shape < 0.8:
            local = f"{first}{last}"
        elif shape < 0.87:
            local = f"{first}_{last}"
        elif shape < 0.94:
            local = f"{first}{last[0]}"
        else:
            local = first
        domain = self._pick(_PERSONAL_DOMAINS) if personal else person.company.domain
        return self._unique_email(local, domain)

    def _unique_email(self, local: str, domain: str) -> str:
        email = f"{local}@{domain}"
        # Real people who collide on a mailbox name get digits; widen the range on each clash.
        ceiling = 10
        while email in self._used_emails:
            ceiling *= 3
            email = f"{local}{int(self._random() * ceiling)}@{domain}"
        self._used_emails.add(email)
        return email

    def _phone(self, country: _Country) -> str:
        # Area codes and trunk numbers start at 2.
        number = int(self._random() * 8_000_000_000) + 2_000_000_000
        digits = str(number)
        return f"{country.phone_prefix} {digits[:3]} {digits[3:6]} {digits[6:]}"

    def _copy_person(self, original: _Person, *, created_after: int) -> _Person:
        """The same human again, as a second record made later (re-signup, list import)."""
        twin = _Person()
        for slot in _Person.__slots__:
            setattr(twin, slot, getattr(original, slot))
        twin.linked = twin.shared = twin.hubspot_first = False
        twin.lead = None
        twin.stage = _SUBSCRIBER if self._chance(0.5) else _LEAD
        twin.created = created_after + int((self._clock.now - created_after) * self._random())
        return twin

    # ------------------------------------------------------------------ emails, dirty or clean

    def _recorded_email(self, clean: str) -> str | None:
        """The address as a CRM ended up holding it: usually as typed, sometimes mangled."""
        roll = self._random()
        if roll < _MISSING_EMAIL_RATE:
            return None
        roll -= _MISSING_EMAIL_RATE
        if roll < _INVALID_EMAIL_RATE:
            return self._invalid_email(clean)
        roll -= _INVALID_EMAIL_RATE
        if roll < _MESSY_EMAIL_RATE:
            return self._messy_email(clean)
        return clean

    def _invalid_email(self, clean: str) -> str:
        local, _, domain = clean.partition("@")
        shape = self._random()
        if shape < 0.34:
            return f"{local}@"  # the form was sent before the domain was typed
        if shape < 0.67:
            return f"{local}.{domain}"  # no at sign
        return f"{local[0]}@{domain.partition('.')[0]}"  # "a@b": no top-level domain

    def _messy_email(self, clean: str) -> str:
        shape = self._random()
        if shape < 0.4:
            return f"  {clean.title()} "
        if shape < 0.7:
            return clean.title()
        if shape < 0.85:
            return clean.upper()
        return f" {clean}\t"

    # ------------------------------------------------------------------ Salesforce

    def _salesforce_records(
        self, people: list[_Person], duplicates: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        drafts = [self._lead_draft(person, self._salesforce_created(person)) for person in people]
        drafts += self._duplicate_lead_drafts(drafts, duplicates)
        # Record ids grow with creation time, as they do in an org.
        drafts.sort(key=lambda draft: draft.created)
        for number, draft in enumerate(drafts, start=1):
            draft.record["Id"] = salesforce_id(LEAD.key_prefix, number)
        self._add_modstamp_ties(drafts)
        opportunities = self._convert(drafts)
        return [draft.record for draft in drafts], opportunities

    def _salesforce_created(self, person: _Person) -> int:
        if person.shared and self._chance(0.5):
            person.hubspot_first = True
            return self._second_crm_created(person)
        return person.created

    def _second_crm_created(self, person: _Person) -> int:
        """When the other CRM got the person: minutes later through the integration, else
        whenever a rep or a marketer got round to it."""
        lag_ms = min(600_000 if person.linked else 30 * _DAY_MS, self._clock.now - person.created)
        return person.created + int(lag_ms * self._random())

    def _lead_draft(
        self, person: _Person, created: int, email: str | None = None, *, fresh: bool = False
    ) -> _LeadDraft:
        r = self._random
        clock = self._clock
        company = person.company
        statuses = _LEAD_STATUS_BY_STAGE[person.stage]
        status = _OPEN if fresh else statuses[int(r() * len(statuses))]
        converted = status == _CONVERTED
        modified = created
        # A fifth are never touched after creation; a conversion is always a later touch.
        if converted or r() >= 0.2:
            modified += int((clock.now - created) * r() ** 2)
        stamp = modified
        if not converted and r() < 0.1:  # automation touched it after the last user edit
            stamp += int((clock.now - modified) * r())
        created_text = clock.salesforce(created)
        modified_text = created_text if modified == created else clock.salesforce(modified)
        title = person.title
        ratings = _RATING_BY_STAGE[person.stage]
        record: dict[str, Any] = {
            "Id": None,
            "IsDeleted": False,
            "CreatedDate": created_text,
            "LastModifiedDate": modified_text,
            "SystemModstamp": modified_text if stamp == modified else clock.salesforce(stamp),
            "FirstName": person.first,
            "LastName": person.last,
            "Company": company.salesforce_name,
            "Title": title[0] if title else None,
            "Email": email if email is not None else self._recorded_email(person.email),
            "Phone": person.phone if r() < 0.9 else None,
            "Website": company.salesforce_website,
            "Country": company.salesforce_country,
            "Industry": company.salesforce_industry if r() < _SALESFORCE_INDUSTRY_RATE else None,
            "NumberOfEmployees": company.employees if r() < _EMPLOYEES_RATE else None,
            "AnnualRevenue": (
                company.salesforce_revenue if r() < _SALESFORCE_REVENUE_RATE else None
            ),
            "LeadSource": (
                ("Purchased List" if fresh else person.source[1])
                if r() < _LEAD_SOURCE_RATE
                else None
            ),
            "Status": status,
            "Rating": None if fresh else ratings[int(r() * len(ratings))],
            "OwnerId": SANDBOX_OWNERS[person.owner][1],
            "IsConverted": converted,
            "ConvertedDate": None,
            "ConvertedAccountId": None,
            "ConvertedContactId": None,
            "ConvertedOpportunityId": None,
            # A rep who moved the lead on logged a call or an email that day.
            "LastActivityDate": None if status == _OPEN else clock.date(modified),
            **self._details.lead_fields(company.place, person.mobile, fresh=fresh),
        }
        if record["EmailBouncedReason"]:
            record["EmailBouncedDate"] = modified_text
        if not fresh:
            person.lead = record
        return _LeadDraft(record, person, created, stamp, modified if converted else None)

    def _duplicate_lead_drafts(self, drafts: list[_LeadDraft], count: int) -> list[_LeadDraft]:
        """Second leads of people already in the org, under the very same email (a list import
        that skipped the duplicate rules)."""
        with_email = [draft for draft in drafts if draft.record["Email"] is not None]
        originals = self._rng.sample(with_email, min(count, len(with_email)))
        twins = []
        for original in originals:
            twin = self._copy_person(original.person, created_after=original.created)
            twins.append(self._lead_draft(twin, twin.created, original.record["Email"], fresh=True))
        return twins

    def _add_modstamp_ties(self, drafts: list[_LeadDraft]) -> None:
        """Mass updates: groups of leads whose SystemModstamp is the very same millisecond.

        Converted leads are left out: Salesforce refuses to update them.
        """
        open_drafts = [draft for draft in drafts if draft.converted_at is None]
        tied = self._rng.sample(
            open_drafts, min(len(open_drafts), int(len(drafts) * _MODSTAMP_TIE_RATE))
        )
        start = 0
        while len(tied) - start >= 2:
            size = min(len(tied) - start, 2 + int(self._random() * 40))
            group = tied[start : start + size]
            start += size
            latest = max(draft.stamp for draft in group)
            moment = latest + int((self._clock.now - latest) * self._random())
            text = self._clock.salesforce(moment)
            # A user's mass edit moves LastModifiedDate too; a flow's moves only the stamp.
            by_user = self._chance(0.5)
            for draft in group:
                draft.stamp = moment
                draft.record["SystemModstamp"] = text
                if by_user:
                    draft.record["LastModifiedDate"] = text

    def _convert(self, drafts: list[_LeadDraft]) -> list[dict[str, Any]]:
        """Fill the conversion fields of converted leads and create their opportunities, all
        numbered in the order the conversions happened."""
        conversions = [
            (draft.converted_at, draft) for draft in drafts if draft.converted_at is not None
        ]
        conversions.sort(key=lambda conversion: conversion[0])
        opportunities: list[dict[str, Any]] = []
        for number, (at, draft) in enumerate(conversions, start=1):
            record = draft.record
            record["ConvertedDate"] = self._clock.date(at)
            record["ConvertedAccountId"] = salesforce_id("001", number)
            record["ConvertedContactId"] = salesforce_id("003", number)
            if self._chance(_OPPORTUNITY_RATE):
                opportunity = self._opportunity(draft, at, len(opportunities) + 1)
                record["ConvertedOpportunityId"] = opportunity["Id"]
                opportunities.append(opportunity)
        return opportunities

    def _opportunity(self, draft: _LeadDraft, converted_at: int, number: int) -> dict[str, Any]:
        r = self._random
        clock = self._clock
        person = draft.person
        if person.stage in (_CUSTOMER, _EVANGELIST):
            stage = "Closed Won"
        else:
            stage = self._pick(_OPEN_OPPORTUNITY_STAGES)
        closed = stage.startswith("Closed")
        modified = converted_at + int((clock.now - converted_at) * r())
        # An open deal expects to close ahead; a closed one closed when it was last touched.
        close_day = modified if closed else clock.now + int(_DAYS_AHEAD * _DAY_MS * r())
        size = person.company.employees
        amount = round(1_000 + min(size, 5_000) * (20 + 180 * r()), -2)
        modified_text = clock.salesforce(modified)
        return {
            "Id": salesforce_id(OPPORTUNITY.key_prefix, number),
            "IsDeleted": False,
            "CreatedDate": draft.record["LastModifiedDate"],
            "LastModifiedDate": modified_text,
            "SystemModstamp": modified_text,
            "Name": f"{draft.record['Company']} - {self._pick(_OPPORTUNITY_NAMES)}",
            "StageName": stage,
            "Amount": float(amount),
            "CloseDate": clock.date(close_day),
            "IsClosed": closed,
            "IsWon": stage == "Closed Won",
            "OwnerId": draft.record["OwnerId"],
            **self._details.opportunity_fields(stage, float(amount), draft.record["LeadSource"]),
        }

    # ------------------------------------------------------------------ HubSpot

    def _hubspot_records(self, people: list[_Person], duplicates: int) -> list[SeedContact]:
        drafts = [(self._hubspot_created(person), person) for person in people]
        drafts += self._duplicate_contact_drafts(drafts, duplicates)
        # HubSpot record ids grow with creation time too.
        drafts.sort(key=lambda draft: draft[0])
        invalid_seen: set[str] = set()
        return [
            SeedContact(_FIRST_CONTACT_ID + index, self._contact(person, created, invalid_seen))
            for index, (created, person) in enumerate(drafts)
        ]

    def _hubspot_created(self, person: _Person) -> int:
        if person.shared and not person.hubspot_first:
            return self._second_crm_created(person)
        return person.created

    def _duplicate_contact_drafts(
        self, drafts: list[tuple[int, _Person]], count: int
    ) -> list[tuple[int, _Person]]:
        """The same people again under another address: a work and a personal sign-up."""
        twins = []
        for created, original in self._rng.sample(drafts, min(count, len(drafts))):
            twin = self._copy_person(original, created_after=created)
            twin.hubspot_email = self._new_email(twin, personal=not self._is_personal(twin))
            twins.append((twin.created, twin))
        return twins

    def _contact(self, person: _Person, created: int, invalid_seen: set[str]) -> dict[str, str]:
        r = self._random
        clock = self._clock
        company = person.company
        stage = person.stage
        props: dict[str, str] = {}
        email = self._hubspot_email(person, invalid_seen)
        if email is not None:
            props["email"] = email
        props["firstname"] = person.first
        props["lastname"] = person.last
        props["company"] = company.hubspot_name
        if person.title is not None:
            props["jobtitle"] = person.title[1] if r() < 0.2 else person.title[0]
        if person.phone is not None and r() < 0.9:
            props["phone"] = person.phone
        props["website"] = company.hubspot_website
        props["country"] = company.country.name
        props["industry"] = company.hubspot_industry
        if r() < _EMPLOYEES_RATE:
            props["numemployees"] = company.employee_range
        if r() < _HUBSPOT_REVENUE_RATE:
            props["annualrevenue"] = company.hubspot_revenue
        props["lifecyclestage"] = LIFECYCLE_STAGES[stage]
        lead_statuses = _HUBSPOT_LEAD_STATUS_BY_STAGE[stage]
        lead_status = lead_statuses[int(r() * len(lead_statuses))]
        if lead_status is not None:
            props["hs_lead_status"] = lead_status
        if (_SQL <= stage <= _EVANGELIST) or r() < _OWNER_BEFORE_SQL_RATE:
            props["hubspot_owner_id"] = SANDBOX_OWNERS[person.owner][0]
        props["hs_analytics_source"] = person.source[0]
        props.update(
            self._details.contact_properties(company.place, person.mobile, company.country.code)
        )
        created_text = clock.hubspot(created)
        latest, latest_text = self._engagement(props, stage, created, created_text)
        if props["num_conversion_events"] != "0":
            props["first_conversion_date"] = created_text  # the form that created them
        if stage >= _SQL and stage != _OTHER:
            props["notes_last_updated"] = latest_text  # sales has logged activity
        if stage in (_CUSTOMER, _EVANGELIST):
            props["closedate"] = latest_text
        lead = person.lead
        if person.linked and lead is not None:
            props["salesforceleadid"] = lead["Id"]
            props["salesforceownerid"] = lead["OwnerId"]
        props["createdate"] = created_text
        # Any property change moves lastmodifieddate, engagement included.
        edited = created + int((clock.now - created) * r() ** 3)
        props["lastmodifieddate"] = latest_text if edited <= latest else clock.hubspot(edited)
        return props

    def _hubspot_email(self, person: _Person, invalid_seen: set[str]) -> str | None:
        clean = person.hubspot_email
        email = self._recorded_email(clean)
        if email is None or email is clean or _looks_valid(email):
            return email  # valid addresses are unique in the population already
        # HubSpot refuses a second contact with the same address, however broken it is.
        key = email.strip().lower()
        if key in invalid_seen:
            return clean
        invalid_seen.add(key)
        return email

    def _engagement(
        self, props: dict[str, str], stage: int, created: int, created_text: str
    ) -> tuple[int, str]:
        """Add the engagement signals; return when the latest of them happened, and its text.

        Equal moments share one string: the result stays smaller.
        """
        r = self._random
        clock = self._clock
        weight = _ENGAGEMENT[stage]
        page_views = min(300, int(300 * weight * r() ** 4))
        # Contacts arrive through a form, so from "lead" on they have converted at least once.
        conversions = min(10, int(weight * 4 * r() ** 2) + (stage != _SUBSCRIBER))
        clicks = min(30, int(30 * min(1.0, weight / 2) * r() ** 3))
        webinars = min(3, int(4 * min(1.0, weight / 2) * r() ** 3))
        pricing_views = min(page_views, 8, int(9 * min(1.0, weight / 2.2) * r() ** 2))
        props["hs_analytics_num_page_views"] = _NUMBER_TEXTS[page_views]
        props["num_conversion_events"] = _NUMBER_TEXTS[conversions]
        props["hs_email_click"] = _NUMBER_TEXTS[clicks]
        if webinars:  # portal-defined properties stay unset until something writes them
            props["webinars_attended"] = _NUMBER_TEXTS[webinars]
        if pricing_views:
            props["pricing_page_views"] = _NUMBER_TEXTS[pricing_views]
        latest, latest_text = created, created_text
        span = clock.now - created
        if page_views:
            visit = created + int(span * r() ** 0.3)
            visit_text = clock.hubspot(visit)
            props["hs_analytics_last_visit_timestamp"] = visit_text
            latest, latest_text = visit, visit_text
        if conversions:
            # A single conversion is the form that created the contact.
            converted = created if conversions == 1 else created + int(span * r() ** 0.5)
            converted_text = created_text if converted == created else clock.hubspot(converted)
            props["recent_conversion_date"] = converted_text
            if converted > latest:
                latest, latest_text = converted, converted_text
        return latest, latest_text


class _LeadDraft:
    """A lead record with the integer times its ordering and conversion are decided by."""

    __slots__ = ("converted_at", "created", "person", "record", "stamp")

    def __init__(
        self,
        record: dict[str, Any],
        person: _Person,
        created: int,
        stamp: int,
        converted_at: int | None,
    ) -> None:
        self.record = record
        self.person = person
        self.created = created
        self.stamp = stamp
        self.converted_at = converted_at


def _conversion_contact_roles(leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The primary contact role each conversion with an opportunity created, numbered in the
    order of those opportunities, at the conversion. No random draw, as for the Contacts."""
    converted = [lead for lead in leads if lead.get("ConvertedOpportunityId") is not None]
    converted.sort(key=lambda lead: str(lead["ConvertedOpportunityId"]))
    return [
        seeded_contact_role(
            salesforce_id(OPPORTUNITY_CONTACT_ROLE.key_prefix, number),
            lead["ConvertedOpportunityId"],
            lead["ConvertedContactId"],
            lead["LastModifiedDate"],
        )
        for number, lead in enumerate(converted, start=1)
    ]


def _converted_contacts(leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Contact each converted lead became, numbered as its ConvertedContactId says,
    created and last changed at the conversion. Drawn from the leads alone, with no random
    draw, so the rest of a seed's data is what it was before Contacts were emulated."""
    converted = [lead for lead in leads if lead["ConvertedContactId"] is not None]
    converted.sort(key=lambda lead: str(lead["ConvertedContactId"]))
    return [
        seeded_contact(
            lead,
            lead["ConvertedContactId"],
            lead["ConvertedAccountId"],
            lead["LastModifiedDate"],
        )
        for lead in converted
    ]
