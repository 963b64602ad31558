"""example_site/tests (its own TestClient tests) pass, run as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys

from kitpy_server import EXAMPLE_SITE

#: Bound on the site's test run.
TIMEOUT = 120.0


def _state_files() -> set[str]:
    state = EXAMPLE_SITE / ".kitpy"
    return {str(p) for p in state.rglob("*")} if state.exists() else set()


def test_the_example_sites_own_tests_pass() -> None:
    before = _state_files()  # `kitpy serve example_site` may have made state: keep it as is
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=EXAMPLE_SITE,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
    assert _state_files() == before, "TestClient must not write to the site's own .kitpy/"
