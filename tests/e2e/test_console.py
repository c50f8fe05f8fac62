"""The web console in a real browser (headless Chromium through Selenium) against a running stack:
sign in, live workloads, a job's histogram, cancelling from the page, tenancy, sign-out, an
accessibility audit (axe-core, vendored for this test), and that no page loads anything from
another server. Screenshots of every page go to .artifacts/console/."""

import asyncio
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import ROOT, Account, Stack, sampler_job, wait_for

ARTIFACTS = ROOT / ".artifacts" / "console"
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"
SVG_NS = "http://www.w3.org/2000/svg"

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None or shutil.which("chromedriver") is None,
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


async def provision(stack: Stack, tag: str) -> dict[str, Account]:
    """The accounts, made through the identity service in this process (as `qruntime admin` does,
    without starting a process per command)."""
    from shared.db.engine import create_engine, create_session_factory
    from shared.identity.service import IdentityService
    from shared.kit.settings import Settings

    settings = Settings(
        _env_file=None, **{k[9:].lower(): v for k, v in stack.env.items() if k.startswith("QRUNTIME_")}
    )
    engine = create_engine(settings, pool_size=1)
    identity = IdentityService(settings, create_session_factory(engine))
    made: dict[str, Account] = {}
    try:
        for role, admin in (("owner", False), ("other", False), ("boss", True)):
            user = await identity.create_user(f"console-{role}-{tag}", "admin" if admin else "user")
            instance = await identity.create_instance(f"console-{role}-{tag}")
            await identity.add_member(instance.name, user.name)
            _, key = await identity.create_key(user.name)
            made[role] = Account(user.name, key, instance.crn)
        held = await identity.create_instance(f"console-held-{tag}", allocation_seconds=0)
        await identity.add_member(held.name, made["owner"].name)
        made["held"] = Account(made["owner"].name, made["owner"].api_key, held.crn)
    finally:
        await engine.dispose()
    return made


@pytest.fixture(scope="module")
def people(stack: Stack) -> dict[str, Account]:
    """Three users of their own: `owner` (an unlimited instance and one whose allocation is used up,
    so jobs sent there stay queued: `held`), `other` (another user) and `boss` (an administrator)."""
    return asyncio.run(provision(stack, uuid.uuid4().hex[:6]))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
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
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    # Every request the page makes, to check that none leaves the server.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "chromedriver"), options=options
    )
    driver.set_page_load_timeout(60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def api(stack: Stack, account: Account) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url,
        timeout=30,
        headers={"Authorization": f"apikey {account.api_key}", "Service-CRN": account.instance_crn},
    )


def sign_in(driver: Any, stack: Stack, account: Account) -> None:
    from selenium.webdriver.common.by import By

    driver.get(stack.url + "/console")
    wait_for(lambda: driver.current_url.endswith("/console/login"), 30, "the sign-in form")
    driver.find_element(By.ID, "apikey").send_keys(account.api_key)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(lambda: "/console/workloads" in driver.current_url, 30, "the workloads page")


def sign_out(driver: Any) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "sign-out").click()
    wait_for(lambda: driver.current_url.endswith("/console/login"), 30, "the sign-in form after sign-out")


def shot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def row_status(driver: Any, job_id: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        row = driver.find_element(By.CSS_SELECTOR, f'#workloads tr[data-id="{job_id}"]')
        return str(row.get_attribute("data-status"))
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def text_of(driver: Any, selector: str) -> str | None:
    """The element's text, or None while the page is loading or the element is absent."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    try:
        return str(driver.find_element(By.CSS_SELECTOR, selector).text)
    except WebDriverException:
        return None


def click(driver: Any, element_id: str) -> None:
    """Click an element by id. A live page may swap the part holding it (a Server-Sent Event reloads
    it) between finding and clicking, so a stale element is found again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked() -> bool:
        try:
            driver.find_element(By.ID, element_id).click()
        except StaleElementReferenceException:
            return False
        return True

    wait_for(clicked, 30, f"#{element_id} to stay put long enough to be clicked", poll=0.1)


def accept_confirmation(driver: Any) -> None:
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(expected_conditions.alert_is_present()).accept()


def audit(driver: Any, page: str) -> None:
    """axe-core's WCAG 2 A/AA rules (labels, contrast, names, landmarks, keyboard reachability)."""
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}})"
        ".then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' ' + "
        "v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))))"
        ".catch(e => done(['axe failed: ' + e]));"
    )
    assert result == [], f"accessibility violations on {page}: {result}"


def external_requests(driver: Any, base: str) -> list[str]:
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            # The browser's own chrome:// pages are not the console's requests.
            if url.split(":", 1)[0] in ("http", "https", "ws", "wss") and not url.startswith(base + "/"):
                urls.append(url)
    return urls


def test_console_in_a_browser(stack: Stack, people: dict[str, Account], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    owner, held, other, boss = people["owner"], people["held"], people["other"], people["boss"]
    driver = browser
    sign_in(driver, stack, owner)
    shot(driver, "login-done")
    driver.execute_script("window.__notReloaded = true;")
    wait_for(
        lambda: driver.find_element(By.ID, "workloads").get_attribute("data-live") == "connected",
        30,
        "the live event stream",
    )

    # A job submitted through the API appears and turns Completed without a reload.
    with api(stack, owner) as client:
        response = client.post(
            "/api/v1/jobs", json=sampler_job("aer_simulator", shots=1000, tags=["console"])
        )
        assert response.status_code == 200, response.text
        job_id = response.json()["id"]
    wait_for(lambda: row_status(driver, job_id) is not None, 60, "the new job's row", poll=0.2)
    wait_for(lambda: row_status(driver, job_id) == "Completed", 120, "the row to turn Completed", poll=0.2)
    assert driver.execute_script("return window.__notReloaded === true;"), "the page was reloaded"
    shot(driver, "workloads")
    audit(driver, "workloads")

    # Its page shows the histogram: two outcomes of a Bell pair, adding up to the shots.
    driver.find_element(By.CSS_SELECTOR, f'#workloads a[href="/console/jobs/{job_id}"]').click()
    wait_for(lambda: job_id in driver.title, 30, "the job page")
    bars = driver.find_elements(By.CSS_SELECTOR, ".result-chart svg rect.bar")
    counts = {b.get_attribute("data-outcome"): int(b.get_attribute("data-count")) for b in bars}
    assert set(counts) <= {"00", "01", "10", "11"} and sum(counts.values()) == 1000, counts
    assert counts.get("00", 0) + counts.get("11", 0) == 1000, counts
    # Its inputs, decoded in a parse worker: the Bell circuit's pub.
    inputs = driver.find_element(By.ID, "inputs").text
    assert "pub 0: circuit" in inputs and "2 qubits" in inputs, inputs
    history = driver.find_element(By.ID, "history").text
    assert "Queued" in history and "Running" in history and "Completed" in history, history
    shot(driver, "job")
    audit(driver, "job")

    # A queued job (its instance's allocation is used up) is cancelled from its page.
    with api(stack, held) as client:
        queued_id = client.post("/api/v1/jobs", json=sampler_job("aer_simulator")).json()["id"]
    driver.get(f"{stack.url}/console/jobs/{queued_id}")
    assert driver.find_element(By.ID, "job-status").text == "Queued"
    click(driver, "cancel-job")
    accept_confirmation(driver)
    wait_for(lambda: text_of(driver, "#job-status") == "Cancelled", 30, "the job to show Cancelled")
    with api(stack, owner) as client:
        assert client.get(f"/api/v1/jobs/{queued_id}").json()["status"] == "Cancelled"

    # A batch with a job: its page has the timeline.
    with api(stack, owner) as client:
        batch = client.post("/api/v1/sessions", json={"mode": "batch", "backend": "aer_simulator"}).json()
        in_batch = client.post("/api/v1/jobs", json=sampler_job("aer_simulator", session_id=batch["id"]))
        stack.wait_final([in_batch.json()["id"]])
    driver.get(f"{stack.url}/console/sessions/{batch['id']}")
    assert driver.find_elements(By.CSS_SELECTOR, "#session svg rect.running")
    shot(driver, "session")
    audit(driver, "session")
    click(driver, "cancel-session")
    accept_confirmation(driver)
    wait_for(lambda: text_of(driver, "#session-state") == "Closed", 30, "the batch to show Closed")

    driver.get(f"{stack.url}/console/backends")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#map-fake_manila svg circle.qubit")) == 5
    assert driver.find_elements(By.CSS_SELECTOR, "#map-fake_manila svg line.coupler")
    shot(driver, "backends")
    audit(driver, "backends")
    driver.get(f"{stack.url}/console/usage")
    assert driver.find_elements(By.CSS_SELECTOR, "main svg polyline.cumulative")
    shot(driver, "usage")
    audit(driver, "usage")
    driver.get(f"{stack.url}/console/workloads")
    assert row_status(driver, queued_id) == "Cancelled" and row_status(driver, batch["id"]) is not None
    shot(driver, "workloads-later")

    # Keyboard: the first Tab reaches the skip link, and it moves focus to the content.
    driver.get(f"{stack.url}/console/workloads")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert driver.switch_to.active_element.get_attribute("class") == "skip"

    assert external_requests(driver, stack.url) == []
    sign_out(driver)
    driver.get(f"{stack.url}/console/workloads")
    wait_for(
        lambda: driver.current_url.endswith("/console/login"), 30, "a signed-out visitor sent to sign in"
    )
    shot(driver, "login")
    audit(driver, "login")

    # Another user: the first user's job page is the same 404 as a job that does not exist.
    sign_in(driver, stack, other)
    driver.get(f"{stack.url}/console/jobs/{job_id}")
    foreign = driver.find_element(By.TAG_NAME, "main").text.replace(job_id, "ID")
    missing_id = uuid.uuid4().hex[:20]
    driver.get(f"{stack.url}/console/jobs/{missing_id}")
    missing = driver.find_element(By.TAG_NAME, "main").text.replace(missing_id, "ID")
    assert foreign == missing and "Not found" in foreign, (foreign, missing)
    cookie = driver.get_cookie("qrt_console")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    with httpx.Client(base_url=stack.url, cookies={"qrt_console": cookie["value"]}) as as_other:
        assert as_other.get(f"/console/jobs/{job_id}").status_code == 404
        assert as_other.get(f"/console/jobs/{missing_id}").status_code == 404
        assert as_other.get(f"/console/jobs/{job_id}/events").status_code == 404
    sign_out(driver)

    # The administrator's page: create a key for the owner, then revoke it.
    sign_in(driver, stack, boss)
    driver.get(f"{stack.url}/console/admin")
    row = driver.find_element(By.XPATH, f"//table[@id='users']//tr[td[text()='{owner.name}']]")
    row.find_element(By.TAG_NAME, "button").click()
    wait_for(lambda: text_of(driver, "p.notice") is not None, 30, "the new key")
    new_key = str(driver.find_element(By.ID, "new-key").get_attribute("value"))
    assert new_key.startswith("qrt_")
    key_id = new_key.split("_")[1]
    shot(driver, "admin")
    audit(driver, "admin")
    driver.find_element(By.CSS_SELECTOR, f'tr[data-key="{key_id}"] button').click()
    accept_confirmation(driver)
    wait_for(
        lambda: text_of(driver, f'tr[data-key="{key_id}"] td:nth-child(5)') not in (None, ""),
        30,
        "the key to show as revoked",
    )
    response = httpx.post(
        stack.url + "/identity/token",
        data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": new_key},
    )
    assert response.status_code == 400 or response.status_code == 401
    sign_out(driver)


@contextmanager
def console_client(stack: Stack, account: Account) -> Iterator[httpx.Client]:
    """An HTTP client signed in to the console as `account`, through the sign-in form."""
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        nonce = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text)
        assert nonce is not None
        signed = client.post("/console/login", data={"apikey": account.api_key, "csrf": nonce.group(1)})
        assert signed.status_code == 303 and "qrt_console" in client.cookies
        yield client


def csrf_of(page: httpx.Response) -> str:
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    return token.group(1)


def test_actions_need_the_csrf_token_and_pages_stay_on_this_server(
    stack: Stack, people: dict[str, Account]
) -> None:
    owner = people["owner"]
    with httpx.Client(base_url=stack.url, timeout=30) as anonymous:
        form = anonymous.get("/console/login")
        assert form.headers["content-security-policy"].startswith("default-src 'self'")
        # Without the sign-in form's token, a key is not accepted.
        refused = anonymous.post("/console/login", data={"apikey": owner.api_key, "csrf": "forged"})
        assert refused.status_code == 403 and "qrt_console" not in anonymous.cookies

    with console_client(stack, owner) as client, api(stack, people["held"]) as owner_api:
        job_id = owner_api.post("/api/v1/jobs", json=sampler_job("aer_simulator")).json()["id"]
        # An action without the token, or from another origin, changes nothing.
        assert client.post(f"/console/jobs/{job_id}/cancel", data={}).status_code == 403
        token = csrf_of(client.get(f"/console/jobs/{job_id}"))
        evil = client.post(
            f"/console/jobs/{job_id}/cancel", data={"csrf": token}, headers={"Origin": "http://evil.example"}
        )
        assert evil.status_code == 403
        assert stack.sql("SELECT status FROM jobs WHERE id = $1", job_id)[0]["status"] == "QUEUED"
        done = client.post(f"/console/jobs/{job_id}/cancel", data={"csrf": token})
        assert done.status_code == 303
        assert stack.sql("SELECT status FROM jobs WHERE id = $1", job_id)[0]["status"] == "CANCELLED"

        # A user of two instances chooses the one the console acts in; a rerun runs there.
        token = csrf_of(client.get("/console/workloads"))
        refused = client.post("/console/instance", data={"csrf": token, "crn": "crn:v1:not-mine"})
        assert refused.status_code == 400
        held_crn = people["held"].instance_crn
        chosen = client.post("/console/instance", data={"csrf": token, "crn": held_crn})
        assert chosen.status_code == 303
        again = client.post(f"/console/jobs/{job_id}/rerun", data={"csrf": token})
        assert again.status_code == 303, again.text
        rerun_id = again.headers["location"].rsplit("/", 1)[1]
        placed = stack.sql(
            "SELECT i.crn FROM jobs j JOIN instances i ON i.id = j.instance_id WHERE j.id = $1", rerun_id
        )
        assert placed[0]["crn"] == held_crn

        # Acceptance 3: no page names a resource on another server.
        pages = ["/console/workloads", f"/console/jobs/{job_id}", "/console/backends", "/console/usage"]
        for path in pages:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
            assert_no_external_reference(response.text, path)
        for asset in ("/console/static/console.js", "/console/static/console.css"):
            response = client.get(asset)
            assert response.status_code == 200
            assert_no_external_reference(response.text, asset)

    # Run again: a new job with the same inputs (for a user of one instance).
    other = people["other"]
    with console_client(stack, other) as client, api(stack, other) as other_api:
        first = other_api.post("/api/v1/jobs", json=sampler_job("aer_simulator", shots=123)).json()["id"]
        again = client.post(
            f"/console/jobs/{first}/rerun", data={"csrf": csrf_of(client.get(f"/console/jobs/{first}"))}
        )
        assert again.status_code == 303
        second = again.headers["location"].rsplit("/", 1)[1]
        rows = stack.sql("SELECT params, user_id FROM jobs WHERE id = ANY($1::text[])", [first, second])
        assert len(rows) == 2 and rows[0]["params"] == rows[1]["params"]
        assert rows[0]["user_id"] == rows[1]["user_id"]
        assert client.get(again.headers["location"]).status_code == 200


def assert_no_external_reference(text: str, where: str) -> None:
    """Any absolute or protocol-relative URL, other than the SVG namespace name, is a failure."""
    found = re.findall(r"""(?:https?:)?//[A-Za-z0-9.-]+[^\s"'<>)]*""", text.replace(SVG_NS, ""))
    assert found == [], f"{where} refers to {found}"
