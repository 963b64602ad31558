"""The chat protocol, in process, through kitpy.testing.TestClient."""

from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path

import pytest

from kitpy import WebSocketClosed
from kitpy.testing import TestClient

SITE = Path(__file__).resolve().parent.parent
RATE_LIMITED = "Your IP is being rate-limited, please try again later."


class Chat:
    """A TestClient plus the sockets a test opened (closed at the end)."""

    def __init__(self, client, sockets):
        self.client = client
        self.sockets = sockets

    def connect(self, room):
        return self.sockets.enter_context(self.client.websocket(f"/api/room/{room}/websocket"))

    def join(self, room, name):
        """Connect, send the name, and return (socket, what came before "ready")."""
        ws = self.connect(room)
        ws.send_json({"name": name})
        before = []
        while (message := ws.receive_json()) != {"ready": True}:
            before.append(message)
        return ws, before


@pytest.fixture
def chat():
    with TestClient(SITE) as client, ExitStack() as sockets:
        yield Chat(client, sockets)


def test_the_page_is_served(chat):
    response = chat.client.get("/")
    assert response.status_code == 200
    assert "chat.js" in response.text


def test_post_creates_a_private_room(chat):
    response = chat.client.post("/api/room")
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{64}", response.text)
    assert chat.client.post("/api/room").text != response.text


def test_a_long_room_name_is_404_and_a_plain_get_is_400(chat):
    assert chat.client.get("/api/room/" + "x" * 33 + "/websocket").status_code == 404
    assert chat.client.get("/api/room/lobby/websocket").status_code == 400


def test_join_talk_and_quit(chat):
    ann, before = chat.join("lobby", "ann")
    assert before == [{"joined": "ann"}]
    bob, before = chat.join("lobby", "bob")
    assert before == [{"joined": "ann"}, {"joined": "bob"}]
    assert ann.receive_json() == {"joined": "bob"}

    ann.send_json({"message": "hi bob"})
    seen = ann.receive_json()
    assert bob.receive_json() == seen
    assert seen["name"] == "ann"
    assert seen["message"] == "hi bob"
    assert isinstance(seen["timestamp"], int)

    bob.close()
    assert ann.receive_json() == {"quit": "bob"}


def test_a_newcomer_gets_the_history_oldest_first(chat):
    ann, _ = chat.join("history", "ann")
    ann.send_json({"message": "one"})
    first = ann.receive_json()
    ann.send_json({"message": "two"})
    second = ann.receive_json()
    assert second["timestamp"] > first["timestamp"]

    _, before = chat.join("history", "bob")
    assert before == [{"joined": "ann"}, first, second, {"joined": "bob"}]


def test_a_private_room_works_like_a_public_one(chat):
    room = chat.client.post("/api/room").text
    ann, before = chat.join(room, "ann")
    assert before == [{"joined": "ann"}]


def test_names_and_messages_have_limits(chat):
    ann, _ = chat.join("limits", "ann")
    ann.send_json({"message": "x" * 257})
    assert ann.receive_json() == {"error": "Message too long."}

    ws = chat.connect("limits")
    ws.send_json({"name": "n" * 33})
    assert ws.receive_json() == {"error": "Name too long."}
    with pytest.raises(WebSocketClosed):
        ws.receive_text()
    assert ws.close_code == 1009


def test_fast_talkers_are_rate_limited(chat):
    ann, _ = chat.join("busy", "ann")
    replies = []
    for number in range(10):
        ann.send_json({"message": f"message {number}"})
        replies.append(ann.receive_json())
        if "error" in replies[-1]:
            break
    assert replies[-1] == {"error": RATE_LIMITED}
    assert all("timestamp" in reply for reply in replies[:-1])
