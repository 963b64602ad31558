"""[cluster] in kitpy.toml and KITPY_* in the environment -> ClusterSettings."""

from __future__ import annotations

import socket

import pytest

from kitpy.errors import ConfigError, redact_url
from kitpy.runtime.config import ClusterSettings, cluster_settings, load_config

from .conftest import MakeSite

PG = "postgresql://kitpy@db.internal:5432/kitpy"
NATS = "nats://nats.internal:4222"


def settings(make_site: MakeSite, toml: str, env: dict[str, str] | None = None, port: int = 8000):
    config = load_config(make_site({"kitpy.toml": toml}))
    return cluster_settings(config, env or {}, port=port)


def test_no_cluster_anywhere_is_one_process(make_site: MakeSite) -> None:
    assert settings(make_site, "[server]\nport = 1\n") is None
    assert settings(make_site, "", {"KITPY_NODE": "a", "KITPY_LEASE_TTL": "2"}) is None


def test_toml_values_and_defaults(make_site: MakeSite) -> None:
    got = settings(make_site, f'[cluster]\npostgres = "{PG}"\nnats = "{NATS}"\n', port=8123)
    assert got == ClusterSettings(PG, NATS, f"{socket.gethostname()}-8123", 3.0)
    assert got is not None and got.source("nats") == "kitpy.toml:3: [cluster] nats"


def test_the_environment_wins_key_by_key(make_site: MakeSite) -> None:
    toml = f'[cluster]\npostgres = "{PG}"\nnats = "{NATS}"\nnode = "web-1"\nlease_ttl = 5\n'
    env = {"KITPY_NATS": "nats://127.0.0.1:4333", "KITPY_LEASE_TTL": "1.5", "KITPY_NODE": ""}
    got = settings(make_site, toml, env)
    assert got == ClusterSettings(PG, "nats://127.0.0.1:4333", "web-1", 1.5)
    assert got is not None and got.source("nats") == "KITPY_NATS"
    assert got.for_worker(2).node == "web-1-2"
    only_env = {"KITPY_POSTGRES": PG, "KITPY_NATS": NATS, "KITPY_NODE": "n"}
    assert settings(make_site, "", only_env) == ClusterSettings(PG, NATS, "n")


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        (
            '[cluster]\nnats = "nats://x:1"\npostgres = "mysql://db/x"\n',
            {},
            "kitpy.toml:3: [cluster] postgres: not a postgresql:// URL: 'mysql://db/x'",
        ),
        (
            "",
            {"KITPY_POSTGRES": PG, "KITPY_NATS": "http://x:4222"},
            "KITPY_NATS: not a nats:// URL: 'http://x:4222'",
        ),
        ("", {"KITPY_POSTGRES": PG, "KITPY_NATS": "nats://x:99999"}, "KITPY_NATS: not a nats://"),
        (
            "",
            {
                "KITPY_POSTGRES": "postgresql://u:secret@db/x",
                "KITPY_NATS": NATS,
                "KITPY_LEASE_TTL": "3s",
            },
            "KITPY_LEASE_TTL: expected a number of seconds, got '3s'",
        ),
        (
            "",
            {"KITPY_POSTGRES": PG, "KITPY_NATS": NATS, "KITPY_LEASE_TTL": "-1"},
            "KITPY_LEASE_TTL: expected a positive",
        ),
        (
            "",
            {"KITPY_POSTGRES": PG, "KITPY_NATS": NATS, "KITPY_LEASE_TTL": "nan"},
            "KITPY_LEASE_TTL: expected a positive",
        ),
        (
            "",
            {"KITPY_POSTGRES": PG, "KITPY_NATS": NATS, "KITPY_NODE": "a b"},
            "KITPY_NODE: expected letters",
        ),
        (
            f'[cluster]\npostgres = "{PG}"\n',
            {},
            "kitpy.toml:2: [cluster] postgres: set, but not nats",
        ),
    ],
)
def test_bad_values_name_their_key(
    make_site: MakeSite, toml: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(make_site, toml, env)
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text and "secret" not in text


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[cluster]\nlease_ttl = "3"\n',
            'kitpy.toml:2: [cluster] lease_ttl: expected a positive number of seconds, got "3"',
        ),
        ("[cluster]\nlease_ttl = 0\n", "kitpy.toml:2: [cluster] lease_ttl: expected a positive"),
        (
            "[cluster]\npostgres = 5\n",
            "kitpy.toml:2: [cluster] postgres: expected a non-empty string",
        ),
        ('[cluster]\nnodes = "a"\n', "kitpy.toml:2: [cluster] nodes: unknown key"),
    ],
)
def test_bad_toml_types_are_load_errors(make_site: MakeSite, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(make_site({"kitpy.toml": toml}))
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_password_never_shows_in_errors(make_site: MakeSite) -> None:
    env = {"KITPY_POSTGRES": "postgres://kitpy:hunter2@db:5432/x", "KITPY_NATS": "nats://u:pw@:1"}
    with pytest.raises(ConfigError) as caught:
        settings(make_site, "", env)
    assert "hunter2" not in str(caught.value) and "pw@" not in str(caught.value)
    assert str(caught.value) == "KITPY_NATS: no host in 'nats://u:***@:1'"
    # a URL that does not parse (a broken IPv6 host) hides its whole user part
    env["KITPY_POSTGRES"] = "postgresql://kitpy:hunter2@[::1/x"
    with pytest.raises(ConfigError) as caught:
        settings(make_site, "", env)
    assert str(caught.value) == "KITPY_POSTGRES: not a postgresql:// URL: 'postgresql://***@[::1/x'"
    assert redact_url("postgresql://kitpy@db/x") == "postgresql://kitpy@db/x"
