"""``kitpy new --template svelte``: npm builds it, its tests pass, the app runs in a browser.

Needs npm and the npm registry (``npm install``); skipped without them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.acceptance.kit import Server
from tests.cli.test_new import kitpy, run_site_tests

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

NPM_TIMEOUT = 600.0


def npm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", *args, "--no-audit", "--no-fund"] if args[0] == "install" else ["npm", *args],
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT,
        cwd=cwd,
    )


def test_the_svelte_template_builds_tests_and_runs(tmp_path: Path, browser: Browser) -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    if subprocess.run(["npm", "ping"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip("the npm registry cannot be reached (npm install needs it)")
    assert kitpy("new", "app", "--template", "svelte", cwd=tmp_path).returncode == 0
    site = tmp_path / "app"
    for step in (("install",), ("test",)):
        result = npm(*step, cwd=site / "frontend")
        assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 2" in result.stdout
    built = (site / "static" / "index.html").read_text()
    assert 'src="/assets/' in built

    tests = run_site_tests(site)
    assert tests.returncode == 0 and "3 passed" in tests.stdout, tests.stdout + tests.stderr

    server = Server(site).start()
    try:
        page = browser.new_page()
        page.goto(server.url + "/a/page/of/the/app")  # the SPA fallback serves the app
        heading = "document.querySelector('h1')?.textContent"
        page.wait_for_function(f"{heading} === 'Hello, world!'", timeout=20_000)
        page.fill("input", "ann")  # the page asks the kitpy route again
        page.wait_for_function(f"{heading} === 'Hello, ann!'", timeout=20_000)
    finally:
        server.stop()
