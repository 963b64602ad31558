"""Where kitpy serve spends its time under load: py-spy samples, summed by function.

    python bench/profile_server.py [--scenario hello|json|ws_echo|broadcast] [--duration 10]
                            [--server kitpy|bare|uvicorn-h11|...]

Starts the server as bench/run.py does (pinned to CPU 0), drives it from CPU 1 with
the scenario's load, samples it with ``py-spy record --format raw`` for the run, and
prints the functions with the most samples: self (the frame on top) and inclusive (the
frame anywhere on the stack), as shares of all samples. The collapsed stacks are kept
in bench/results/profile-<server>-<scenario>.txt (flamegraph.pl and speedscope read
them).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run  # noqa: E402


def summarize(stacks: Path, top: int) -> str:
    self_counts: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if frame and not frame.startswith("process")]
        frames = [frame for frame in frames if not frame.startswith("thread ")]
        if not frames or any(frame.startswith("Thread._bootstrap ") for frame in frames):
            continue  # an idle worker thread, not the event loop
        total += count
        self_counts[short(frames[-1])] += count
        for frame in {short(frame) for frame in frames}:
            inclusive[frame] += count
    lines = [f"{total} samples of the event loop thread", "", "self %  function"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in self_counts.most_common(top)]
    lines += ["", "incl %  function"]
    lines += [f"{100 * n / total:5.1f}  {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def short(frame: str) -> str:
    """``handle (kitpy/server/connection.py:120)`` -> ``handle (kitpy/server/connection.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    if "/kitpy/" in where:
        where = "kitpy/" + where.split("/kitpy/", 1)[1]
    return f"{name} ({where})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="kitpy")
    parser.add_argument(
        "--scenario", default="hello", choices=("hello", "json", "ws_echo", "broadcast")
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--nonblocking",
        action="store_true",
        help="do not pause the server per sample: faster, but stacks come out partial",
    )
    args = parser.parse_args()
    if not shutil.which("py-spy"):
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 1
    server = next(s for s in run.SERVERS if s.name == args.server)
    scratch = Path(tempfile.mkdtemp(prefix="kitpy-profile-"))
    out = BENCH / "results" / f"profile-{args.server}-{args.scenario}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = run.Config(
        rounds=1,
        duration=args.duration,
        warmup=1.0,
        idle_sockets=0,
        members=run.ROOM_MEMBERS,
        smoke=False,
        out=scratch,
        chart=None,
        load_tool="wrk" if shutil.which("wrk") else "python",
        quiet_wait=0.0,
        logs=scratch,
        scratch=scratch,
    )
    site = run.generate(scratch / "site", server.site_routes)
    running = run.Running(server, site, scratch / "server.log")
    try:
        spy = subprocess.Popen(
            [
                *("py-spy", "record", "--pid", str(running.pid), "--format", "raw"),
                *("--rate", str(args.rate), "--duration", str(int(args.duration + 2))),
                *(["--nonblocking"] if args.nonblocking else []),
                *("--output", str(out)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        result: dict[str, object] = {}
        load = threading.Thread(
            target=lambda: result.update(run.RUNNERS[args.scenario](cfg, running, args.scenario))
        )
        load.start()
        load.join(args.duration + 120)
        spy.wait(args.duration + 60)
    finally:
        running.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"{args.server} {args.scenario}: {result.get('value', 0):,.0f} "
        f"{run.SCENARIOS[args.scenario].unit} under py-spy (sampling slows it a little)"
    )
    print(summarize(out, args.top))
    print(f"\ncollapsed stacks: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
