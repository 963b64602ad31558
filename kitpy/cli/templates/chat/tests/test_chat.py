"""The chat protocol, in process, through kitpy.testing.TestClient."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kitpy.testing import TestClient

SITE = Path(__file__).resolve().parent.parent


@pytest.fixture
def client():
    with TestClient(SITE) as client:
        yield client


def join(client, room, name):
    """Open a socket to ``room``, send the name and read up to ``{"ready": true}``."""
    ws = client.websocket(f"/api/room/{room}/websocket").__enter__()
    ws.send_json({"name": name})
    before = []
    while (message := ws.receive_json()) != {"ready": True}:
        before.append(message)
    return ws, before


def test_the_page_is_served(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "chat.js" in response.text


def test_post_creates_a_private_room(client):
    response = client.post("/api/room")
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{64}", response.text)
    assert client.post("/api/room").text != response.text


def test_a_long_room_name_is_404_and_a_plain_get_is_400(client):
    assert client.get("/api/room/" + "x" * 33 + "/websocket").status_code == 404
    assert client.get("/api/room/lobby/websocket").status_code == 400


def test_join_talk_and_quit(client):
    ann, before = join(client, "lobby", "ann")
    assert before == [{"joined": "ann"}]
    bob, before = join(client, "lobby", "bob")
    assert before == [{"joined": "ann"}, {"joined": "bob"}]
    assert ann.receive_json() == {"joined": "bob"}

    ann.send_json({"message": "hi bob"})
    seen_by_ann = ann.receive_json()
    assert seen_by_ann == bob.receive_json()
    assert seen_by_ann["name"] == "ann"
    assert seen_by_ann["message"] == "hi bob"
    assert isinstance(seen_by_ann["timestamp"], int)

    bob.close()
    assert ann.receive_json() == {"quit": "bob"}
    ann.close()


def test_a_newcomer_gets_the_history_oldest_first(client):
    ann, _ = join(client, "history", "ann")
    ann.send_json({"message": "one"})
    first = ann.receive_json()
    ann.send_json({"message": "two"})
    second = ann.receive_json()
    assert second["timestamp"] > first["timestamp"]

    bob, before = join(client, "history", "bob")
    assert before == [{"joined": "ann"}, first, second, {"joined": "bob"}]
    ann.close()
    bob.close()


def test_names_and_messages_have_limits(client):
    ann, _ = join(client, "limits", "ann")
    ann.send_json({"message": "x" * 257})
    assert ann.receive_json() == {"error": "Message too long."}
    ann.close()

    with client.websocket("/api/room/limits/websocket") as ws:
        ws.send_json({"name": "n" * 33})
        assert ws.receive_json() == {"error": "Name too long."}


def test_fast_talkers_are_rate_limited(client):
    ann, _ = join(client, "busy", "ann")
    errors = []
    for number in range(10):
        ann.send_json({"message": f"message {number}"})
        reply = ann.receive_json()
        if "error" in reply:
            errors.append(reply["error"])
            break
    assert errors == ["Your IP is being rate-limited, please try again later."]
    ann.close()
