"""The standard fields a real org and portal fill beyond the ones the sync maps by default:
addresses, mobile and fax numbers, salutations, opt-outs, descriptions, personas, languages,
and an opportunity's probability, forecast category and type.

They are drawn from a random stream of their own (`Details`), so that adding them changed none
of the values the rest of the seed draws: tests and reports pinned on seeded data still hold.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from leadsync.sandbox.schema import (
    HUBSPOT_PERSONAS,
    SALUTATIONS,
    STAGE_PROBABILITY,
    forecast_category,
)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Place:
    """A company's office: what the address fields of its people hold."""

    street: str
    city: str
    state: str | None
    postal_code: str


# (city, state or None, postal codes to draw from) per country code; street names per country,
# and whether the house number goes after the street name.
_CITIES: dict[str, tuple[tuple[str, str | None, tuple[str, ...]], ...]] = {
    "US": (
        ("San Francisco", "CA", ("94105", "94107", "94111")),
        ("Austin", "TX", ("78701", "78702", "78704")),
        ("New York", "NY", ("10001", "10013", "10017")),
        ("Chicago", "IL", ("60601", "60606", "60611")),
        ("Seattle", "WA", ("98101", "98104", "98109")),
        ("Boston", "MA", ("02108", "02110", "02116")),
        ("Denver", "CO", ("80202", "80205")),
        ("Atlanta", "GA", ("30303", "30308")),
    ),
    "GB": (
        ("London", None, ("EC2A 4NE", "SE1 9SG", "W1T 1JY")),
        ("Manchester", None, ("M1 2AB", "M4 5JD")),
        ("Edinburgh", None, ("EH1 1YZ", "EH3 9DR")),
    ),
    "DE": (
        ("Berlin", "Berlin", ("10115", "10178", "10999")),
        ("München", "Bayern", ("80331", "80469")),
        ("Hamburg", "Hamburg", ("20095", "20457")),
    ),
    "FR": (("Paris", None, ("75002", "75009", "75011")), ("Lyon", None, ("69002", "69003"))),
    "CA": (
        ("Toronto", "ON", ("M5V 2T6", "M5H 2N2")),
        ("Vancouver", "BC", ("V6B 1A1", "V6E 4M3")),
        ("Montréal", "QC", ("H3B 4W8", "H2Y 1C6")),
    ),
    "AU": (("Sydney", "NSW", ("2000", "2010")), ("Melbourne", "VIC", ("3000", "3006"))),
    "IN": (
        ("Bengaluru", "KA", ("560001", "560034")),
        ("Mumbai", "MH", ("400001", "400051")),
        ("Pune", "MH", ("411001", "411014")),
    ),
    "JP": (("Tokyo", "Tokyo", ("100-0005", "150-0002")), ("Osaka", "Osaka", ("530-0001",))),
    "BR": (("São Paulo", "SP", ("01310-100", "04538-133")), ("Curitiba", "PR", ("80010-000",))),
    "NL": (("Amsterdam", None, ("1012 AB", "1017 CE")), ("Rotterdam", None, ("3011 AA",))),
    "ES": (("Madrid", None, ("28013", "28046")), ("Barcelona", None, ("08002", "08018"))),
    "SE": (("Stockholm", None, ("111 52", "114 35")), ("Göteborg", None, ("411 03",))),
    "SG": (("Singapore", None, ("018989", "048583")),),
    "MX": (("Ciudad de México", "CDMX", ("06600", "11560")), ("Monterrey", "NL", ("64000",))),
}
_STREETS: dict[str, tuple[tuple[str, ...], bool]] = {
    "US": (("Market Street", "Main Street", "Congress Avenue", "5th Avenue", "Pine Street"), False),
    "GB": (("High Street", "Station Road", "King Street", "Church Lane"), False),
    "DE": (("Hauptstraße", "Friedrichstraße", "Bahnhofstraße", "Leopoldstraße"), True),
    "FR": (("rue de Rivoli", "avenue des Ternes", "rue de la République"), False),
    "CA": (("King Street West", "Granville Street", "Rue Sainte-Catherine"), False),
    "AU": (("George Street", "Collins Street", "Pitt Street"), False),
    "IN": (("MG Road", "Residency Road", "Linking Road"), False),
    "JP": (("Marunouchi 1-chome", "Shibuya 2-chome", "Umeda 3-chome"), False),
    "BR": (("Avenida Paulista", "Rua Augusta", "Rua XV de Novembro"), True),
    "NL": (("Herengracht", "Keizersgracht", "Coolsingel"), True),
    "ES": (("Calle de Alcalá", "Passeig de Gràcia", "Gran Vía"), True),
    "SE": (("Drottninggatan", "Kungsgatan", "Avenyn"), True),
    "SG": (("Raffles Place", "Robinson Road", "Anson Road"), False),
    "MX": (("Paseo de la Reforma", "Avenida Insurgentes Sur", "Calzada del Valle"), True),
}
_LANGUAGE_BY_COUNTRY = {
    "DE": "de",
    "FR": "fr",
    "ES": "es",
    "MX": "es",
    "BR": "pt-br",
    "JP": "ja",
    "NL": "nl",
    "SE": "sv",
}
_INTERESTS = ("pricing", "a demo", "the API", "SSO", "an annual plan", "data residency")
_NEXT_STEPS = ("Send proposal", "Security review", "Demo for the team", "Legal review")


class Details:
    """Draws the extra fields, from a stream of its own."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"leadsync-seed-details-{seed}")
        self._random = self._rng.random

    def _pick(self, table: Sequence[_T]) -> _T:
        return table[int(self._random() * len(table))]

    def chance(self, rate: float) -> bool:
        return self._random() < rate

    def place(self, country_code: str) -> Place:
        city, state, codes = self._pick(_CITIES[country_code])
        names, number_after = _STREETS[country_code]
        name = self._pick(names)
        number = 1 + int(self._random() * 240)
        street = f"{name} {number}" if number_after else f"{number} {name}"
        return Place(street, city, state, self._pick(codes))

    def mobile(self, phone_prefix: str) -> str | None:
        if not self.chance(0.4):
            return None
        digits = str(int(self._random() * 800_000_000) + 100_000_000)
        return f"{phone_prefix} 7{digits[:2]} {digits[2:5]} {digits[5:]}"

    def lead_fields(self, place: Place, mobile: str | None, *, fresh: bool) -> dict[str, Any]:
        """A Salesforce lead's extra standard fields."""
        has_address = self.chance(0.85)
        bounced = self.chance(0.01)
        return {
            "Salutation": self._pick(SALUTATIONS) if self.chance(0.3) else None,
            "MobilePhone": mobile,
            "Fax": f"{mobile[:-2]}00" if mobile and self.chance(0.05) else None,
            "Street": place.street if has_address else None,
            "City": place.city if has_address or self.chance(0.5) else None,
            "State": place.state if has_address else None,
            "PostalCode": place.postal_code if has_address else None,
            "Description": (
                f"Asked about {self._pick(_INTERESTS)}." if self.chance(0.06) else None
            ),
            "HasOptedOutOfEmail": self.chance(0.04),
            "DoNotCall": self.chance(0.03),
            "HasOptedOutOfFax": self.chance(0.01),
            "IsUnreadByOwner": fresh and self.chance(0.5),
            "EmailBouncedReason": "550 5.1.1 mailbox unavailable" if bounced else None,
            "EmailBouncedDate": None,  # set by the caller to a moment of the lead's history
        }

    def opportunity_fields(self, stage: str, amount: float, lead_source: Any) -> dict[str, Any]:
        probability = STAGE_PROBABILITY[stage]
        is_open = not stage.startswith("Closed")
        return {
            "Probability": float(probability),
            "ExpectedRevenue": round(amount * probability / 100, 2),
            "Type": "New Customer" if self.chance(0.85) else "Existing Customer - Upgrade",
            "NextStep": self._pick(_NEXT_STEPS) if is_open and self.chance(0.6) else None,
            "LeadSource": lead_source,
            "ForecastCategoryName": forecast_category(stage),
            "Description": None,
        }

    def contact_properties(
        self, place: Place, mobile: str | None, country_code: str
    ) -> dict[str, str]:
        """A HubSpot contact's extra default properties (unset ones absent, as HubSpot has
        them)."""
        props: dict[str, str] = {}
        if self.chance(0.7):
            props["address"] = place.street
            props["zip"] = place.postal_code
            if place.state:
                props["state"] = place.state
        if self.chance(0.8):
            props["city"] = place.city
        if mobile and self.chance(0.9):
            props["mobilephone"] = mobile
        if self.chance(0.1):
            props["salutation"] = self._pick(SALUTATIONS)
        if self.chance(0.3):
            props["hs_persona"] = self._pick(HUBSPOT_PERSONAS)
        language = _LANGUAGE_BY_COUNTRY.get(country_code)
        if self.chance(0.25):
            props["hs_language"] = language or "en"
        if self.chance(0.05):
            props["message"] = f"Interested in {self._pick(_INTERESTS)}."
        if self.chance(0.04):
            props["hs_email_optout"] = "true"
        return props
