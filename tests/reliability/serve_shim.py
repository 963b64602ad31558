"""Stand-in for ``python -m kitpy serve SITE --host H --port P`` until the CLI lands.

It wires the runtime to the server as the CLI will (kitpy.toml [server] limits and
allowed_origins), logs at INFO to stderr and prints ``kitpy serving http://H:P``.
The suite uses the real CLI as soon as ``kitpy/__main__.py`` exists.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from kitpy.protocol.limits import Limits
from kitpy.runtime.app import load_app
from kitpy.server.serve import run


def main() -> None:
    site = Path(sys.argv[1])
    host = sys.argv[sys.argv.index("--host") + 1]
    port = int(sys.argv[sys.argv.index("--port") + 1])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    app = load_app(site)
    config = app.site.config.server

    def ready(addresses: list[tuple[str, int]]) -> None:
        print(f"kitpy serving http://{addresses[0][0]}:{addresses[0][1]}", flush=True)

    run(
        app,
        host=host,
        port=port,
        limits=Limits(**config.limits),
        allowed_origins=config.allowed_origins,
        on_ready=ready,
    )


if __name__ == "__main__":
    main()
