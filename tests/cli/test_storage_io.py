"""``kitpy storage export|import`` and ``kitpy cluster status``: real SQLite files, a real
PostgreSQL (tests/cluster/engines.py), the real ``kitpy`` command in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from kitpy.cli.main import main
from kitpy.testing import TestClient

STORE = """
from kitpy import DurableObject

class Store(DurableObject):
    async def fetch(self, request):
        if request.method == "POST":
            data = await request.json()
            await self.state.storage.put(data["put"])
            if "alarm" in data:
                await self.state.storage.set_alarm(data["alarm"])
            return {"body": "ok"}
        return {"body": {"items": dict(await self.state.storage.list()),
                         "alarm": await self.state.storage.get_alarm()}}

    async def alarm(self):
        pass
"""
ROUTE = """
async def get(event):
    ns = event.platform.env.stores
    return await ns.get(ns.id_from_name(event.params["name"])).fetch(event.request)

post = get
"""
FAR = 4_102_444_800.5  # 2100-01-01: never fires during a test
PUTS = {
    "a": {"put": {"n": 1, "text": "héllo ☃", "nested": {"l": [1, 2.5, None, True]}}, "alarm": FAR},
    "b": {"put": {"k\x00nul": "zero byte key", "k\x01one": 1, "z": []}},
}


def make_site(root: Path, cluster: str | None = None) -> Path:
    (root / "routes" / "s").mkdir(parents=True)
    (root / "objects").mkdir()
    (root / "objects" / "store.py").write_text(STORE)
    (root / "routes" / "s" / "[name].py").write_text(ROUTE)
    toml = '[objects]\nstores = "objects.store:Store"\n'
    if cluster:
        toml += f'[cluster]\npostgres = "{cluster}"\nnats = "nats://127.0.0.1:1"\n'
    (root / "kitpy.toml").write_text(toml)
    return root


def kitpy(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITPY_")}
    return subprocess.run(
        [sys.executable, "-m", "kitpy", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def read_back(site: Path) -> dict[str, object]:
    with TestClient(site, state_dir=site / ".kitpy") as client:
        return {name: client.get(f"/s/{name}").json() for name in PUTS}


def test_round_trip_sqlite_postgres_sqlite(tmp_path: Path, cluster_db: str) -> None:
    one = make_site(tmp_path / "one")
    with TestClient(one, state_dir=one / ".kitpy") as client:
        for name, body in PUTS.items():
            assert client.post(f"/s/{name}", json=body).text == "ok"
    before = read_back(one)

    exported = kitpy("storage", "export", str(one))
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.splitlines()
    assert len(lines) == 7 and "exported 6 keys and 1 alarms" in exported.stderr
    records = [json.loads(line) for line in lines]
    nested = next(record for record in records if record.get("key") == "nested")
    assert nested["namespace"] == "stores" and nested["value"] == {"l": [1, 2.5, None, True]}
    assert records[-1]["alarm"] == FAR and set(records[-1]) == {"namespace", "id", "alarm"}
    dump = tmp_path / "one.jsonl"
    dump.write_text(exported.stdout)

    cluster = make_site(tmp_path / "cluster", cluster=cluster_db)
    imported = kitpy("storage", "import", str(cluster), str(dump))
    assert imported.returncode == 0, imported.stderr
    assert "imported 6 keys and 1 alarms" in imported.stderr
    with psycopg.connect(cluster_db) as conn:
        assert conn.execute("SELECT count(*) FROM kitpy_kv").fetchone() == (6,)
        assert conn.execute("SELECT at FROM kitpy_alarms").fetchone() == (FAR,)

    again = kitpy("storage", "import", str(cluster), str(dump))
    assert again.returncode == 1 and "is not empty: import with --replace" in again.stderr
    assert again.stderr.count("\n") == 1

    from_pg = kitpy("storage", "export", str(cluster))
    assert from_pg.returncode == 0, from_pg.stderr
    assert sorted(from_pg.stdout.splitlines()) == sorted(lines)

    three = make_site(tmp_path / "three")
    back = kitpy("storage", "import", str(three), "-", stdin=from_pg.stdout)
    assert back.returncode == 0, back.stderr
    assert kitpy("storage", "export", str(three)).stdout == exported.stdout
    assert read_back(three) == before

    # --replace: the store becomes the file's content, nothing else.
    only_a = "".join(line + "\n" for line in lines if json.loads(line).get("key") == "n")
    replaced = kitpy("storage", "import", str(cluster), "--replace", "-", stdin=only_a)
    assert replaced.returncode == 0, replaced.stderr
    assert kitpy("storage", "export", str(cluster)).stdout == only_a

    # A cluster with a live node refuses an import: its instances would not see it.
    with psycopg.connect(cluster_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO kitpy_nodes (name, inbox, expires_at) "
            "VALUES ('web-1', 'x', now() + interval '1 hour')"
        )
    refused = kitpy("storage", "import", str(cluster), "--replace", str(dump))
    assert refused.returncode == 1
    assert "the cluster has live nodes (web-1): stop them before an import" in refused.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "bad.jsonl:2: not JSON"),
        (
            '{"namespace": "s", "id": "x", "key": "", "value": 1}',
            "bad.jsonl:2: storage keys must be non-empty",
        ),
        (
            '{"namespace": "s", "id": "", "key": "k", "value": 1}',
            'bad.jsonl:2: "id" must be a non-empty string',
        ),
        ('{"namespace": "s", "id": "x", "alarm": "soon"}', "bad.jsonl:2: an alarm line is"),
        ('{"namespace": "s", "id": "x", "key": "k"}', 'bad.jsonl:2: expected the keys "namespace"'),
    ],
)
def test_a_bad_line_imports_nothing(
    tmp_path: Path,
    line: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = make_site(tmp_path / "site")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"namespace": "s", "id": "x", "key": "k", "value": 1}\n' + line + "\n")
    monkeypatch.chdir(tmp_path)
    assert main(["storage", "import", str(site), "bad.jsonl"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"kitpy: {message}"), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["storage", "export", str(site)]) == 0
    assert capsys.readouterr().out == ""


def test_the_import_command_fails_in_one_line(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    result = kitpy("storage", "import", str(site), "missing.jsonl", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "kitpy: missing.jsonl: cannot read: No such file or directory\n"


def test_cluster_status_lists_nodes_heartbeats_and_objects(tmp_path: Path, cluster_db: str) -> None:
    from kitpy.cluster.schema import migrate

    site = make_site(tmp_path / "site", cluster=cluster_db)
    empty = kitpy("cluster", "status", str(site))
    assert empty.returncode == 0 and "no node has started" in empty.stdout
    with psycopg.connect(cluster_db, autocommit=True) as conn:
        migrate(conn)
        conn.execute(
            "INSERT INTO kitpy_nodes (name, inbox, heartbeat_at, expires_at) VALUES "
            "('web-1', 'i1', now(), now() + interval '1 hour'), "
            "('web-2', 'i2', now() - interval '60 seconds', now() - interval '57 seconds')"
        )
        conn.execute(
            "INSERT INTO kitpy_objects (namespace, object_id, owner, epoch) VALUES "
            "('stores', 'a', 'web-1', 1), ('stores', 'b', 'web-1', 1), "
            "('stores', 'c', 'web-2', 3), ('stores', 'd', NULL, 2)"
        )
    table = kitpy("cluster", "status", str(site))
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split() == ["NODE", "STATE", "LAST", "HEARTBEAT", "OBJECTS"]
    assert rows[1].startswith("web-1") and " live " in rows[1] and rows[1].endswith(" 2")
    assert rows[2].startswith("web-2") and " dead " in rows[2] and rows[2].endswith(" 1")
    assert rows[3] == "objects held by no live node: 2"
    status = json.loads(kitpy("cluster", "status", str(site), "--json").stdout)
    assert [(n["name"], n["live"], n["objects"]) for n in status["nodes"]] == [
        ("web-1", True, 2),
        ("web-2", False, 1),
    ]
    assert status["nodes"][1]["heartbeat_age"] >= 60 and status["unowned"] == 2

    alone = make_site(tmp_path / "alone")
    refused = kitpy("cluster", "status", str(alone))
    assert refused.returncode == 1 and "no cluster is configured" in refused.stderr
