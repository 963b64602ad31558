"""One REDbot check as JSON: ``python redbot_check.py URL METHOD [HEADERS]``.

REDbot's checker (``redbot.resource.HttpResource``) runs on thor's event loop, which
does not start twice in one process; test_redbot.py runs each check in its own.
HEADERS is a JSON list of [name, value] pairs. Prints ``{"status": ..., "error": ...,
"notes": [[level, category, summary], ...]}`` (subnotes flattened after their note).
"""

from __future__ import annotations

import json
import sys
from configparser import ConfigParser
from typing import Any

import thor
from redbot.resource import HttpResource


def check(url: str, method: str, headers: list[tuple[str, str]]) -> dict[str, Any]:
    config = ConfigParser()
    config.read_dict({"redbot": {"enable_local_access": "True"}})
    resource = HttpResource(config["redbot"], descend=False)
    resource.set_request(url, method=method, headers=headers)

    @thor.events.on(resource)
    def check_done() -> None:
        thor.stop()

    resource.check()
    thor.run()
    notes: list[list[str]] = []

    def walk(found: Any) -> None:
        for note in found:
            notes.append([note.level.value, note.category.value, str(note.summary)])
            walk(note.subnotes)

    walk(resource.response.notes)
    error = resource.fetch_error
    return {
        "status": resource.response.status_code,
        "error": None if error is None else str(error),
        "notes": notes,
    }


if __name__ == "__main__":
    url, method = sys.argv[1], sys.argv[2]
    pairs = [(str(n), str(v)) for n, v in json.loads(sys.argv[3])] if len(sys.argv) > 3 else []
    print(json.dumps(check(url, method, pairs)))
