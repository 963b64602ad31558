"""kitpy.toml -> a typed :class:`SiteConfig`.

The file is optional; every key is. Three sections are known (docs/server.md, "Settings", and
docs/objects.md):

```toml
[server]
host = "0.0.0.0"
port = 8000
max_body_bytes = 2_097_152
allowed_origins = ["https://example.com"]
trusted_proxies = ["127.0.0.1"]

[objects]
rooms = "objects.room:Room"

[env]
GREETING = "hello"
```

An unknown section or key, or a value of the wrong type, is a :class:`ConfigError`
naming the file and the line of the key (``kitpy.toml:3: [server] port: expected an
integer, got "80"``), so a typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitpy.errors import ConfigError

__all__ = ("CONFIG_NAME", "LIMIT_KEYS", "ServerConfig", "SiteConfig", "load_config")

CONFIG_NAME = "kitpy.toml"

#: [server] keys handed to ``kitpy.protocol.limits.Limits`` as they are: key -> type.
LIMIT_KEYS: dict[str, type] = {
    "max_header_bytes": int,
    "max_body_bytes": int,
    "max_ws_message_bytes": int,
    "header_timeout": float,
    "keepalive_timeout": float,
    "body_timeout": float,
    "max_connections": int,
    "ws_ping_interval": float,
    "ws_ping_timeout": float,
    "ws_max_queue_bytes": int,
    "shutdown_timeout": float,
}

_SERVER_KEYS = {
    "host",
    "port",
    "allowed_origins",
    "trusted_proxies",
    "object_idle_timeout",
    "handler_timeout",
    *LIMIT_KEYS,
}
_BINDING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOML_LINE = re.compile(r"at line (\d+)")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ServerConfig:
    """The ``[server]`` section; None means "not given: use the default"."""

    host: str | None = None
    port: int | None = None
    allowed_origins: tuple[str, ...] | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    object_idle_timeout: float = 30.0
    handler_timeout: float | None = None
    #: Only the limit keys the file sets, for ``Limits(**limits)``.
    limits: dict[str, int | float] = field(default_factory=dict)

    def is_trusted_proxy(self, host: str) -> bool:
        """True when ``host`` (an IP address) is one of ``trusted_proxies``."""
        if not self.trusted_proxies:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)


@dataclass(frozen=True)
class SiteConfig:
    """A site's kitpy.toml, parsed and checked."""

    #: The file read (it may not exist: then every value is a default).
    path: Path
    server: ServerConfig = field(default_factory=ServerConfig)
    #: Binding name -> "module:Class".
    objects: dict[str, str] = field(default_factory=dict)
    #: Name -> value, as written.
    env: dict[str, Any] = field(default_factory=dict)

    def binding_line(self, name: str) -> int | None:
        """The line of ``[objects] name`` in the file, for error messages."""
        return _find_line(self.path, "objects", name)


def load_config(site_dir: Path) -> SiteConfig:
    """Read ``site_dir/kitpy.toml``; a missing file gives the defaults.

    Raises:
        ConfigError: the file is not valid TOML, or has an unknown key or a bad value.
    """
    path = site_dir / CONFIG_NAME
    if not path.is_file():
        return SiteConfig(path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", CONFIG_NAME) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        line = int(found.group(1)) if found else None
        raise ConfigError(f"invalid TOML: {exc}", CONFIG_NAME, line) from None
    return _parse(path, text, data)


def _parse(path: Path, text: str, data: dict[str, Any]) -> SiteConfig:
    def fail(section: str | None, key: str, message: str) -> ConfigError:
        line = _line_in(text, section, key)
        label = f"[{section}] {key}" if section else key
        return ConfigError(f"{label}: {message}", CONFIG_NAME, line)

    for name, value in data.items():
        if name not in ("server", "objects", "env"):
            raise fail(
                None, name, "unknown section or key; kitpy.toml has [server], [objects], [env]"
            )
        if not isinstance(value, dict):
            raise fail(None, name, f"expected a [{name}] table, got {_kind(value)}")

    server = _parse_server(data.get("server", {}), fail)

    objects: dict[str, str] = {}
    for name, value in data.get("objects", {}).items():
        if not _NAME.match(name):
            raise fail("objects", name, "a binding name must be a Python identifier")
        if not isinstance(value, str) or not _BINDING.match(value):
            raise fail(
                "objects",
                name,
                f'expected "module:Class" (e.g. "objects.room:Room"), got {_show(value)}',
            )
        objects[name] = value

    env: dict[str, Any] = {}
    for name, value in data.get("env", {}).items():
        if name in objects:
            raise fail("env", name, "this name is also an [objects] binding; rename one")
        env[name] = value

    return SiteConfig(path=path, server=server, objects=objects, env=env)


def _parse_server(table: dict[str, Any], fail: Any) -> ServerConfig:
    values: dict[str, Any] = {}
    limits: dict[str, int | float] = {}
    for key, value in table.items():
        if key not in _SERVER_KEYS:
            known = ", ".join(sorted(_SERVER_KEYS))
            raise fail("server", key, f"unknown key; known keys: {known}")
        if key in LIMIT_KEYS:
            limits[key] = _number(value, LIMIT_KEYS[key], key, fail)
        elif key == "host":
            if not isinstance(value, str) or not value:
                raise fail("server", key, f"expected a host name or address, got {_show(value)}")
            values[key] = value
        elif key == "port":
            port = _number(value, int, key, fail)
            if port > 65535:
                raise fail("server", key, f"expected a port from 0 to 65535, got {value}")
            values[key] = port
        elif key == "allowed_origins":
            values[key] = tuple(_strings(value, key, fail))
        elif key == "trusted_proxies":
            networks: list[IPNetwork] = []
            for item in _strings(value, key, fail):
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise fail("server", key, f"{item!r} is not an IP address") from None
            values[key] = tuple(networks)
        elif key == "object_idle_timeout":
            values[key] = float(_number(value, float, key, fail))
        elif key == "handler_timeout":
            seconds = float(_number(value, float, key, fail))
            if seconds == 0:
                raise fail("server", key, "expected a positive number of seconds")
            values[key] = seconds
    return ServerConfig(limits=limits, **values)


def _number(value: Any, kind: type, key: str, fail: Any) -> int | float:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        ok = ok or isinstance(value, float)
    if not ok:
        expected = "an integer" if kind is int else "a number"
        raise fail("server", key, f"expected {expected}, got {_show(value)}")
    if value < 0:
        raise fail("server", key, f"expected a value >= 0, got {value}")
    return int(value) if kind is int else float(value)


def _strings(value: Any, key: str, fail: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail("server", key, f"expected a list of strings, got {_show(value)}")
    return list(value)


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return f"{_kind(value)} ({value!r})"


def _find_line(path: Path, section: str | None, key: str) -> int | None:
    try:
        return _line_in(path.read_text(encoding="utf-8"), section, key)
    except (OSError, UnicodeDecodeError):
        return None


def _line_in(text: str, section: str | None, key: str) -> int | None:
    """The line number of ``key`` in ``[section]`` (or at top level), best effort."""
    key_re = re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")
    header_re = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")
    current: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = header_re.match(line)
        if header:
            current = header.group(1).strip().strip("\"'")
            if section is None and current == key:
                return number
            continue
        if current == section and key_re.match(line):
            return number
        if section is not None and current is None and line.strip().startswith(f"{section}."):
            # Dotted keys at top level: server.port = 80
            if re.match(rf"^\s*{re.escape(section)}\.{re.escape(key)}\s*=", line):
                return number
    return None
