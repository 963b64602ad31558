"""``python -m kitpy``: the kitpy command line."""

from __future__ import annotations

import sys

from kitpy.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
