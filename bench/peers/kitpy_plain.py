"""``kitpy serve`` as a user without the ``fast`` extra runs it: no httptools.

    python bench/peers/kitpy_plain.py serve SITE --host 127.0.0.1 --port PORT

The benchmark's one environment has httptools installed (uvicorn needs it), so this
hides it from the import system before kitpy starts: kitpy then reads request heads
with its plain-Python reader, exactly as after ``pip install kitpy`` alone. Everything
else (uvloop included) is as in ``kitpy serve``.
"""

from __future__ import annotations

import sys

sys.modules["httptools"] = None  # type: ignore[assignment]  # import httptools -> ImportError

from kitpy.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
