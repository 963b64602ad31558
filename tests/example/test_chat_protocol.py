"""The example chat's wire protocol end to end: a real server, the websockets client.

Each client connects from its own loopback address (127.1.x.y), because the rate
limiter is per client address and shared by all rooms: tests would otherwise spend
each other's budget.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from kitpy_server import ChatServer
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

#: Seconds to wait for any one message (a bound, not an expectation).
RECEIVE_TIMEOUT = 10.0
RATE_LIMITED = "Your IP is being rate-limited, please try again later."
#: Actions one address may take in a burst (name messages included).
BURST = 5

_addresses = itertools.count(1)


def new_address() -> str:
    """A loopback address no other client of this session uses."""
    number = next(_addresses)
    return f"127.1.{number // 200}.{number % 200 + 2}"


class Member:
    """One chat client: a WebSocket to a room, from a chosen source address."""

    def __init__(self, server: ChatServer, room: str, address: str) -> None:
        self.address = address
        sock = socket.create_connection(
            ("127.0.0.1", server.port), timeout=RECEIVE_TIMEOUT, source_address=(address, 0)
        )
        self._stack = ExitStack()
        try:
            self.ws: ClientConnection = self._stack.enter_context(
                connect(
                    f"{server.ws}/api/room/{room}/websocket",
                    sock=sock,
                    proxy=None,
                    open_timeout=RECEIVE_TIMEOUT,
                )
            )
        except BaseException:
            sock.close()
            raise

    def send(self, **data: Any) -> None:
        self.ws.send(json.dumps(data))

    def receive(self) -> Any:
        return json.loads(self.ws.recv(timeout=RECEIVE_TIMEOUT))

    def join(self, name: str) -> list[Any]:
        """Send the name; return what came before ``{"ready": true}``."""
        self.send(name=name)
        before = []
        while (message := self.receive()) != {"ready": True}:
            before.append(message)
        return before

    def say(self, message: str) -> Any:
        """Send a message and return its broadcast as this member sees it."""
        self.send(message=message)
        return self.receive()

    def close_code(self) -> int | None:
        """Read until the server closes; the close code it sent."""
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                self.ws.recv(timeout=RECEIVE_TIMEOUT)
        return closed.value.rcvd.code if closed.value.rcvd else None

    def close(self) -> None:
        self._stack.close()


MemberFactory = Callable[..., Member]


@pytest.fixture
def member(shared_server: ChatServer) -> Iterator[MemberFactory]:
    """``member(room, address=None)`` opens a client; all are closed after the test."""
    opened: list[Member] = []

    def open_member(room: str, address: str | None = None) -> Member:
        client = Member(shared_server, room, address or new_address())
        opened.append(client)
        return client

    yield open_member
    for client in opened:
        client.close()


def test_the_page_and_its_assets_are_served(shared_server: ChatServer) -> None:
    page = httpx.get(shared_server.http + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for asset in re.findall(r'(?:src|href)="(/chat\.\w+)"', page.text):
        assert httpx.get(shared_server.http + asset).status_code == 200


def test_post_api_room_gives_a_private_room_id(shared_server: ChatServer) -> None:
    response = httpx.post(shared_server.http + "/api/room")
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{64}", response.text)
    assert response.headers["content-type"].startswith("text/plain")
    assert httpx.post(shared_server.http + "/api/room").text != response.text
    assert httpx.get(shared_server.http + "/api/room").status_code == 405


def test_a_room_name_over_32_characters_is_404_before_the_upgrade_check(
    shared_server: ChatServer,
) -> None:
    long_name = "x" * 33
    assert httpx.get(f"{shared_server.http}/api/room/{long_name}/websocket").status_code == 404
    # 64 characters that are not lowercase hex are a (too long) name, not an id.
    upper = "A" * 64
    assert httpx.get(f"{shared_server.http}/api/room/{upper}/websocket").status_code == 404
    with pytest.raises(InvalidStatus) as refused:
        Member(shared_server, long_name, new_address())
    assert refused.value.response.status_code == 404


def test_without_upgrade_websocket_it_is_400(shared_server: ChatServer) -> None:
    response = httpx.get(f"{shared_server.http}/api/room/{'x' * 32}/websocket")
    assert response.status_code == 400


def test_join_broadcast_and_quit(member: MemberFactory) -> None:
    ann = member("join-talk-quit")
    assert ann.join("ann") == [{"joined": "ann"}]
    bob = member("join-talk-quit")
    assert bob.join("bob") == [{"joined": "ann"}, {"joined": "bob"}]
    assert ann.receive() == {"joined": "bob"}

    said = ann.say("hello bob")
    assert bob.receive() == said
    assert said["name"] == "ann"
    assert said["message"] == "hello bob"
    assert isinstance(said["timestamp"], int)

    bob.close()
    assert ann.receive() == {"quit": "bob"}


def test_no_broadcasts_reach_a_socket_before_it_has_a_name(member: MemberFactory) -> None:
    lurker = member("lurking")
    bob = member("lurking")
    bob.join("bob")
    said = bob.say("anyone here?")
    # Had the lurker been sent bob's join and message, they would come first here.
    assert lurker.join("lurker") == [{"joined": "bob"}, said, {"joined": "lurker"}]
    assert bob.receive() == {"joined": "lurker"}


def test_history_is_the_last_100_messages_oldest_first(member: MemberFactory) -> None:
    sent: list[Any] = []
    # Each address may send BURST - 1 messages after its name without being limited.
    while len(sent) < 104:
        talker = member("history-100")
        talker.join("talker")
        for _ in range(BURST - 1):
            sent.append(talker.say(f"message {len(sent)}"))
        talker.close()
    reader = member("history-100")
    before = reader.join("reader")
    assert before == [*sent[-100:], {"joined": "reader"}]


def test_timestamps_strictly_increase(member: MemberFactory) -> None:
    ann, bob = member("timestamps"), member("timestamps")
    ann.join("ann")
    bob.join("bob")
    ann.receive()  # bob joined
    for number in range(3):
        ann.send(message=f"a{number}")
        bob.send(message=f"b{number}")
    stamps = [ann.receive()["timestamp"] for _ in range(6)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 6


def test_a_name_over_32_characters_is_refused_with_1009(member: MemberFactory) -> None:
    client = member("names")
    client.send(name="n" * 33)
    assert client.receive() == {"error": "Name too long."}
    assert client.close_code() == 1009


def test_a_message_over_256_characters_is_refused(member: MemberFactory) -> None:
    ann, bob = member("long-messages"), member("long-messages")
    ann.join("ann")
    bob.join("bob")
    ann.receive()  # bob joined
    ann.send(message="m" * 257)
    assert ann.receive() == {"error": "Message too long."}
    # Nothing was broadcast: the next thing bob sees is the next message.
    assert ann.say("m" * 256)["message"] == "m" * 256
    assert bob.receive()["message"] == "m" * 256


def test_a_private_room_is_reached_by_its_id(
    shared_server: ChatServer, member: MemberFactory
) -> None:
    room = httpx.post(shared_server.http + "/api/room").text
    ann = member(room)
    ann.join("ann")
    said = ann.say("secret")
    bob = member(room)
    assert bob.join("bob") == [{"joined": "ann"}, said, {"joined": "bob"}]


def test_the_rate_limit_is_per_address_and_shared_by_all_rooms(
    member: MemberFactory,
) -> None:
    address = new_address()
    first = member("limited-1", address)
    first.join("ann")  # 1 action
    for number in range(BURST - 1):  # BURST actions in all
        assert "timestamp" in first.say(f"quick {number}")
    first.send(message="one too many")
    assert first.receive() == {"error": RATE_LIMITED}

    # The name message counts too, in another room as well.
    second = member("limited-2", address)
    second.send(name="ann")
    assert second.receive() == {"error": RATE_LIMITED}

    # Another address has its own budget.
    other = member("limited-1")
    before = other.join("bob")
    assert before[0] == {"joined": "ann"}
    assert before[-1] == {"joined": "bob"}
    assert {"error": RATE_LIMITED} not in before


def test_history_survives_a_restart(chat_server: ChatServer) -> None:
    ann = Member(chat_server, "durable", new_address())
    ann.join("ann")
    said = [ann.say("before the restart"), ann.say("still there?")]
    ann.close()
    assert chat_server.stop() == 0

    chat_server.start()
    bob = Member(chat_server, "durable", new_address())
    try:
        assert bob.join("bob") == [*said, {"joined": "bob"}]
        later = bob.say("after the restart")
        assert later["timestamp"] > said[-1]["timestamp"]
    finally:
        bob.close()
