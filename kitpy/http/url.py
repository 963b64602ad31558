"""URL and QueryParams: percent-decoding lives here, in one place."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from kitpy.http.multidict import MultiDict

__all__ = ("URL", "QueryParams", "decode_path")

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_new_object = object.__new__


def decode_path(raw: str) -> str:
    """Fully percent-decode a path (UTF-8; invalid sequences are replaced)."""
    return unquote(raw, errors="replace") if "%" in raw else raw


class QueryParams(MultiDict[str]):
    """Multi-valued query parameters: ``q["a"]`` first value, ``q.get_all("a")`` all."""

    __slots__ = ("_raw",)

    def __init__(self, raw: str = "") -> None:
        super().__init__(parse_qsl(raw, keep_blank_values=True) if raw else [])
        self._raw = raw

    def __str__(self) -> str:
        return self._raw

    def __repr__(self) -> str:
        return f"QueryParams({self._raw!r})"


class URL:
    """A parsed absolute URL: ``scheme``, ``host`` (no port), ``port``, ``path``
    (decoded), ``raw_path`` (as sent), ``query`` and ``str(url)``."""

    __slots__ = ("_query", "host", "port", "query_string", "raw_path", "scheme")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme or "http"
        self.host = parts.hostname or ""
        self.port = parts.port or _DEFAULT_PORTS.get(self.scheme)
        self.raw_path = parts.path or "/"
        self.query_string = parts.query
        self._query: QueryParams | None = None

    @classmethod
    def from_target(cls, scheme: str, host_header: str, target: str) -> URL:
        """Build from a request target (``/a%20b?x=1``) and the Host header."""
        url = _new_object(cls)
        url.scheme = scheme
        url.host, port = _split_host(host_header)
        url.port = port if port is not None else _DEFAULT_PORTS.get(scheme)
        if "?" in target:
            path, _, url.query_string = target.partition("?")
            url.raw_path = path or "/"
        else:  # most targets: no tuple to build and take apart
            url.raw_path = target or "/"
            url.query_string = ""
        url._query = None
        return url

    @property
    def path(self) -> str:
        return decode_path(self.raw_path)

    @property
    def query(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.query_string)
        return self._query

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port is None or self.port == _DEFAULT_PORTS.get(self.scheme):
            return host
        return f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    def replace(self, *, path: str | None = None, query: str | None = None) -> URL:
        """A copy with another (raw) path or query string."""
        url = URL.__new__(URL)
        url.scheme, url.host, url.port = self.scheme, self.host, self.port
        url.raw_path = (
            quote(path, safe="/%:@!$&'()*+,;=-._~") if path is not None else self.raw_path
        )
        url.query_string = self.query_string if query is None else query
        url._query = None
        return url

    def __str__(self) -> str:
        tail = f"?{self.query_string}" if self.query_string else ""
        return f"{self.origin}{self.raw_path}{tail}"

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, URL):
            return str(self) == str(other)
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


@lru_cache(maxsize=256)  # one Host value per site, mostly: parse it once
def _split_host(value: str) -> tuple[str, int | None]:
    """Split a Host header into host and port; IPv6 literals keep no brackets."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return value, None
        host, rest = value[1:end], value[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = value.partition(":")
    return host.lower(), int(port) if port.isdigit() else None
