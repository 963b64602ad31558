"""kitpy.toml: typed values, and errors that name the file, the key and the line."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from kitpy.errors import ConfigError
from kitpy.runtime.config import load_config

from .conftest import MakeSite


def test_missing_file_gives_defaults(make_site: MakeSite) -> None:
    config = load_config(make_site({}))
    assert config.server.host is None and config.server.port is None
    assert config.server.limits == {}
    assert config.server.object_idle_timeout == 30.0
    assert config.server.handler_timeout is None
    assert config.objects == {} and config.env == {}


def test_every_server_key_is_parsed(make_site: MakeSite) -> None:
    site = make_site(
        {
            "kitpy.toml": """
            [server]
            host = "0.0.0.0"
            port = 8080
            max_header_bytes = 8192
            max_body_bytes = 2_000_000
            max_ws_message_bytes = 65536
            header_timeout = 5
            keepalive_timeout = 2.5
            body_timeout = 12
            max_connections = 100
            ws_ping_interval = 20
            ws_ping_timeout = 10
            ws_max_queue_bytes = 1048576
            shutdown_timeout = 3
            allowed_origins = ["https://example.com"]
            trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
            object_idle_timeout = 60
            handler_timeout = 1.5

            [objects]
            rooms = "objects.room:Room"

            [env]
            GREETING = "hello"
            LIMIT = 3
            """
        }
    )
    config = load_config(site)
    server = config.server
    assert (server.host, server.port) == ("0.0.0.0", 8080)
    assert server.limits == {
        "max_header_bytes": 8192,
        "max_body_bytes": 2_000_000,
        "max_ws_message_bytes": 65536,
        "header_timeout": 5,
        "keepalive_timeout": 2.5,
        "body_timeout": 12,
        "max_connections": 100,
        "ws_ping_interval": 20,
        "ws_ping_timeout": 10,
        "ws_max_queue_bytes": 1048576,
        "shutdown_timeout": 3,
    }
    assert server.allowed_origins == ("https://example.com",)
    assert server.trusted_proxies == (
        ipaddress.ip_network("127.0.0.1"),
        ipaddress.ip_network("10.0.0.0/8"),
    )
    assert server.is_trusted_proxy("10.1.2.3") and not server.is_trusted_proxy("11.0.0.1")
    assert server.object_idle_timeout == 60.0 and server.handler_timeout == 1.5
    assert config.objects == {"rooms": "objects.room:Room"}
    assert config.env == {"GREETING": "hello", "LIMIT": 3}


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        pytest.param(
            "[server]\nprot = 80\n",
            r"^kitpy\.toml:2: \[server\] prot: unknown key",
            id="unknown-server-key",
        ),
        pytest.param(
            "[server]\nhost = 'a'\nport = \"80\"\n",
            r'^kitpy\.toml:3: \[server\] port: expected an integer, got "80"',
            id="port-as-string",
        ),
        pytest.param(
            "[server]\nport = 70000\n",
            r"^kitpy\.toml:2: \[server\] port: expected a port",
            id="port-out-of-range",
        ),
        pytest.param(
            "[server]\nmax_body_bytes = 1.5\n",
            r"^kitpy\.toml:2: \[server\] max_body_bytes: expected an integer",
            id="float-for-int",
        ),
        pytest.param(
            "[server]\nheader_timeout = true\n",
            r"^kitpy\.toml:2: \[server\] header_timeout: expected a number, got a boolean",
            id="bool-for-number",
        ),
        pytest.param(
            "[server]\nkeepalive_timeout = -1\n",
            r"^kitpy\.toml:2: \[server\] keepalive_timeout: expected a value >= 0",
            id="negative",
        ),
        pytest.param(
            '[server]\nallowed_origins = "*"\n',
            r"^kitpy\.toml:2: \[server\] allowed_origins: expected a list of strings",
            id="origins-not-a-list",
        ),
        pytest.param(
            '[server]\ntrusted_proxies = ["proxy.local"]\n',
            r"^kitpy\.toml:2: \[server\] trusted_proxies: 'proxy.local' is not an IP address",
            id="proxy-not-an-ip",
        ),
        pytest.param(
            '[objects]\nrooms = "objects.room"\n',
            r'^kitpy\.toml:2: \[objects\] rooms: expected "module:Class"',
            id="binding-without-class",
        ),
        pytest.param(
            "[objects]\nrooms = 3\n",
            r"^kitpy\.toml:2: \[objects\] rooms: expected \"module:Class\"",
            id="binding-not-a-string",
        ),
        pytest.param(
            '[objects]\nrooms = "a:B"\n[env]\nrooms = 1\n',
            r"^kitpy\.toml:4: \[env\] rooms: this name is also an \[objects\] binding",
            id="env-shadows-binding",
        ),
        pytest.param(
            "[database]\nurl = 1\n",
            r"^kitpy\.toml:1: database: unknown section",
            id="unknown-section",
        ),
        pytest.param("port = 80\n", r"^kitpy\.toml:1: port: unknown section or key", id="top-key"),
        pytest.param("[server]\nport = \n", r"^kitpy\.toml:2: invalid TOML", id="syntax"),
    ],
)
def test_bad_config_names_file_key_and_line(make_site: MakeSite, toml: str, match: str) -> None:
    site = make_site({"kitpy.toml": toml})
    with pytest.raises(ConfigError, match=match) as info:
        load_config(site)
    assert info.value.path == "kitpy.toml"


def test_config_path_is_kept(make_site: MakeSite) -> None:
    site = make_site({"kitpy.toml": "[env]\nA = 1\n"})
    assert load_config(site).path == Path(site) / "kitpy.toml"


FROM_ENV = """
[env]
PLAIN = "hello"
SECRET = { from_env = "KITPY_TEST_SECRET" }
REGION = { from_env = "KITPY_TEST_REGION", default = "eu" }
TABLE = { colour = "blue" }
"""


def test_env_values_from_the_environment(
    make_site: MakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITPY_TEST_SECRET", "s3cr3t")
    monkeypatch.delenv("KITPY_TEST_REGION", raising=False)
    config = load_config(make_site({"kitpy.toml": FROM_ENV}))
    assert config.env == {
        "PLAIN": "hello",
        "SECRET": "s3cr3t",
        "REGION": "eu",
        "TABLE": {"colour": "blue"},
    }
    monkeypatch.setenv("KITPY_TEST_REGION", "us")
    assert load_config(make_site({"kitpy.toml": FROM_ENV})).env["REGION"] == "us"


def test_a_missing_environment_variable_names_key_and_variable(
    make_site: MakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KITPY_TEST_SECRET", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_config(make_site({"kitpy.toml": FROM_ENV}))
    assert str(caught.value) == (
        "kitpy.toml:3: [env] SECRET: the environment variable KITPY_TEST_SECRET is not set "
        '(from_env = "KITPY_TEST_SECRET"); set it, or add default = ... to use without it'
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{ from_env = "X", fallback = "s3cr3t" }', "unknown key 'fallback' beside from_env"),
        ('{ from_env = "not a name" }', "from_env must name an environment variable"),
        ("{ from_env = 3 }", "from_env must name an environment variable"),
    ],
)
def test_a_bad_from_env_is_an_error(make_site: MakeSite, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(make_site({"kitpy.toml": f"[env]\nSECRET = {value}\n"}))
    assert message in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_cookie_secret_from_the_environment(
    make_site: MakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = '[server]\ncookie_secret = { from_env = "KITPY_TEST_COOKIE_SECRET" }\n'
    monkeypatch.setenv("KITPY_TEST_COOKIE_SECRET", "x" * 32)
    config = load_config(make_site({"kitpy.toml": toml}))
    assert config.server.cookie_secret == "x" * 32
    assert "x" * 32 not in repr(config)
    monkeypatch.setenv("KITPY_TEST_COOKIE_SECRET", "short")
    with pytest.raises(ConfigError, match="16 characters or more") as caught:
        load_config(make_site({"kitpy.toml": toml}))
    assert "short" not in str(caught.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("spa_fallback = 1", "expected true, false or a file under static/"),
        ('spa_fallback = "../secret.html"', "expected true, false or a file under static/"),
        ('immutable_assets = "assets"', "expected a list of strings"),
        ('immutable_assets = [".git"]', "expected folders under static/"),
        ('compress = "yes"', "expected true or false"),
    ],
)
def test_front_end_settings_are_checked(make_site: MakeSite, line: str, message: str) -> None:
    with pytest.raises(ConfigError, match="kitpy.toml:2: ") as caught:
        load_config(make_site({"kitpy.toml": f"[server]\n{line}\n"}))
    assert message in str(caught.value)


def test_front_end_settings(make_site: MakeSite) -> None:
    toml = """
    [server]
    spa_fallback = "200.html"
    immutable_assets = ["assets", "/_app/immutable/"]
    precompressed = false
    compress = true
    compress_min_bytes = 256
    compress_streams = true
    """
    server = load_config(make_site({"kitpy.toml": toml})).server
    assert server.spa_fallback == "200.html"
    assert server.immutable_assets == ("assets", "_app/immutable")
    assert (server.precompressed, server.compress, server.compress_streams) == (False, True, True)
    assert server.compress_min_bytes == 256
