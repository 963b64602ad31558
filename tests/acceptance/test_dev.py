"""``kitpy dev``: route table, tracebacks shown, reload on change (docs/cli.md)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from .kit import Server, run_kitpy, write_site


def test_dev_reload_traceback_and_route_table(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site",
        {
            "routes/index.py": 'def get(event):\n    return {"body": "version one"}\n',
            "routes/boom.py": 'def get(event):\n    raise ValueError("dev-visible-detail")\n',
        },
    )
    srv = Server(site, command="dev")
    try:
        srv.start()
        out = srv.stdout() + srv.log()
        assert "routes/index.py" in out and "routes/boom.py" in out  # the route table
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            assert client.get("/").text == "version one"
            boom = client.get("/boom")
            assert boom.status_code == 500
            assert "dev-visible-detail" in boom.text and "Traceback" in boom.text
            (site / "routes" / "index.py").write_text(
                'def get(event):\n    return {"body": "version two"}\n'
            )
            (site / "routes" / "new.py").write_text('def get(event):\n    return {"body": "new"}\n')
            deadline = time.monotonic() + 20
            text = ""
            while time.monotonic() < deadline:
                try:
                    text = client.get("/").text
                    if text == "version two" and client.get("/new").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            assert text == "version two"
            assert client.get("/new").text == "new"
        assert srv.stop() == 0
    finally:
        srv.kill()


def test_dev_help_mentions_port_5173() -> None:
    result = run_kitpy("dev", "--help")
    assert result.returncode == 0
    assert "5173" in result.stdout
