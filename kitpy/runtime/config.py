"""kitpy.toml -> a typed :class:`SiteConfig`.

The file is optional; every key is. Four sections are known (docs/server.md, "Settings", and
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
SECRET = { from_env = "APP_SECRET" }           # read from the OS environment
REGION = { from_env = "APP_REGION", default = "eu" }

[cluster]
postgres = "postgresql://kitpy@db.internal/kitpy"
nats = "nats://nats.internal:4222"
node = "web-1"
lease_ttl = 3.0
```

An unknown section or key, or a value of the wrong type, is a :class:`ConfigError`
naming the file and the line of the key (``kitpy.toml:3: [server] port: expected an
integer, got "80"``), so a typo never silently falls back to a default.

An ``[env]`` value written ``{ from_env = "NAME" }`` is the OS environment variable
``NAME`` (a string), read when the site loads; without ``default = ...`` a missing
variable is a ConfigError naming the key and the variable. Such values are never
part of an error message.

``[cluster]`` keys may come from the environment instead (``KITPY_POSTGRES``,
``KITPY_NATS``, ``KITPY_NODE``, ``KITPY_LEASE_TTL``; the environment wins):
:func:`cluster_settings` merges both into :class:`ClusterSettings`, or None when no
cluster is configured.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from kitpy.errors import ConfigError, redact_url

__all__ = (
    "CLUSTER_ENV",
    "CONFIG_NAME",
    "LIMIT_KEYS",
    "ClusterSettings",
    "ServerConfig",
    "SiteConfig",
    "cluster_settings",
    "load_config",
)

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
    "cookie_secret",
    "spa_fallback",
    "immutable_assets",
    "precompressed",
    "compress",
    "compress_min_bytes",
    "compress_streams",
    *LIMIT_KEYS,
}
#: ``[server]`` keys that are true or false.
_BOOL_KEYS = frozenset({"precompressed", "compress", "compress_streams"})
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
    #: The key of ``event.cookies.set(..., signed=True)``; never shown in a repr.
    cookie_secret: str | None = field(default=None, repr=False)
    #: The file under static/ served for unknown HTML page requests (a single-page app).
    spa_fallback: str | None = None
    #: Folders under static/ whose files never change (fingerprinted names): cached for
    #: a year, immutable.
    immutable_assets: tuple[str, ...] = ()
    #: Serve ``x.br`` / ``x.gz`` beside a static file ``x`` to clients that accept them.
    precompressed: bool = True
    #: Gzip compressible dynamic responses of ``compress_min_bytes`` or more.
    compress: bool = False
    compress_min_bytes: int = 1024
    #: Also gzip streamed (iterator) bodies when ``compress`` is on.
    compress_streams: bool = False
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
    #: The ``[cluster]`` keys as written (types checked); see :func:`cluster_settings`.
    cluster: dict[str, Any] = field(default_factory=dict)

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
        if name not in ("server", "objects", "env", "cluster"):
            raise fail(
                None,
                name,
                "unknown section or key; kitpy.toml has [server], [objects], [env], [cluster]",
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
        env[name] = _env_value("env", name, value, fail)

    cluster = _parse_cluster(data.get("cluster", {}), fail)
    return SiteConfig(path=path, server=server, objects=objects, env=env, cluster=cluster)


#: Signing keys shorter than this are refused (they could be guessed).
MIN_SECRET_LENGTH = 16
#: The keys of an ``[env]`` value read from the OS environment.
_FROM_ENV_KEYS = frozenset({"from_env", "default"})


def _env_value(
    section: str, name: str, value: Any, fail: Any, environ: Mapping[str, str] = os.environ
) -> Any:
    """A value as the site sees it: ``{ from_env = "X" }`` is ``$X``."""
    if not isinstance(value, dict) or "from_env" not in value:
        return value
    extra = set(value) - _FROM_ENV_KEYS
    if extra:
        raise fail(
            "env", name, f"unknown key {sorted(extra)[0]!r} beside from_env (known: default)"
        )
    variable = value["from_env"]
    if not isinstance(variable, str) or not _ENV_VARIABLE.match(variable):
        raise fail(
            "env", name, f"from_env must name an environment variable, got {_show(variable)}"
        )
    if variable in environ:
        return environ[variable]
    if "default" in value:
        return value["default"]
    raise fail(
        section,
        name,
        f"the environment variable {variable} is not set "
        f'(from_env = "{variable}"); set it, or add default = ... to use without it',
    )


_ENV_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
        elif key in _BOOL_KEYS:
            if not isinstance(value, bool):
                raise fail("server", key, f"expected true or false, got {_show(value)}")
            values[key] = value
        elif key == "compress_min_bytes":
            values[key] = int(_number(value, int, key, fail))
        elif key == "spa_fallback":
            if value is True:
                values[key] = "index.html"
            elif isinstance(value, str) and _static_file_name(value):
                values[key] = value.strip("/")
            elif value is not False:
                raise fail(
                    "server",
                    key,
                    "expected true, false or a file under static/ "
                    f'("200.html"), got {_show(value)}',
                )
        elif key == "immutable_assets":
            folders = _strings(value, key, fail)
            for folder in folders:
                if not _static_file_name(folder):
                    raise fail("server", key, f"expected folders under static/, got {folder!r}")
            values[key] = tuple(folder.strip("/") for folder in folders)
        elif key == "cookie_secret":
            secret = _env_value("server", key, value, fail)
            if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
                raise fail(
                    "server",
                    key,
                    f"expected a string of {MIN_SECRET_LENGTH} characters or more (e.g. "
                    'python3 -c "import secrets; print(secrets.token_urlsafe(32))"), '
                    'or { from_env = "NAME" }',
                )
            values[key] = secret
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


def _static_file_name(value: str) -> bool:
    """A relative path inside static/ (no ``..``, no dot names, not empty)."""
    parts = value.strip("/").split("/")
    return bool(value.strip("/")) and all(part and not part.startswith(".") for part in parts)


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


# -- [cluster] ---------------------------------------------------------------------------

#: ``[cluster]`` key -> the environment variable that overrides it.
CLUSTER_ENV = {
    "postgres": "KITPY_POSTGRES",
    "nats": "KITPY_NATS",
    "node": "KITPY_NODE",
    "lease_ttl": "KITPY_LEASE_TTL",
}
DEFAULT_LEASE_TTL = 3.0
_NODE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_NATS_SCHEMES = ("nats", "tls")


@dataclass(frozen=True)
class ClusterSettings:
    """Where a cluster node finds its engines and who it is; checked, not yet reached.

    ``sources`` tells, per key, where the value came from (``KITPY_NATS`` or
    ``kitpy.toml:3: [cluster] nats``), so a later error (unreachable) can name it.
    """

    postgres: str
    nats: str
    node: str
    lease_ttl: float = DEFAULT_LEASE_TTL
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def source(self, key: str) -> str:
        """The label naming where ``key`` was set, for error messages."""
        return self.sources.get(key, f"[cluster] {key}")

    def for_worker(self, index: int) -> ClusterSettings:
        """The settings of worker ``index`` of ``kitpy serve --workers``: ``node-<index>``."""
        return ClusterSettings(
            self.postgres, self.nats, f"{self.node}-{index}", self.lease_ttl, self.sources
        )


def cluster_settings(
    config: SiteConfig, environ: Mapping[str, str], *, port: int
) -> ClusterSettings | None:
    """``[cluster]`` merged with the ``KITPY_*`` environment (which wins), or None.

    None when neither a PostgreSQL nor a NATS URL is set anywhere: the site runs on
    one process. ``port`` makes the default node name, ``<host name>-<port>`` (with
    port 0, ``<host name>-<process id>``).

    Raises:
        ConfigError: a value is bad, or one engine is set without the other; the
            message starts with the key (``KITPY_LEASE_TTL: ...`` or
            ``kitpy.toml:4: [cluster] lease_ttl: ...``).
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    lines: dict[str, int | None] = {}
    for key, variable in CLUSTER_ENV.items():
        if environ.get(variable, "") != "":
            values[key] = environ[variable]
            sources[key] = variable
        elif key in config.cluster:
            values[key] = config.cluster[key]
            lines[key] = line = _find_line(config.path, "cluster", key)
            where = f"{CONFIG_NAME}:{line}" if line is not None else CONFIG_NAME
            sources[key] = f"{where}: [cluster] {key}"
    if "postgres" not in values and "nats" not in values:
        return None

    def fail(key: str, message: str) -> ConfigError:
        if key in lines:  # from the file: the CLI shows the path from where it runs
            return ConfigError(f"[cluster] {key}: {message}", CONFIG_NAME, lines[key])
        return ConfigError(f"{sources[key]}: {message}")

    for key in ("postgres", "nats"):
        if key not in values:
            other = "postgres" if key == "nats" else "nats"
            raise fail(
                other,
                f"set, but not {key}: a cluster needs both; "
                f"set [cluster] {key} in {CONFIG_NAME} or {CLUSTER_ENV[key]}",
            )
    postgres = _check_url(values["postgres"], _POSTGRES_SCHEMES, "postgresql://", "postgres", fail)
    nats = _check_url(values["nats"], _NATS_SCHEMES, "nats://", "nats", fail)

    node = values.get("node")
    if node is None:
        node = _default_node(port)
    elif not _NODE_NAME.match(node):
        raise fail("node", f"expected letters, digits, '.', '_' or '-' (1 to 100), got {node!r}")

    lease_ttl = DEFAULT_LEASE_TTL
    if "lease_ttl" in values:
        raw = values["lease_ttl"]
        try:
            lease_ttl = float(raw)
        except ValueError:
            raise fail("lease_ttl", f"expected a number of seconds, got {raw!r}") from None
        if not math.isfinite(lease_ttl) or lease_ttl <= 0:
            raise fail("lease_ttl", f"expected a positive number of seconds, got {raw!r}")
    return ClusterSettings(postgres, nats, node, lease_ttl, sources)


def _check_url(url: str, schemes: tuple[str, ...], shown: str, key: str, fail: Any) -> str:
    parts: SplitResult | None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in schemes or not parts.netloc:
        raise fail(key, f"not a {shown} URL: {redact_url(url)!r}")
    if key == "nats" and not parts.hostname:
        raise fail(key, f"no host in {redact_url(url)!r}")
    return url


def _default_node(port: int) -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:80] or "node"
    if port == 0:
        return f"{host}-{os.getpid()}"
    return f"{host}-{port}"


def _parse_cluster(table: dict[str, Any], fail: Any) -> dict[str, Any]:
    """Type checks of ``[cluster]``; URLs and merging happen in :func:`cluster_settings`."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in CLUSTER_ENV:
            raise fail("cluster", key, f"unknown key; known keys: {', '.join(CLUSTER_ENV)}")
        if key == "lease_ttl":
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise fail(
                    "cluster", key, f"expected a positive number of seconds, got {_show(value)}"
                )
        elif not isinstance(value, str) or not value:
            raise fail("cluster", key, f"expected a non-empty string, got {_show(value)}")
        values[key] = value
    return values
