"""Helpers for the reliability suite: a real `kitpy serve` subprocess and raw clients.

Everything here talks to 127.0.0.1 only. Every loop is bounded by a deadline or a
count, every socket is closed in a ``finally`` and every server process is stopped by
its PID (SIGKILL if SIGTERM is not enough) so a failing test leaves nothing behind.

The server's stdout and stderr go to a log file, never a pipe: a pipe nobody reads
fills up under an access-log storm and would freeze the server, which would look like
a server bug.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import textwrap
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from hashlib import sha1
from pathlib import Path

HOST = "127.0.0.1"
#: The line the CLI prints once it listens (matched loosely: "http://127.0.0.1:PORT").
URL_PATTERN = re.compile(r"(https?://(?:127\.0\.0\.1|localhost|\[::1\]):(\d+))")
START_TIMEOUT = 30.0
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- sites -----------------------------------------------------------------------------


def write_site(root: Path, files: dict[str, str], config: str = "") -> Path:
    """Write ``{relative path: source}`` (dedented) and kitpy.toml under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"))
    if config:
        (root / "kitpy.toml").write_text(textwrap.dedent(config).lstrip("\n"))
    return root


# -- /proc figures ---------------------------------------------------------------------


def fd_count(pid: int) -> int:
    """Open file descriptors of ``pid`` (/proc/PID/fd)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict (VmRSS, VmHWM, Threads, ...)."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def rss_kib(pid: int) -> int:
    return int(proc_status(pid)["VmRSS"].split()[0])


def hwm_kib(pid: int) -> int:
    return int(proc_status(pid)["VmHWM"].split()[0])


def thread_count(pid: int) -> int:
    return int(proc_status(pid)["Threads"])


def socket_fds(pid: int) -> int:
    """How many of ``pid``'s descriptors are sockets."""
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                count += 1
    return count


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# -- the server process ----------------------------------------------------------------


@dataclass
class Server:
    """A running ``python -m kitpy serve`` subprocess."""

    proc: subprocess.Popen[bytes]
    url: str
    port: int
    site: Path
    log_path: Path
    stopped: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __iter__(self) -> Iterator[object]:  # (url, pid) = server
        return iter((self.url, self.pid))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def fds(self) -> int:
        return fd_count(self.pid)

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def threads(self) -> int:
        return thread_count(self.pid)

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.stopped = True

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
                return None
        return self.proc.returncode


def start_server(
    site: Path,
    *,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    timeout: float = START_TIMEOUT,
    log_name: str = "server.log",
    command_prefix: tuple[str, ...] = (),
) -> Server:
    """Start ``python -m kitpy serve SITE --host 127.0.0.1 --port 0``; wait for its URL."""
    log_path = site.parent / f"{site.name}-{log_name}"
    log = open(log_path, "wb")
    child_env = dict(os.environ)
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env.pop("KITPY_SOAK", None)
    if env:
        child_env.update(env)
    command = [sys.executable, "-m", "kitpy", "serve"]
    try:
        proc = subprocess.Popen(
            [*command_prefix, *command, str(site), "--host", HOST, "--port", "0", *extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            preexec_fn=preexec_fn,
            cwd=str(site.parent),
        )
    finally:
        log.close()
    try:
        deadline = time.monotonic() + timeout
        while True:
            text = log_path.read_text(errors="replace")
            found = URL_PATTERN.search(text)
            if found:
                port = int(found.group(2))
                return Server(proc, f"http://{HOST}:{port}", port, site, log_path)
            if proc.poll() is not None:
                raise RuntimeError(f"kitpy serve exited with {proc.returncode}:\n{text}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"kitpy serve printed no URL within {timeout}s:\n{text}")
            time.sleep(0.05)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        raise


@contextlib.contextmanager
def serving(site: Path, **options: object) -> Iterator[Server]:
    server = start_server(site, **options)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


# -- raw HTTP --------------------------------------------------------------------------


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@dataclass
class Exchange:
    """What one raw connection got back."""

    data: bytes
    #: "eof" (server closed), "reset", or "timeout" (still open at the deadline).
    ending: str
    elapsed: float

    @property
    def closed(self) -> bool:
        return self.ending in ("eof", "reset")

    def responses(self) -> list[RawResponse]:
        return parse_responses(self.data)

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses()]


def read_until_close(sock: socket.socket, timeout: float, limit: int = 16 << 20) -> Exchange:
    """Read until the peer closes or ``timeout`` passes (bounded by ``limit`` bytes)."""
    start = time.monotonic()
    deadline = start + timeout
    chunks: list[bytes] = []
    size = 0
    ending = "timeout"
    while size < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except (ConnectionResetError, BrokenPipeError):
            ending = "reset"
            break
        if not chunk:
            ending = "eof"
            break
        chunks.append(chunk)
        size += len(chunk)
    return Exchange(b"".join(chunks), ending, time.monotonic() - start)


def exchange(
    port: int, data: bytes | list[bytes], *, timeout: float = 5.0, pause: float = 0.0
) -> Exchange:
    """Send ``data`` (pieces ``pause`` apart), then read until close or ``timeout``."""
    sock = connect(port)
    try:
        pieces = [data] if isinstance(data, bytes) else data
        for index, piece in enumerate(pieces):
            if index and pause:
                time.sleep(pause)
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        return read_until_close(sock, timeout)
    finally:
        sock.close()


def request_once(port: int, data: bytes, *, timeout: float = 5.0) -> RawResponse:
    """Send one request (should carry Connection: close) and parse its one response."""
    got = exchange(port, data, timeout=timeout)
    responses = got.responses()
    if not responses:
        raise AssertionError(f"no response ({got.ending}): {got.data[:300]!r}")
    return responses[0]


def get(
    port: int,
    target: str,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 5.0,
    method: str = "GET",
) -> RawResponse:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return request_once(port, raw, timeout=timeout)


@dataclass
class RawResponse:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw_head: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower().encode():
                return value.decode("latin-1")
        return None

    def header_all(self, name: str) -> list[str]:
        return [v.decode("latin-1") for k, v in self.headers if k.lower() == name.lower().encode()]


class ResponseParseError(ValueError):
    pass


def _body(
    data: bytes, pos: int, headers: list[tuple[bytes, bytes]], status: int, head: bool
) -> tuple[bytes, int]:
    if head or status in (204, 304) or 100 <= status < 200:
        return b"", pos
    te = [v.lower() for k, v in headers if k.lower() == b"transfer-encoding"]
    cl = [v for k, v in headers if k.lower() == b"content-length"]
    if te and te[-1].strip().endswith(b"chunked"):
        out = []
        while True:
            end = data.find(b"\r\n", pos)
            if end < 0:
                raise ResponseParseError("truncated chunk size")
            size = int(data[pos:end].split(b";")[0], 16)
            pos = end + 2
            if size == 0:
                trailer_end = data.find(b"\r\n", pos)
                while trailer_end != pos:
                    if trailer_end < 0:
                        raise ResponseParseError("truncated trailers")
                    pos = trailer_end + 2
                    trailer_end = data.find(b"\r\n", pos)
                return b"".join(out), pos + 2
            out.append(data[pos : pos + size])
            pos += size + 2
    if cl:
        length = int(cl[0])
        if len(data) - pos < length:
            raise ResponseParseError("truncated body")
        return data[pos : pos + length], pos + length
    return data[pos:], len(data)  # until close


def parse_responses(data: bytes, *, head: bool = False) -> list[RawResponse]:
    """Split the bytes a server sent into responses; raises on a malformed one."""
    out: list[RawResponse] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            raise ResponseParseError(f"incomplete head: {data[pos : pos + 200]!r}")
        head_bytes = data[pos:end]
        lines = head_bytes.split(b"\r\n")
        match = re.fullmatch(rb"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
        if not match:
            raise ResponseParseError(f"bad status line {lines[0][:200]!r}")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or b"\n" in line or b"\r" in line:
                raise ResponseParseError(f"bad header line {line!r}")
            headers.append((name, value.strip()))
        status = int(match.group(1))
        body, pos = _body(data, end + 4, headers, status, head)
        out.append(RawResponse(status, match.group(2), headers, body, head_bytes))
    return out


# -- concurrent connections ------------------------------------------------------------


@dataclass
class Watch:
    """A socket left open after sending; :func:`watch_all` reads it until close."""

    sock: socket.socket
    sent_at: float
    label: object
    data: bytearray = field(default_factory=bytearray)
    ending: str = "timeout"
    closed_at: float | None = None


def watch_all(watches: list[Watch], timeout: float) -> None:
    """Read every watched socket until the server closes it or ``timeout`` passes."""
    selector = selectors.DefaultSelector()
    try:
        for watch in watches:
            watch.sock.setblocking(False)
            selector.register(watch.sock, selectors.EVENT_READ, watch)
        deadline = time.monotonic() + timeout
        pending = len(watches)
        while pending and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=max(0.0, min(0.5, deadline - time.monotonic()))):
                watch = key.data
                try:
                    chunk = watch.sock.recv(65536)
                except BlockingIOError:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    chunk, watch.ending = b"", "reset"
                if chunk and len(watch.data) < (4 << 20):
                    watch.data += chunk
                    continue
                if not chunk:
                    if watch.ending == "timeout":
                        watch.ending = "eof"
                    watch.closed_at = time.monotonic()
                    selector.unregister(watch.sock)
                    pending -= 1
    finally:
        selector.close()
        for watch in watches:
            watch.sock.close()


# -- latency probe ---------------------------------------------------------------------


_PROBE_SCRIPT = r"""
import json, select, socket, sys, time
port, target = int(sys.argv[1]), sys.argv[2]
interval, timeout = float(sys.argv[3]), float(sys.argv[4])
request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
while True:
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request)
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        if data.startswith(b"HTTP/1.1 200"):
            line = {"ok": time.monotonic() - start}
        else:
            line = {"fail": repr(data[:60])}
    except OSError as exc:
        line = {"fail": repr(exc)}
    print(json.dumps(line), flush=True)
    if select.select([sys.stdin], [], [], interval)[0]:
        break
"""


class LatencyProbe:
    """GET ``target`` every ``interval`` s on a fresh connection, from another process.

    A separate process, so the test's own work (and its GIL) does not slow the probe:
    the latency is the server's, as another client would see it.
    """

    def __init__(
        self, port: int, target: str = "/ping", interval: float = 0.05, timeout: float = 5.0
    ) -> None:
        self.port = port
        self.target = target
        self.interval = interval
        self.timeout = timeout
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> LatencyProbe:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _PROBE_SCRIPT,
                str(self.port),
                self.target,
                str(self.interval),
                str(self.timeout),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        import json

        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write("stop\n")
                proc.stdin.close()
            proc.wait(timeout=self.timeout + 10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        out = proc.stdout.read()
        proc.stdout.close()
        for line in out.splitlines():
            item = json.loads(line)
            if "ok" in item:
                self.latencies.append(item["ok"])
            else:
                self.failures.append(item["fail"])

    def summary(self) -> dict[str, float]:
        values = sorted(self.latencies)
        if not values:
            return {"n": 0, "failures": len(self.failures)}
        return {
            "n": len(values),
            "failures": len(self.failures),
            "p50_ms": round(statistics.median(values) * 1000, 1),
            "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))] * 1000, 1),
            "max_ms": round(values[-1] * 1000, 1),
        }


# -- raw WebSocket ---------------------------------------------------------------------


def ws_handshake(
    port: int,
    path: str,
    *,
    origin: str | None = None,
    extra: dict[str, str] | None = None,
    host: str | None = None,
    timeout: float = 5.0,
) -> tuple[socket.socket, RawResponse, bytes]:
    """Open a socket and send an upgrade; (socket, response head, bytes after the head).

    The caller owns (and must close) the socket.
    """
    key = b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host or f'{HOST}:{port}'}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    sock = connect(port, timeout)
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines_ = head.split(b"\r\n")
        match = re.fullmatch(rb"HTTP/1\.[01] (\d{3}) ?(.*)", lines_[0] if lines_ else b"")
        if not match:
            raise ResponseParseError(f"no upgrade response: {data[:200]!r}")
        headers = [(n, v.strip()) for n, _, v in (line.partition(b":") for line in lines_[1:])]
        response = RawResponse(int(match.group(1)), match.group(2), headers, b"", head)
        if response.status == 101:
            accept = b64encode(sha1(key.encode() + WS_GUID).digest()).decode()
            if response.header("sec-websocket-accept") != accept:
                raise ResponseParseError("bad Sec-WebSocket-Accept")
        elif response.header("content-length"):
            # read the refusal's body (bounded)
            length = int(response.header("content-length") or 0)
            while len(rest) < length and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            response.body = rest[:length]
            rest = rest[length:]
        return sock, response, rest
    except BaseException:
        sock.close()
        raise


def ws_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length_override: int | None = None,
) -> bytes:
    """One client frame; ``rsv`` is the 3 RSV bits (0-7) as an int."""
    first = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    length = len(payload) if length_override is None else length_override
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def ws_close_frame(code: int | None = 1000, reason: bytes = b"") -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason
    return ws_frame(0x8, payload)


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes


def parse_frames(data: bytes) -> tuple[list[Frame], bytes]:
    """Server frames (unmasked) in ``data``; the rest that is not a whole frame."""
    frames: list[Frame] = []
    pos = 0
    while len(data) - pos >= 2:
        first, second = data[pos], data[pos + 1]
        length = second & 0x7F
        offset = pos + 2
        if length == 126:
            if len(data) - offset < 2:
                break
            (length,) = struct.unpack("!H", data[offset : offset + 2])
            offset += 2
        elif length == 127:
            if len(data) - offset < 8:
                break
            (length,) = struct.unpack("!Q", data[offset : offset + 8])
            offset += 8
        if second & 0x80:
            offset += 4  # a masked server frame would itself be a protocol error
        if len(data) - offset < length:
            break
        frames.append(Frame(bool(first & 0x80), first & 0x0F, data[offset : offset + length]))
        pos = offset + length
    return frames, data[pos:]


def close_code_of(frames: list[Frame]) -> int | None:
    """The code of the first close frame (1005 when it has none), else None."""
    for frame in frames:
        if frame.opcode == 0x8:
            if len(frame.payload) >= 2:
                return int(struct.unpack("!H", frame.payload[:2])[0])
            return 1005
    return None


def ws_read_frames(
    sock: socket.socket, timeout: float, initial: bytes = b"", until_close: bool = True
) -> tuple[list[Frame], str]:
    """Frames until a close frame (or EOF / timeout); (frames, ending)."""
    data = initial
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    ending = "timeout"
    while time.monotonic() < deadline:
        parsed, data = parse_frames(data)
        frames += parsed
        if until_close and any(f.opcode == 0x8 for f in frames):
            ending = "close"
            break
        if not until_close and frames:
            ending = "frames"
            break
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except (ConnectionResetError, BrokenPipeError):
            ending = "reset"
            break
        if not chunk:
            ending = "eof"
            parsed, data = parse_frames(data)
            frames += parsed
            break
        data += chunk
    return frames, ending
