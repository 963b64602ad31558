"""kitpy.protocol.websocket against a wsproto client: bytes shuttled by hand, no sockets."""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from kitpy.protocol import (
    NEED_DATA,
    CloseReceived,
    ConnectionClosed,
    HTTP11Protocol,
    Limits,
    Message,
    PongReceived,
    ProtocolError,
    RequestHead,
    WebSocketProtocol,
)
from kitpy.protocol.websocket import (
    CloseState,
    accept_upgrade,
    origin_allowed,
    upgrade_problem,
)


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def parse_head(raw: bytes) -> RequestHead:
    server = HTTP11Protocol(Limits(), FakeClock())
    server.receive_data(raw)
    head = server.next_event()
    assert isinstance(head, RequestHead)
    return head


class Pair:
    """A wsproto client upgraded against kitpy's handshake and connection."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        subprotocols: list[str] | None = None,
        choose: str | None = None,
        deflate: bool = False,
    ) -> None:
        self.clock = FakeClock()
        self.limits = limits or Limits()
        self.client = WSConnection(ConnectionType.CLIENT)
        request = self.client.send(
            Request(
                host="example.com",
                target="/ws",
                subprotocols=subprotocols or [],
                extensions=[PerMessageDeflate()] if deflate else [],
            )
        )
        head = parse_head(request)
        assert upgrade_problem(head) is None
        headers = [("sec-websocket-protocol", choose)] if choose else []
        headers.append(("set-cookie", "a=1"))
        handshake, self.server, self.subprotocol = accept_upgrade(
            head, headers, self.limits, self.clock, now=0
        )
        self.handshake = handshake
        self.client.receive_data(handshake)
        [accepted] = list(self.client.events())
        assert isinstance(accepted, AcceptConnection)
        self.accepted = accepted

    def to_server(self, data: bytes) -> list[object]:
        self.server.receive_data(data)
        events: list[object] = []
        while True:
            event = self.server.next_event()
            if event is NEED_DATA:
                return events
            events.append(event)
            if isinstance(event, ConnectionClosed):
                return events

    def to_client(self, data: bytes) -> list[object]:
        self.client.receive_data(data)
        return list(self.client.events())


# -- decisions before and at the handshake ----------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        pytest.param(None, "example.com", None, True, id="no-origin"),
        pytest.param("http://example.com", "example.com", None, True, id="same-host"),
        pytest.param("https://example.com", "example.com", None, True, id="same-host-https"),
        pytest.param("http://localhost:8000", "localhost:8000", None, True, id="same-port"),
        pytest.param("http://LOCALHOST:8000", "localhost:8000", None, True, id="case"),
        pytest.param("http://localhost:8001", "localhost:8000", None, False, id="other-port"),
        pytest.param("http://evil.example", "example.com", None, False, id="other-host"),
        pytest.param("http://[::1]:8000", "[::1]:8000", None, True, id="ipv6"),
        pytest.param("null", "example.com", None, False, id="null"),
        pytest.param("http://evil.example", "example.com", ["*"], True, id="star"),
        pytest.param(
            "https://app.example/", "api.example", ["https://app.example"], True, id="listed"
        ),
        pytest.param(
            "https://other.example", "api.example", ["https://app.example"], False, id="unlisted"
        ),
        pytest.param(
            "http://api.example", "api.example", ["https://app.example"], True, id="listed+self"
        ),
    ],
)
def test_origin_allowed(origin: str | None, host: str, allowed: list[str] | None, ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


GOOD_UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


@pytest.mark.parametrize(
    ("replace", "problem"),
    [
        pytest.param((b"", b""), None, id="valid"),
        pytest.param((b"GET /ws", b"PUT /ws"), "must be a GET", id="method"),
        pytest.param((b"Upgrade: websocket\r\n", b""), "Upgrade: websocket", id="no-upgrade"),
        pytest.param((b"Connection: Upgrade", b"Connection: close"), "Upgrade", id="no-conn"),
        pytest.param((b"Version: 13", b"Version: 8"), "must be 13", id="version"),
        pytest.param((b"dGhlIHNhbXBsZSBub25jZQ==", b"short"), "16 bytes", id="key"),
    ],
)
def test_upgrade_problem(replace: tuple[bytes, bytes], problem: str | None) -> None:
    raw = GOOD_UPGRADE.replace(*replace) if replace[0] else GOOD_UPGRADE
    found = upgrade_problem(parse_head(raw))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_handshake_accept_token_and_app_headers() -> None:
    pair = Pair()
    head = pair.handshake.split(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"set-cookie: a=1" in head and b"server: kitpy" in head
    assert pair.subprotocol is None and pair.accepted.subprotocol is None
    # RFC 6455 section 1.3's example key and answer.
    handshake, _, _ = accept_upgrade(parse_head(GOOD_UPGRADE), [], Limits(), FakeClock())
    assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in handshake


def test_subprotocol_chosen_by_the_app() -> None:
    pair = Pair(subprotocols=["chat.v1", "chat.v2"], choose="chat.v2")
    assert pair.subprotocol == "chat.v2"
    assert pair.accepted.subprotocol == "chat.v2"


def test_subprotocol_not_offered_is_an_app_error() -> None:
    client = WSConnection(ConnectionType.CLIENT)
    head = parse_head(client.send(Request(host="x", target="/", subprotocols=["a"])))
    with pytest.raises(ValueError, match="'b'"):
        accept_upgrade(head, [("sec-websocket-protocol", "b")], Limits(), FakeClock())


def test_permessage_deflate_is_negotiated_and_works() -> None:
    pair = Pair(deflate=True)
    assert any(isinstance(e, PerMessageDeflate) for e in pair.accepted.extensions)
    text = "compress me " * 200
    data = pair.client.send(TextMessage(data=text))
    assert len(data) < len(text) // 4
    assert pair.to_server(data) == [Message(text)]
    out = pair.server.send(text)
    assert len(out) < len(text) // 4
    [received] = pair.to_client(out)
    assert isinstance(received, TextMessage) and received.data == text


# -- messages ---------------------------------------------------------------------------


def test_text_and_binary_both_ways() -> None:
    pair = Pair()
    data = pair.client.send(TextMessage(data="héllo")) + pair.client.send(
        BytesMessage(data=b"\x00")
    )
    assert pair.to_server(data) == [Message("héllo"), Message(b"\x00")]
    [text] = pair.to_client(pair.server.send("olé"))
    [binary] = pair.to_client(pair.server.send(b"\xff"))
    assert isinstance(text, TextMessage) and text.data == "olé"
    assert isinstance(binary, BytesMessage) and binary.data == b"\xff"


def test_fragmented_message_is_joined() -> None:
    pair = Pair()
    data = b"".join(
        pair.client.send(TextMessage(data=part, message_finished=last))
        for part, last in [("a", False), ("b", False), ("c", True)]
    )
    assert pair.to_server(data) == [Message("abc")]
    data = pair.client.send(BytesMessage(data=b"1", message_finished=False))
    assert pair.to_server(data) == []
    assert pair.to_server(pair.client.send(BytesMessage(data=b"2"))) == [Message(b"12")]


@given(st.lists(st.integers(min_value=1, max_value=7), max_size=30))
def test_any_split_of_the_frames_gives_the_same_messages(cuts: list[int]) -> None:
    pair = Pair()
    raw = b"".join(
        [
            pair.client.send(TextMessage(data="first")),
            pair.client.send(BytesMessage(data=b"se", message_finished=False)),
            pair.client.send(Ping(payload=b"p")),
            pair.client.send(BytesMessage(data=b"cond")),
        ]
    )
    events: list[object] = []
    for cut in cuts:
        if raw[:cut]:
            events += pair.to_server(raw[:cut])
        raw = raw[cut:]
    if raw:
        events += pair.to_server(raw)
    assert events == [Message("first"), Message(b"second")]
    [pong] = pair.to_client(pair.server.data_to_send())
    assert isinstance(pong, Pong) and pong.payload == b"p"


@pytest.mark.parametrize("fragmented", [False, True], ids=["one-frame", "fragments"])
def test_message_over_the_limit_is_1009(fragmented: bool) -> None:
    pair = Pair(Limits(max_ws_message_bytes=100))
    if fragmented:
        data = b"".join(
            pair.client.send(BytesMessage(data=b"x" * 60, message_finished=last))
            for last in (False, True)
        )
    else:
        data = pair.client.send(BytesMessage(data=b"x" * 101))
    with pytest.raises(ProtocolError) as info:
        pair.to_server(data)
    assert info.value.close_code == 1009
    [close] = pair.to_client(pair.server.close(1009, info.value.message))
    assert isinstance(close, CloseConnection) and close.code == 1009


def frame_header(first: int, length: int, mask: bytes = b"\0\0\0\0") -> bytes:
    """A masked client frame header declaring ``length`` payload bytes."""
    if length < 126:
        return bytes([first, 0x80 | length]) + mask
    if length < 65536:
        return struct.pack("!BBH", first, 0xFE, length) + mask
    return struct.pack("!BBQ", first, 0xFF, length) + mask


@pytest.mark.parametrize("trickled", [False, True], ids=["whole", "byte-by-byte"])
def test_declared_length_over_the_limit_is_1009_before_the_payload(trickled: bool) -> None:
    pair = Pair(Limits(max_ws_message_bytes=100))
    header = frame_header(0x82, 2**62)
    pieces = [header[i : i + 1] for i in range(len(header))] if trickled else [header]
    with pytest.raises(ProtocolError) as info:
        for piece in pieces:
            assert pair.to_server(piece) == []
    assert info.value.close_code == 1009


def test_invalid_oversized_header_keeps_wsprotos_verdict() -> None:
    pair = Pair(Limits(max_ws_message_bytes=100))
    with pytest.raises(ProtocolError) as info:
        pair.to_server(struct.pack("!BBQ", 0x82, 0x7F, 2**62))  # not masked: 1002 first
    assert info.value.close_code == 1002


def test_declared_fragments_add_up_to_the_limit() -> None:
    pair = Pair(Limits(max_ws_message_bytes=100))
    first = pair.client.send(BytesMessage(data=b"x" * 60, message_finished=False))
    assert pair.to_server(first) == []
    with pytest.raises(ProtocolError) as info:
        pair.to_server(frame_header(0x80, 41))  # 60 + 41: refused without its payload
    assert info.value.close_code == 1009


def test_messages_before_an_oversized_header_are_delivered_first() -> None:
    pair = Pair(Limits(max_ws_message_bytes=100))
    data = pair.client.send(BytesMessage(data=b"x" * 100)) + frame_header(0x81, 101)
    pair.server.receive_data(data)
    assert pair.server.next_event() == Message(b"x" * 100)
    with pytest.raises(ProtocolError) as info:
        pair.server.next_event()
    assert info.value.close_code == 1009


def test_compressed_frame_declaring_far_more_than_the_limit_is_1009() -> None:
    pair = Pair(Limits(max_ws_message_bytes=64 * 1024), deflate=True)
    pair.server.receive_data(frame_header(0xC2, 2**40))  # RSV1: compressed
    with pytest.raises(ProtocolError) as info:
        pair.server.next_event()
    assert info.value.close_code == 1009


def test_incompressible_message_at_the_limit_passes_compressed() -> None:
    pair = Pair(Limits(max_ws_message_bytes=64 * 1024), deflate=True)
    message = random.Random(1).randbytes(64 * 1024)
    data = pair.client.send(BytesMessage(data=message))
    assert len(data) > 64 * 1024  # deflate made it longer
    assert pair.to_server(data) == [Message(message)]


def test_text_size_counts_utf8_bytes() -> None:
    pair = Pair(Limits(max_ws_message_bytes=10))
    assert pair.to_server(pair.client.send(TextMessage(data="é" * 5))) == [Message("é" * 5)]
    with pytest.raises(ProtocolError) as info:
        pair.to_server(pair.client.send(TextMessage(data="é" * 6)))
    assert info.value.close_code == 1009


def test_deflate_bomb_is_stopped_early() -> None:
    pair = Pair(Limits(max_ws_message_bytes=64 * 1024), deflate=True)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = compressor.compress(b"\0" * (50 * 1024 * 1024)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = payload[:-4]  # permessage-deflate strips the sync-flush tail
    mask = b"\1\2\3\4"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert 1000 < len(payload) < 65536
    frame = bytes([0xC2, 0xFE]) + struct.pack("!H", len(payload)) + mask + masked  # RSV1 binary
    pair.server.receive_data(frame)
    with pytest.raises(ProtocolError) as info:
        while pair.server.next_event() is not NEED_DATA:
            pass
    assert info.value.close_code == 1009


def unmasked_text(payload: bytes) -> bytes:
    return bytes([0x81, len(payload)]) + payload


def masked_text(payload: bytes) -> bytes:
    mask = b"\x11\x22\x33\x44"
    return (
        bytes([0x81, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(unmasked_text(b"hi"), 1002, id="unmasked"),
        pytest.param(masked_text(b"\xff\xfe"), 1007, id="invalid-utf8"),
        pytest.param(bytes([0x83, 0x80]) + b"\0\0\0\0", 1002, id="reserved-opcode"),
        pytest.param(bytes([0x80, 0x80]) + b"\0\0\0\0", 1002, id="continuation-first"),
    ],
)
def test_bad_frames_fail_with_their_close_code(frame: bytes, code: int) -> None:
    pair = Pair()
    with pytest.raises(ProtocolError) as info:
        pair.to_server(frame)
    assert info.value.close_code == code


# -- control frames and closing -------------------------------------------------------------


def test_ping_is_answered_with_pong() -> None:
    pair = Pair()
    assert pair.to_server(pair.client.send(Ping(payload=b"x"))) == []
    [pong] = pair.to_client(pair.server.data_to_send())
    assert isinstance(pong, Pong) and pong.payload == b"x"
    assert pair.server.data_to_send() == b""


def test_client_initiated_close() -> None:
    pair = Pair()
    events = pair.to_server(pair.client.send(CloseConnection(code=1000, reason="bye")))
    assert events == [CloseReceived(1000, "bye")]
    assert pair.server.close_state is CloseState.CLOSED
    [reply] = pair.to_client(pair.server.data_to_send())
    assert isinstance(reply, CloseConnection) and reply.code == 1000
    assert pair.server.send("late") == b""
    assert pair.server.close(1000) == b""


def test_close_without_code_is_1005() -> None:
    pair = Pair()
    assert pair.to_server(bytes([0x88, 0x80]) + b"\0\0\0\0") == [CloseReceived(1005, "")]


def test_server_initiated_close() -> None:
    pair = Pair()
    data = pair.server.close(4000, "done")
    assert pair.server.close_state is CloseState.LOCAL_CLOSING
    [close] = pair.to_client(data)
    assert isinstance(close, CloseConnection) and close.code == 4000 and close.reason == "done"
    events = pair.to_server(pair.client.send(close.response()))
    assert events == [CloseReceived(4000, "done")]
    state: CloseState = pair.server.close_state  # mypy narrowed it above
    assert state is CloseState.CLOSED


@pytest.mark.parametrize("code", [1005, 1006, 1015])
def test_local_only_codes_go_out_as_1000(code: int) -> None:
    pair = Pair()
    [close] = pair.to_client(pair.server.close(code))
    assert isinstance(close, CloseConnection) and close.code == 1000


def test_end_of_stream() -> None:
    pair = Pair()
    pair.server.receive_data(None)
    assert isinstance(pair.server.next_event(), ConnectionClosed)


def test_frames_sent_with_the_handshake_are_kept() -> None:
    client = WSConnection(ConnectionType.CLIENT)
    head = parse_head(client.send(Request(host="x", target="/")))
    early = masked_text(b"early")
    _, server, _ = accept_upgrade(head, [], Limits(), FakeClock(), trailing_data=early)
    assert server.next_event() == Message("early")


# -- keepalive ------------------------------------------------------------------------------


def test_keepalive_ping_pong_and_timeout() -> None:
    pair = Pair(Limits(ws_ping_interval=10, ws_ping_timeout=5))
    clock = pair.clock
    assert pair.server.keepalive_deadline() == 10
    assert not pair.server.ping_due()
    clock.now = 10
    assert pair.server.ping_due()
    [ping] = pair.to_client(pair.server.ping())
    assert isinstance(ping, Ping)
    assert pair.server.keepalive_deadline() == 15  # now waiting for the pong
    clock.now = 12
    assert pair.to_server(pair.client.send(ping.response())) == [PongReceived()]
    assert pair.server.keepalive_deadline() == 20 and not pair.server.pong_overdue()
    clock.now = 20
    pair.server.ping()
    clock.now = 24.9
    assert not pair.server.pong_overdue()
    clock.now = 25
    assert pair.server.pong_overdue()


def test_keepalive_off() -> None:
    pair = Pair(Limits(ws_ping_interval=0))
    pair.clock.now = 1e9
    assert not pair.server.ping_due()
    assert pair.server.keepalive_deadline() == float("inf")


def test_rejection_is_plain_http() -> None:
    # Refusing an upgrade is an ordinary response; the client sees its status.
    client = WSConnection(ConnectionType.CLIENT)
    server = HTTP11Protocol(Limits(), FakeClock())
    server.receive_data(client.send(Request(host="x", target="/")))
    assert isinstance(server.next_event(), RequestHead)
    data, _ = server.encode_response(401, [], b"no")
    client.receive_data(data)
    [reject, *_] = list(client.events())
    assert isinstance(reject, RejectConnection) and reject.status_code == 401


def test_standalone_connection_defaults() -> None:
    connection = WebSocketProtocol(Limits(), FakeClock())
    assert connection.close_state is CloseState.OPEN
    assert connection.next_event() is NEED_DATA
    h11.Connection(h11.CLIENT)  # h11 stays importable alongside wsproto
