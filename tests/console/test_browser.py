"""The console in a real browser, served by a real `leadsync run` against the sandbox: headless
Chromium (Debian's chromium and chromium-driver, driven by selenium) signs in, searches a
lead and opens it, queues a backfill and watches it run to its end without reloading, and
resolves a review item on the Exceptions page, with screenshots checked for what they draw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from leadsync.config import Config
from leadsync.sandbox import HubSpotSettings, Sandbox, SandboxSettings
from leadsync.sync.store import Store
from tests.console.conftest import ADA_TOKEN, CONSOLE, ENVIRON
from tests.support import REAL_PROCESSES, chromedriver, chromium, pixels_near, set_up_sandbox_config

pytestmark = [REAL_PROCESSES, pytest.mark.slow]

T = TypeVar("T")
HEADER_BLUE = "#1e3a8a"  # the console's header bar
BUTTON_BLUE = "#2563eb"  # buttons, the current page in the menu, progress bars
WIDTH, HEIGHT = 1280, 900
# How long a lookup waits for an element to appear (pages render, reload themselves).
FIND_WAIT_SECONDS = 5


@dataclass
class Running:
    url: str
    config: Config
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], *, seconds: float = 60) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds} s for {what}")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
            return bool(json.load(answer)["status"] == "ok")
    except OSError:
        return False


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Running]:
    """`leadsync run` with a [console], after its first sync of a small sandbox."""
    settings = SandboxSettings(
        port=0, seed=9, leads=300, hubspot=HubSpotSettings(ten_second_limit=100_000)
    )
    with Sandbox(settings) as sandbox:
        config: Config = set_up_sandbox_config(sandbox, tmp_path)
        assert config.path is not None
        port = free_port()
        config.path.write_text(
            config.path.read_text()
            + CONSOLE
            + f"""
[schedules]
sync_every_minutes = 0.05
backfill_poll_seconds = 0.5

[service]
metrics_port = {port}
lease_seconds = 2
lease_wait_seconds = 0.3

[backfill]
chunk_records = 50
yield_seconds = 0.4
"""
        )
        log = tmp_path / "service.err"
        with log.open("w") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "leadsync.cli", "run", "--config", str(config.path)],
                stdout=err,
                stderr=err,
                env={**os.environ, **ENVIRON},
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for("the first sync", lambda: healthy(url) or process.poll() is not None)
            assert process.poll() is None, log.read_text()
            yield Running(url, config, process, log)
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--window-size={WIDTH},{HEIGHT}",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=DriverService(chromedriver()))
    driver.implicitly_wait(FIND_WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, path: Path) -> Image.Image:
    driver.save_screenshot(str(path))
    image = Image.open(path).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24)
    assert colours is not None
    total = image.size[0] * image.size[1]
    # Drawn: the header bar and the blue of buttons or bars, text, and not one flat colour.
    assert pixels_near(colours, HEADER_BLUE) > 0.02 * total, f"{path.name}: no header drawn"
    assert pixels_near(colours, BUTTON_BLUE) > 300, f"{path.name}: no button or bar drawn"
    assert pixels_near(colours, "#1f2937") > 200, f"{path.name}: no text drawn"
    assert len(colours) > 50, f"{path.name}: hardly anything drawn"
    return image


def a_lead(config: Config) -> tuple[str, str, str]:
    """A synced lead's id, last name and email, with a record in each CRM."""
    with Store(config.database_url) as store:
        with store.engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT lead_id FROM leads ORDER BY lead_id").all()
        leads = store.leads([row[0] for row in rows])
        records = store.records_of(list(leads))
    for lead_id, lead in leads.items():
        last, email = lead.values.get("last_name"), lead.values.get("email")
        crms = {record.crm for record in records.get(lead_id, [])}
        if last and email and len(last) > 3 and crms == {"hubspot", "salesforce"}:
            return lead_id, str(last), str(email)
    raise AssertionError("no lead in both CRMs with a name and an email")


def test_sign_in_search_a_lead_and_queue_a_backfill_in_chromium(
    service: Running, browser: WebDriver, tmp_path: Path
) -> None:
    console = f"{service.url}/console/"
    browser.get(console)
    assert "/console/login" in browser.current_url
    browser.find_element(By.ID, "user").send_keys("ada")
    browser.find_element(By.ID, "secret").send_keys(ADA_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for("the status page", lambda: browser.current_url == console)
    assert browser.find_element(By.ID, "health").text == "ok"
    runs = browser.find_element(By.ID, "runs").text
    assert "sync succeeded" in runs
    screenshot(browser, tmp_path / "status.png")

    lead_id, last_name, email = a_lead(service.config)
    browser.find_element(By.LINK_TEXT, "Leads").click()
    browser.find_element(By.ID, "q").send_keys(last_name.lower())
    browser.find_element(By.CSS_SELECTOR, "form.search button").click()
    results = browser.find_element(By.ID, "results")
    assert email in results.text
    results.find_element(By.CSS_SELECTOR, f'a[href="/console/leads/{lead_id}"]').click()
    wait_for("the lead's page", lambda: browser.current_url.endswith(f"/leads/{lead_id}"))
    assert browser.find_element(By.TAG_NAME, "h1").text == email
    records = browser.find_element(By.ID, "records")
    assert "hubspot" in records.text
    assert "salesforce" in records.text
    links = records.find_elements(By.CSS_SELECTOR, "a.crm-link")
    assert len(links) == 1  # only HubSpot's record_url is configured
    assert all(
        link.get_attribute("href").startswith("https://app.hubspot.com/contacts/1234567/")
        for link in links
    )
    screenshot(browser, tmp_path / "lead.png")

    browser.find_element(By.LINK_TEXT, "Backfills").click()
    Select(browser.find_element(By.ID, "crm")).select_by_value("hubspot")
    browser.find_element(By.CSS_SELECTOR, "#queue button[type=submit]").click()
    wait_for("the backfill's page", lambda: "/console/backfills/" in browser.current_url)
    page = browser.current_url

    def status() -> str:
        try:
            return str(browser.find_element(By.CSS_SELECTOR, "[data-field=status]").text)
        except StaleElementReferenceException:  # the page reloads itself as the status moves
            return ""

    # The service takes it up and runs it; the page follows by itself (the test never reloads).
    seen = {status()}
    for _ in range(600):
        seen.add(status())
        if "succeeded" in seen:
            break
        time.sleep(0.2)
    assert status() == "succeeded", (seen, service.log.read_text()[-2000:])
    assert browser.current_url == page
    assert seen & {"queued", "running"}  # it showed the backfill under way, then moved on
    pulled = browser.find_element(By.CSS_SELECTOR, '[data-crm="hubspot"][data-field="pulled"]')
    assert pulled.text == "300"
    # Absent: asked once, not waited for. With the implicit wait a lookup that finds nothing
    # waits it out in full (5 s, half this test); the page is loaded and final (its status
    # and counts were read from it above), so a Stop button there would be found at once.
    browser.implicitly_wait(0)
    assert browser.find_elements(By.ID, "stop") == []
    browser.implicitly_wait(FIND_WAIT_SECONDS)
    image = screenshot(browser, tmp_path / "backfill.png")
    assert image.size[0] >= WIDTH - 20


def test_resolve_a_review_item_from_the_exceptions_page_in_chromium(
    service: Running, browser: WebDriver, tmp_path: Path
) -> None:
    def waiting() -> list[str]:
        with Store(service.config.database_url) as store:
            return [f"{item.crm}/{item.record_id}" for item in store.reviews.items()]

    queued = wait_for("a duplicate in review", waiting)
    browser.get(f"{service.url}/console/login")
    browser.find_element(By.ID, "user").send_keys("ada")
    browser.find_element(By.ID, "secret").send_keys(ADA_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for("the status page", lambda: browser.current_url == f"{service.url}/console/")
    browser.find_element(By.LINK_TEXT, "Exceptions").click()
    first = browser.find_element(By.CSS_SELECTOR, "article.review-item")
    record = first.get_attribute("data-record")
    assert record in queued
    assert "a duplicate" in first.text
    screenshot(browser, tmp_path / "exceptions.png")
    first.find_element(By.CSS_SELECTOR, "button.keep-apart").click()
    notice = wait_for("the decision", lambda: browser.find_elements(By.ID, "notice"))
    assert "kept apart as lead" in notice[0].text
    assert "the next sync applies it" in notice[0].text
    assert record not in waiting()
    crm, record_id = str(record).split("/")
    with Store(service.config.database_url) as store:
        assert store.lead_ids_for(crm, [record_id])  # linked to a lead of its own
