"""README.md's Quick start, run as written in a clean shell (no venv on PATH, no python)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Commands that run until Ctrl-C, or install: checked elsewhere, not run here.
LONG_RUNNING = ("kitpy dev", "kitpy serve", "pip install")


def quick_start() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]


def test_the_quick_start_runs_in_a_clean_shell(tmp_path: Path) -> None:
    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix) or not (venv / "bin" / "activate").exists():
        pytest.skip("the tests do not run in a virtual environment")
    commands = quick_start()
    assert commands[0] == ". .venv/bin/activate"
    assert "kitpy new mysite" in commands and "python -m pytest" in commands
    script = [f". {venv / 'bin' / 'activate'}", f"cd {tmp_path}"]
    script += [c for c in commands[1:] if c and not c.startswith(LONG_RUNNING)]
    script += ["kitpy routes", "kitpy serve --help > /dev/null", "kitpy dev --help > /dev/null"]
    result = subprocess.run(
        ["bash", "-euc", "\n".join(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"HOME": os.environ.get("HOME", "/"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    assert "/api/hello/[name]" in result.stdout
