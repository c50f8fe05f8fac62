"""The console's experiments pages in a real browser (headless Chromium through Selenium) against a
running stack: the instance's path tree, a sequence's page turning FINISHED without a reload with
its points plotted against the scanned parameter, an accessibility audit, and another instance's
user getting the same 404 as for a missing sequence. Screenshots go to .artifacts/console/."""

import asyncio
import shutil
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.test_console import (
    api,
    audit,
    browser,  # noqa: F401 - the module's browser fixture
    external_requests,
    shot,
    sign_in,
    sign_out,
    text_of,
)
from tests.stack import Account, Stack, wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None or shutil.which("chromedriver") is None,
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)

API = "/api/v1/experiments/"
POINTS = 5

RX_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta;
qubit[1] q;
bit[1] c;
rx(theta) q[0];
c[0] = measure q[0];
"""


async def provision(stack: Stack, tag: str) -> dict[str, Account]:
    """Two users, each alone in an instance of their own (made in this process, as the console test does)."""
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
        for role in ("scientist", "stranger"):
            user = await identity.create_user(f"lab-{role}-{tag}", "user")
            instance = await identity.create_instance(f"lab-{role}-{tag}")
            await identity.add_member(instance.name, user.name)
            _, key = await identity.create_key(user.name)
            made[role] = Account(user.name, key, instance.crn)
    finally:
        await engine.dispose()
    return made


def test_experiments_pages_in_a_browser(stack: Stack, browser: Any) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    people = asyncio.run(provision(stack, uuid.uuid4().hex[:6]))
    scientist, stranger = people["scientist"], people["stranger"]
    root = f"c{uuid.uuid4().hex[:8]}"
    path = f"/{root}/rabi/scan"
    definition = {
        "backend": "fake_manila",
        "program": "sampler",
        "circuit": RX_QASM3,
        "shots": 200,
        "iteration": {
            "steps": [
                {
                    "linspace": {
                        "variable": "theta",
                        "start": "0",
                        "stop": "pi",
                        "num": POINTS,
                        "steps": [{"execute": {}}],
                    }
                }
            ]
        },
    }
    with api(stack, scientist) as client:
        created = client.put(f"{API}sequences{path}", json=definition)
        assert created.status_code == 201, created.text
        assert client.put(f"{API}paths/{root}/notes").status_code == 201

    driver = browser
    sign_in(driver, stack, scientist)
    driver.find_element(By.CSS_SELECTOR, 'header nav a[href="/console/experiments"]').click()
    wait_for(lambda: "Experiments" in driver.title, 30, "the experiments page")
    tree = driver.find_element(By.ID, "tree")
    assert tree.find_element(By.CSS_SELECTOR, f'li[data-path="/{root}/notes"]')
    link = tree.find_element(By.CSS_SELECTOR, f'li[data-path="{path}"] a')
    assert tree.find_element(By.CSS_SELECTOR, f'li[data-path="{path}"] .badge').text == "draft"
    shot(driver, "experiments")
    audit(driver, "experiments")

    # The draft's page listens; launching it through the API turns it FINISHED without a reload.
    link.click()
    wait_for(lambda: path in driver.title, 30, "the sequence page")
    assert text_of(driver, "#sequence-state") == "draft"
    wait_for(
        lambda: driver.find_element(By.ID, "sequence").get_attribute("data-live") == "connected",
        30,
        "the sequence's event stream",
    )
    driver.execute_script("window.__notReloaded = true;")
    with api(stack, scientist) as client:
        launched = client.post(f"{API}sequences{path}/launch")
        assert launched.status_code in (200, 201, 202), launched.text
    wait_for(
        lambda: text_of(driver, "#sequence-state") == "finished", 180, "the sequence to finish", poll=0.3
    )
    wait_for(
        lambda: len(driver.find_elements(By.CSS_SELECTOR, ".scan-chart svg circle.point")) == POINTS,
        30,
        "the plot of every point",
    )
    assert driver.execute_script("return window.__notReloaded === true;"), "the page was reloaded"
    dots = driver.find_elements(By.CSS_SELECTOR, ".scan-chart svg circle.point")
    xs = sorted(float(str(d.get_attribute("data-x"))) for d in dots)
    ys = {float(str(d.get_attribute("data-x"))): float(str(d.get_attribute("data-y"))) for d in dots}
    assert xs[0] == 0.0 and abs(xs[-1] - 3.141593) < 1e-5, xs
    # rx(theta) then measure: P(1) = sin²(theta / 2), from 0 at theta = 0 to 1 at theta = pi.
    assert ys[xs[0]] < 0.15 and ys[xs[-1]] > 0.85, ys
    assert "P(1) against theta" in driver.find_element(By.CSS_SELECTOR, ".scan-chart figcaption").text
    assert text_of(driver, "#sequence-points") == f"{POINTS} of {POINTS}"
    job_links = driver.find_elements(By.CSS_SELECTOR, "#sequence-jobs a")
    assert job_links and all("/console/jobs/" in str(a.get_attribute("href")) for a in job_links)
    shot(driver, "sequence")
    audit(driver, "sequence")
    assert external_requests(driver, stack.url) == []
    sign_out(driver)

    # Another instance's user: the sequence is the same 404 as one that does not exist.
    sign_in(driver, stack, stranger)
    driver.get(f"{stack.url}/console/sequence?path={path}")
    foreign = driver.find_element(By.TAG_NAME, "main").text.replace(path, "PATH")
    missing = f"/{root}/rabi/nothing"
    driver.get(f"{stack.url}/console/sequence?path={missing}")
    assert foreign == driver.find_element(By.TAG_NAME, "main").text.replace(missing, "PATH")
    assert "Not found" in foreign, foreign
    driver.get(f"{stack.url}/console/experiments")
    assert not driver.find_elements(By.CSS_SELECTOR, f'li[data-path="/{root}"]')
    cookie = driver.get_cookie("qrt_console")
    assert cookie
    with httpx.Client(base_url=stack.url, cookies={"qrt_console": cookie["value"]}, timeout=30) as other:
        for suffix in ("", "/body", "/events"):
            assert other.get(f"/console/sequence{suffix}", params={"path": path}).status_code == 404
    sign_out(driver)
