"""example_site/tests (its own TestClient tests) pass, run as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys

from kitpy_server import EXAMPLE_SITE

#: Bound on the site's test run.
TIMEOUT = 120.0


def test_the_example_sites_own_tests_pass() -> None:
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
    assert not (EXAMPLE_SITE / ".kitpy").exists()
