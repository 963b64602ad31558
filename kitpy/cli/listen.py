"""Listening sockets bound by the CLI, and the one-line error when a bind fails."""

from __future__ import annotations

import errno
import socket

from kitpy.errors import KitpyError

__all__ = ("BACKLOG", "listen", "listen_error")

#: Connections the kernel queues while nothing accepts (e.g. during a dev reload).
BACKLOG = 1024


def listen(host: str, port: int, *, command: str) -> list[socket.socket]:
    """Bind and listen on every address of ``host`` (one port for all of them).

    Raises:
        KitpyError: the host does not resolve or the port cannot be bound; the message
            says how to pick another port when it is in use.
    """
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise KitpyError(f"cannot listen on {host}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, str]] = set()
    try:
        for family, kind, proto, _name, address in infos:
            if (family, str(address[0])) in seen:
                continue
            seen.add((family, str(address[0])))
            if sockets and port == 0:  # the port the first address got, for all
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise KitpyError(listen_error(host, port, exc, command=command)) from None
    return sockets


def listen_error(host: str, port: int, exc: OSError, *, command: str) -> str:
    """One line for a failed bind, with the way out when the port is taken."""
    shown = f"[{host}]" if ":" in host else host
    where = f"cannot listen on {shown}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{where}: the port is in use (another server?); pick another with "
            f"`{command} --port N`, or --port 0 for any free port"
        )
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need privileges); try --port 8000"
    return f"{where}: {exc.strerror or exc}"
