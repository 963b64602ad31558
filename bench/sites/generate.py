"""Make a copy of the hello site grown to N routes, for the 10- vs 1,000-route runs.

``python bench/sites/generate.py DEST --routes 1000``

The padding routes mix the shapes real sites have (static pages, a parameter, a
nested parameter, a rest parameter, a matcher) so the route table is not just a
long list of static names; the four benchmark routes stay as they are.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

HELLO = Path(__file__).resolve().parent / "hello"
BODY = 'async def get(event):\n    return {{"body": "page {index}"}}\n'
SHAPES = (
    "page{i}.py",
    "docs/section{i}/index.py",
    "api/v{i}/items/[id].py",
    "blog{i}/[slug]/comments.py",
    "files{i}/[...path].py",
    "shop/[category]/item{i}/[id=int].py",
    "(group)/teams{i}/[[page]].py",
)


def count_routes(site: Path) -> int:
    routes = site / "routes"
    return sum(
        1
        for path in routes.rglob("*.py")
        if not any(part.startswith(("_", ".")) for part in path.relative_to(routes).parts)
    )


def generate(dest: Path, total: int) -> Path:
    """Copy the hello site to ``dest`` and pad it to ``total`` route files."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(HELLO, dest, ignore=shutil.ignore_patterns(".kitpy", "__pycache__"))
    missing = total - count_routes(dest)
    for index in range(max(0, missing)):
        path = dest / "routes" / SHAPES[index % len(SHAPES)].format(i=index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BODY.format(index=index))
    return dest


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--routes", type=int, default=1000)
    args = parser.parse_args()
    site = generate(args.dest, args.routes)
    print(f"{site}: {count_routes(site)} routes")
