"""/docs and /redoc work on a machine without internet: their pages reference only local assets,
and a real (headless) browser renders the operations and Swagger's Authorize button from them."""

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.stack import Stack

EXTERNAL_URL = re.compile(r"""(?:https?:)?//[^\s"'<>]+""")
ASSET = re.compile(r"""(?:src|href)="([^"]+)\"""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(stack: Stack, page: str) -> None:
    html = httpx.get(stack.url + page, timeout=10).text
    assert not EXTERNAL_URL.findall(html), EXTERNAL_URL.findall(html)
    assets = ASSET.findall(html)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        response = httpx.get(stack.url + asset, timeout=10)
        assert response.status_code == 200, asset
        assert len(response.content) > 500


def render(url: str, tmp_path: Path) -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout


def test_swagger_ui_renders_operations_and_authorize(stack: Stack, tmp_path: Path) -> None:
    dom = render(stack.url + "/docs", tmp_path)
    assert "btn authorize" in dom
    for summary in ("Submit a job", "Exchange an API key for an access token", "Open a session or batch"):
        assert summary in dom


def test_redoc_renders_operations(stack: Stack, tmp_path: Path) -> None:
    dom = render(stack.url + "/redoc", tmp_path)
    assert "Submit a job" in dom
    assert "Stream a session's events" in dom.replace("&#39;", "'")
