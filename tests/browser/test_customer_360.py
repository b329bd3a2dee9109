"""The Customer 360 page in a real browser: Debian's headless Chromium, driven by Selenium.

Install the browser once (Debian / Ubuntu): ``apt-get install chromium chromium-driver``. Without
/usr/bin/chromium the test is skipped; nothing is downloaded at run time. The screenshot lands in
``test-output/browser/`` (ignored by git).
"""

import importlib
import tempfile
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from cdp import roles
from cdp.roles import roles_sync
from ingestion.models import IdentifierType

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "browser"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (/usr/bin/chromium): apt-get install chromium chromium-driver",
)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile_dir = tempfile.mkdtemp(prefix="cdp-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile_dir}",
        "--window-size=1400,2400",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture
def demo(transactional_db, django_user_model):
    """The demo data, and a support agent. A transactional test starts from whatever an earlier one left:
    the seeded identifier rules and the roles are put back first."""
    seed = importlib.import_module("ingestion.migrations.0002_seed_identifier_rules")
    for rule in seed.DEFAULT_RULES:
        IdentifierType.objects.get_or_create(name=rule["name"], defaults=rule)
    roles_sync(group_model=Group, permission_model=Permission)
    call_command("demo_load", stdout=open("/dev/null", "w"))  # noqa: SIM115
    agent = django_user_model.objects.create_user("agent", password="agent-pass-1", is_staff=True)
    agent.groups.add(Group.objects.get(name=roles.SUPPORT_AGENT))
    return agent


def test_a_support_agent_finds_a_customer_by_phone_and_sees_one_masked_record(browser, live_server, demo):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # Log in as a support agent.
    browser.get(f"{live_server.url}/admin/login/?next=/admin/profiles/profile/")
    browser.find_element(By.ID, "id_username").send_keys("agent")
    browser.find_element(By.ID, "id_password").send_keys("agent-pass-1")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # (a click does not wait for the page it leads to: wait for the next page's own elements, each time)
    WebDriverWait(browser, 15).until(lambda b: "/admin/login/" not in b.current_url)
    WebDriverWait(browser, 15).until(lambda b: b.find_elements(By.ID, "searchbar"))
    assert "Select profile to view" in browser.page_source or "profile" in browser.title.lower()

    # Search by the phone written unlike any source wrote it (+1 (415) 555-0132, 415.555.0132 in the demo).
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys("415 555 0132")
    search.submit()
    WebDriverWait(browser, 15).until(lambda b: "q=" in b.current_url)
    results = WebDriverWait(browser, 15).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    )
    assert len(results) == 1
    assert "Jonathan Smith" in results[0].text

    # Open the profile: one unified record built from at least three sources.
    results[0].find_element(By.CSS_SELECTOR, "a").click()
    WebDriverWait(browser, 15).until(lambda b: b.find_elements(By.CSS_SELECTOR, "fieldset.records h2"))
    heading = browser.find_element(By.CSS_SELECTOR, "fieldset.records h2").text
    sources = heading.split("sources: ", 1)[1].split(";", 1)[0].split(", ")
    assert len(sources) >= 3, heading
    record_columns = browser.find_elements(By.CSS_SELECTOR, "fieldset.records th.record-source")
    assert len({column.text.split("\n")[0] for column in record_columns}) >= 3
    golden = {
        row.find_element(By.CSS_SELECTOR, "td:nth-child(1)").text: row.find_element(
            By.CSS_SELECTOR, "td:nth-child(2)"
        ).text
        for row in browser.find_elements(By.CSS_SELECTOR, "tr.attribute")
    }
    assert golden["first_name"] == "Jonathan"

    # Masked for this role: the year of birth only, the last digits of the phone, the email's local part.
    assert golden["birth_date"] == "1984-**-**"
    assert golden["phone"] == "•••0132"
    assert golden["email"] == "j•••@example.com"
    page = browser.page_source
    assert "1984-03-12" not in page and "+14155550132" not in page and "jon.smith@example.com" not in page

    OUTPUT.mkdir(parents=True, exist_ok=True)
    screenshot = OUTPUT / "customer_360.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
