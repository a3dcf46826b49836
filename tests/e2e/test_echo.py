"""The /echo WebSocket endpoint: RFC 6455 conformance end to end.

Well-behaved traffic goes through the `websockets` client (with and without
its permessage-deflate offer, which ringcast does not accept yet); anything
a polite client never sends goes through the raw client in wsraw.py, so each
test states the exact frames on the wire and the exact close code expected.
"""
import os
import socket
import struct
import time

import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from wsraw import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWS, close_payload,
                   frame)

KIB, MIB = 1024, 1024 * 1024
SIZES = [0, 1, 125, 126, 127, 65535, 65536, MIB, 16 * MIB - KIB]


def ws_connect(server, compression=None, path="/echo", **kw):
    return connect(server.url + path, compression=compression, max_size=None, proxy=None,
                   open_timeout=5, close_timeout=5, ping_interval=None, **kw)


def raw(server, **kw):
    ws = RawWS(server.host, server.port, **kw)
    assert ws.status == 101, ws.status
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ws


def payload_of(size, kind, seed=0):
    if kind == "text":
        # ASCII so the byte length is exact; varied so a shifted echo shows.
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        reps = size // len(alphabet) + 1
        s = (alphabet[seed % 62:] + alphabet[:seed % 62]) * reps
        return s[:size]
    if size <= 4096:
        return os.urandom(size)
    block = os.urandom(4096)
    return (block * (size // 4096 + 1))[:size]


# ---------------------------------------------------------------- echo through the websockets client


@pytest.mark.parametrize("compression", [None, "deflate"], ids=["plain", "deflate-offered"])
@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("size", SIZES)
def test_echo_sizes(echo_server, compression, kind, size):
    with ws_connect(echo_server, compression=compression) as ws:
        msg = payload_of(size, kind, seed=size)
        ws.send(msg)
        got = ws.recv(timeout=30)
        assert type(got) is type(msg)
        assert len(got) == len(msg)
        assert got == msg
        ws.close()
        assert ws.close_code == 1000


def test_deflate_offer_accepted(echo_server):
    """--deflate is on by default: the offer is accepted with no context takeover both ways."""
    with ws_connect(echo_server, compression="deflate") as ws:
        assert ws.response.status_code == 101
        assert ws.response.headers["Sec-WebSocket-Extensions"] == (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        assert len(ws.protocol.extensions) == 1
        ws.send("after offer" * 100)
        assert ws.recv(timeout=5) == "after offer" * 100


def test_deflate_off_declines_offer(start_server):
    """--deflate off: the handshake succeeds without the extension."""
    s = start_server("--echo", "--shards", "1", "--deflate", "off")
    with ws_connect(s, compression="deflate") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.protocol.extensions == []
        ws.send("after offer")
        assert ws.recv(timeout=5) == "after offer"


def test_compressed_frame_without_negotiation_rejected(start_server):
    """Not negotiated, so a frame with RSV1 (a compressed message) is a protocol error."""
    s = start_server("--echo", "--shards", "1", "--deflate", "off")
    ws = raw(s, headers={"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"})
    assert "sec-websocket-extensions" not in ws.response_headers
    ws.send_frame(OP_TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4)
    ws.expect_close(1002)


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_echo_exact_default_limit(echo_server, kind):
    """16 MiB (the default --max-message-bytes) is allowed; one more byte is not."""
    with ws_connect(echo_server) as ws:
        msg = payload_of(16 * MIB, kind, seed=3)
        ws.send(msg)
        assert ws.recv(timeout=60) == msg
    with ws_connect(echo_server) as ws:
        ws.send(payload_of(16 * MIB + 1, kind))
        with pytest.raises(ConnectionClosedError) as ei:
            ws.recv(timeout=30)
        assert ei.value.rcvd is not None and ei.value.rcvd.code == 1009


def test_echo_default_limit_detected_at_header(echo_server):
    ws = raw(echo_server)
    ws.send(frame(OP_BINARY, length=16 * MIB + 1)[:14])  # header and mask only
    ws.expect_close(1009, timeout=3)


@pytest.fixture(scope="module")
def small_limit_server():
    from conftest import Server
    s = Server(["--echo", "--shards", "2", "--max-message-bytes", "65536"])
    yield s
    assert s.stop() == 0, s.logs()


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_limit_exact_ok(small_limit_server, kind):
    with ws_connect(small_limit_server) as ws:
        for size in (65535, 65536):
            msg = payload_of(size, kind, seed=size)
            ws.send(msg)
            assert ws.recv(timeout=10) == msg


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_limit_plus_one_1009(small_limit_server, kind):
    with ws_connect(small_limit_server) as ws:
        ws.send(payload_of(65537, kind))
        with pytest.raises(ConnectionClosedError) as ei:
            ws.recv(timeout=10)
        assert ei.value.rcvd is not None and ei.value.rcvd.code == 1009


def test_limit_detected_at_frame_header(small_limit_server):
    """1009 comes as soon as the header announces too much: no payload sent."""
    ws = raw(small_limit_server)
    ws.send(frame(OP_TEXT, length=65537)[:14])  # 2 + 8 length bytes + 4 mask, no payload
    t0 = time.time()
    ws.expect_close(1009, timeout=3)
    assert time.time() - t0 < 2


def test_limit_detected_without_mask_key(small_limit_server):
    ws = raw(small_limit_server)
    ws.send(frame(OP_BINARY, length=1 << 40)[:10])  # length known, mask not sent yet
    ws.expect_close(1009, timeout=3)


def test_limit_across_fragments_1009(small_limit_server):
    ws = raw(small_limit_server)
    ws.send_frame(OP_BINARY, b"a" * 40000, fin=False)
    ws.send(frame(OP_CONT, length=25537, fin=True)[:8])  # 40000 + 25537 = 65537
    ws.expect_close(1009, timeout=3)


def test_limit_exact_across_fragments_ok(small_limit_server):
    ws = raw(small_limit_server)
    ws.send_frame(OP_BINARY, b"a" * 40000, fin=False)
    ws.send_frame(OP_CONT, b"b" * 25536, fin=True)
    assert ws.recv_message() == (OP_BINARY, b"a" * 40000 + b"b" * 25536)
    ws.send_frame(OP_CLOSE, close_payload(1000))
    ws.expect_close(1000)


def test_limit_resets_per_message(small_limit_server):
    ws = raw(small_limit_server)
    for i in range(4):
        msg = bytes([i]) * 65536
        ws.send_frame(OP_BINARY, msg)
        assert ws.recv_message() == (OP_BINARY, msg)
    ws.close()


# ---------------------------------------------------------------- UTF-8


MULTIBYTE = [
    "héllo wörld",
    "€",
    "日本語のテキスト",
    "emoji 😀🎉 and math 𝄞 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "\u0000 nul and \u007f del",
    "\U0010ffff max code point",
    "\ufeffbom",
    "Ελληνικά Русский עברית العربية",
]


@pytest.mark.parametrize("text", MULTIBYTE)
def test_multibyte_utf8(echo_server, text):
    with ws_connect(echo_server) as ws:
        ws.send(text)
        assert ws.recv(timeout=5) == text


def test_multibyte_utf8_large(echo_server):
    text = "aé€😀" * (MIB // 10)
    with ws_connect(echo_server) as ws:
        ws.send(text)
        assert ws.recv(timeout=30) == text


def test_utf8_char_split_across_fragments_ok(echo_server):
    ws = raw(echo_server)
    data = "x😀y€z".encode()
    # 4-byte emoji split 1|3, euro split 2|1
    parts = [data[:2], data[2:5], data[5:8], data[8:]]
    for i, p in enumerate(parts):
        ws.send_frame(OP_TEXT if i == 0 else OP_CONT, p, fin=i == len(parts) - 1)
    assert ws.recv_message() == (OP_TEXT, data)
    ws.close()


def test_utf8_every_split_point(echo_server):
    ws = raw(echo_server)
    data = "é€😀".encode()
    for cut in range(1, len(data)):
        ws.send_frame(OP_TEXT, data[:cut], fin=False)
        ws.send_frame(OP_CONT, data[cut:], fin=True)
        assert ws.recv_message() == (OP_TEXT, data), cut
    ws.close()


INVALID_UTF8 = {
    "lone_continuation": b"abc\x80def",
    "overlong_slash": b"\xc0\xaf",
    "overlong_3byte": b"\xe0\x80\xaf",
    "surrogate": b"\xed\xa0\x80",
    "above_10ffff": b"\xf4\x90\x80\x80",
    "f5_lead": b"\xf5\x80\x80\x80",
    "ff": b"\xff",
    "truncated_at_end": b"ok \xe2\x82",
    "bad_continuation": b"\xe2\x28\xa1",
}


@pytest.mark.parametrize("name", sorted(INVALID_UTF8))
def test_invalid_utf8_text_1007(echo_server, name):
    ws = raw(echo_server)
    ws.send_frame(OP_TEXT, INVALID_UTF8[name])
    _, _, before = ws.expect_close(1007)
    assert before == []


def test_invalid_utf8_binary_is_fine(echo_server):
    ws = raw(echo_server)
    data = b"".join(INVALID_UTF8.values())
    ws.send_frame(OP_BINARY, data)
    assert ws.recv_message() == (OP_BINARY, data)
    ws.close()


def test_invalid_utf8_across_fragments_1007(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_TEXT, b"fine \xe2\x82", fin=False)  # valid so far: inside a euro sign
    ws.send_frame(OP_CONT, b"\x28 broken", fin=True)      # not a continuation byte
    ws.expect_close(1007)


def test_invalid_utf8_in_later_fragment_1007(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_TEXT, "good".encode(), fin=False)
    ws.send_frame(OP_CONT, "still good é".encode(), fin=False)
    ws.send_frame(OP_CONT, b"\xc3\x28", fin=True)
    ws.expect_close(1007)


def test_truncated_utf8_at_message_end_across_fragments_1007(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_TEXT, b"abc", fin=False)
    ws.send_frame(OP_CONT, b"\xf0\x9f\x98", fin=True)  # emoji missing its last byte
    ws.expect_close(1007)


def test_invalid_utf8_fails_fast(echo_server):
    """The bad byte closes the connection before the rest of the frame arrives."""
    ws = raw(echo_server)
    full = frame(OP_TEXT, b"abcd\xff" + b"x" * 995)
    ws.send(full[:8 + 10])  # header (2+2+4) and the first 10 payload bytes
    ws.expect_close(1007, timeout=3)


def test_invalid_utf8_close_reason_1007(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_CLOSE, close_payload(1000, b"bye \xff"))
    ws.expect_close(1007)


# ---------------------------------------------------------------- fragmentation


def test_text_in_three_fragments_with_ping_between(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_TEXT, b"Hello, ", fin=False)
    ws.send_frame(OP_CONT, b"fragmented ", fin=False)
    ws.send_frame(OP_PING, b"in the middle")
    ws.send_frame(OP_CONT, b"world", fin=True)
    fin, rsv, op, payload = ws.recv_frame()
    assert (fin, rsv, op, payload) == (True, 0, OP_PONG, b"in the middle")
    fin, rsv, op, payload = ws.recv_frame()
    assert (fin, rsv, op, payload) == (True, 0, OP_TEXT, b"Hello, fragmented world")
    ws.close()


def test_binary_fragments_with_empty_ones(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_BINARY, b"", fin=False)
    ws.send_frame(OP_CONT, b"\x00\x01", fin=False)
    ws.send_frame(OP_CONT, b"", fin=False)
    ws.send_frame(OP_PONG, b"unsolicited")  # ignored
    ws.send_frame(OP_CONT, b"\x02", fin=False)
    ws.send_frame(OP_CONT, b"", fin=True)
    assert ws.recv_frame() == (True, 0, OP_BINARY, b"\x00\x01\x02")
    ws.close()


def test_many_fragments(echo_server):
    ws = raw(echo_server)
    pieces = [bytes([i]) * (i * 37 % 300) for i in range(200)]
    data = b"".join(frame(OP_BINARY if i == 0 else OP_CONT, p, fin=i == 199) for i, p in enumerate(pieces))
    ws.send(data)
    assert ws.recv_message() == (OP_BINARY, b"".join(pieces))
    ws.close()


def test_large_fragmented_message(echo_server):
    ws = raw(echo_server)
    pieces = [os.urandom(300 * KIB) for _ in range(4)]
    for i, p in enumerate(pieces):
        ws.send_frame(OP_BINARY if i == 0 else OP_CONT, p, fin=i == 3)
    assert ws.recv_message() == (OP_BINARY, b"".join(pieces))
    ws.close()


def test_empty_text_and_binary_raw(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_TEXT, b"")
    ws.send_frame(OP_BINARY, b"")
    assert ws.recv_frame() == (True, 0, OP_TEXT, b"")
    assert ws.recv_frame() == (True, 0, OP_BINARY, b"")
    ws.close()


def test_server_frames_use_minimal_length_encoding(echo_server):
    ws = raw(echo_server)
    for n, header_len in [(125, 2), (126, 4), (65535, 4), (65536, 10)]:
        ws.send_frame(OP_BINARY, b"z" * n)
        ws._need(2)
        b1 = ws.buf[1]
        assert (b1 & 0x7f) == {2: n, 4: 126, 10: 127}[header_len]
        assert ws.recv_frame() == (True, 0, OP_BINARY, b"z" * n)
    ws.close()


# ---------------------------------------------------------------- ping / pong


@pytest.mark.parametrize("size", [0, 1, 125])
def test_ping_pong_payload(echo_server, size):
    ws = raw(echo_server)
    payload = bytes((i * 7 + 1) % 256 for i in range(size))
    ws.send_frame(OP_PING, payload)
    assert ws.recv_frame() == (True, 0, OP_PONG, payload)
    ws.close()


def test_many_pings_each_answered(echo_server):
    ws = raw(echo_server)
    ws.send(b"".join(frame(OP_PING, str(i).encode()) for i in range(50)))
    for i in range(50):
        assert ws.recv_frame() == (True, 0, OP_PONG, str(i).encode())
    ws.close()


def test_unsolicited_pong_ignored(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_PONG, b"nobody asked")
    ws.send_frame(OP_TEXT, b"after pong")
    assert ws.recv_frame() == (True, 0, OP_TEXT, b"after pong")
    ws.close()


def test_websockets_client_ping(echo_server):
    with ws_connect(echo_server) as ws:
        pong = ws.ping(b"client ping")
        assert pong.wait(5)


# ---------------------------------------------------------------- closing


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_close_code_echoed(echo_server, code):
    ws = raw(echo_server)
    ws.send_frame(OP_CLOSE, close_payload(code))
    got, _, before = ws.expect_close(code)
    assert got == code and before == []


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_close_code_1002(echo_server, code):
    ws = raw(echo_server)
    ws.send_frame(OP_CLOSE, close_payload(code))
    ws.expect_close(1002)


def test_close_with_reason_echoes_code(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_CLOSE, close_payload(4321, "bye ✓ " + "r" * 100))  # 2 + 111 bytes
    ws.expect_close(4321)


def test_close_max_reason_length(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_CLOSE, close_payload(1000, "r" * 123))  # 125-byte payload
    ws.expect_close(1000)


def test_empty_close_gets_empty_close(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_CLOSE, b"")
    ws.sock.settimeout(5)
    fin, rsv, op, payload = ws.recv_frame()
    assert (fin, rsv, op, payload) == (True, 0, OP_CLOSE, b"")
    ws.expect_eof()


def test_close_payload_one_byte_1002(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_CLOSE, b"\x03")
    ws.expect_close(1002)


def test_nothing_processed_after_close(echo_server):
    ws = raw(echo_server)
    ws.send(frame(OP_TEXT, b"before") + frame(OP_CLOSE, close_payload(1000)) + frame(OP_TEXT, b"after")
            + frame(OP_PING, b"p"))
    _, _, before = ws.expect_close(1000)
    assert before == [(OP_TEXT, b"before")]


def test_close_during_fragmented_message(echo_server):
    ws = raw(echo_server)
    ws.send_frame(OP_TEXT, b"part", fin=False)
    ws.send_frame(OP_CLOSE, close_payload(1000))
    _, _, before = ws.expect_close(1000)
    assert before == []


def test_websockets_client_clean_close(echo_server):
    with ws_connect(echo_server) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
        ws.close(code=4001, reason="done")
        assert ws.close_code == 4001  # the server echoed our code


def test_abrupt_tcp_close_does_not_disturb_others(echo_server):
    with ws_connect(echo_server) as keep:
        for i in range(20):
            ws = raw(echo_server)
            ws.send(frame(OP_BINARY, b"q" * 1000)[:500])  # half a frame
            if i % 2:  # every other one with a reset instead of a FIN
                ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            ws.close()
        keep.send("still works")
        assert keep.recv(timeout=5) == "still works"



# ---------------------------------------------------------------- malformed frames → 1002


MALFORMED_FRAMES = {
    "unmasked_text": frame(OP_TEXT, b"hi", mask=False),
    "unmasked_ping": frame(OP_PING, b"", mask=False),
    "unmasked_close": frame(OP_CLOSE, close_payload(1000), mask=False),
    "rsv1_text": frame(OP_TEXT, b"hi", rsv=4),
    "rsv2_text": frame(OP_TEXT, b"hi", rsv=2),
    "rsv3_binary": frame(OP_BINARY, b"hi", rsv=1),
    "rsv_all": frame(OP_BINARY, b"hi", rsv=7),
    "rsv1_ping": frame(OP_PING, b"hi", rsv=4),
    **{f"opcode_{op:x}": frame(op, b"x") for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)},
    "cont_without_start": frame(OP_CONT, b"orphan"),
    "cont_without_start_nonfin": frame(OP_CONT, b"orphan", fin=False),
    "text_during_fragmented_text": frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"),
    "binary_during_fragmented_text": frame(OP_TEXT, b"a", fin=False) + frame(OP_BINARY, b"b"),
    "text_during_fragmented_binary": frame(OP_BINARY, b"a", fin=False) + frame(OP_CONT, b"b", fin=False)
                                     + frame(OP_TEXT, b"c"),
    "ping_126": frame(OP_PING, b"p" * 126),
    "pong_126": frame(OP_PONG, b"p" * 126),
    "close_126": frame(OP_CLOSE, close_payload(1000, "r" * 124)),
    "ping_fragmented": frame(OP_PING, b"p", fin=False),
    "pong_fragmented": frame(OP_PONG, b"p", fin=False),
    "close_fragmented": frame(OP_CLOSE, close_payload(1000), fin=False),
    "ping_len_16bit": frame(OP_PING, b"", length=126)[:4] + os.urandom(4),  # 126 announced via 16-bit length
    "len64_msb_set": bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + os.urandom(4),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_FRAMES))
def test_malformed_frame_1002(echo_server, name):
    ws = raw(echo_server)
    ws.send(MALFORMED_FRAMES[name])
    _, _, before = ws.expect_close(1002)
    assert before == []


def test_good_messages_before_bad_frame_are_echoed(echo_server):
    ws = raw(echo_server)
    ws.send(frame(OP_TEXT, b"one") + frame(OP_BINARY, b"two") + frame(OP_TEXT, b"bad", mask=False)
            + frame(OP_TEXT, b"never"))
    _, _, before = ws.expect_close(1002)
    assert before == [(OP_TEXT, b"one"), (OP_BINARY, b"two")]


def test_malformed_frame_reason_and_no_more_echo(echo_server):
    """After the failing close, further input is ignored: no pong, no echo."""
    ws = raw(echo_server)
    ws.send(frame(7, b"x"))
    ws.sock.settimeout(5)
    fin, rsv, op, payload = ws.recv_frame()
    assert (fin, rsv, op) == (True, 0, OP_CLOSE)
    assert struct.unpack("!H", payload[:2])[0] == 1002
    payload[2:].decode("utf-8")  # a reason, if any, is valid UTF-8
    try:
        ws.send(frame(OP_PING, b"anyone?") + frame(OP_TEXT, b"hello?"))
    except OSError:
        pass
    ws.expect_eof()
    assert ws.buf == b""


# ---------------------------------------------------------------- split and batched input


@pytest.mark.parametrize("size", [5, 300, 70000])
def test_frame_header_split_byte_by_byte(echo_server, size):
    ws = raw(echo_server)
    data = os.urandom(size)
    f = frame(OP_BINARY, data)
    hl = {5: 6, 300: 8, 70000: 14}[size]
    for i in range(hl):
        ws.send(f[i:i + 1])
        time.sleep(0.01)
    ws.send(f[hl:])
    assert ws.recv_message() == (OP_BINARY, data)
    ws.close()


def test_whole_frames_byte_by_byte(echo_server):
    ws = raw(echo_server)
    wire = frame(OP_TEXT, "héllo".encode(), fin=False) + frame(OP_PING, b"pp") + frame(OP_CONT, b"!", fin=True)
    for i in range(len(wire)):
        ws.send(wire[i:i + 1])
        time.sleep(0.003)
    assert ws.recv_frame() == (True, 0, OP_PONG, b"pp")
    assert ws.recv_frame() == (True, 0, OP_TEXT, "héllo!".encode())
    ws.close()


def test_close_frame_byte_by_byte(echo_server):
    ws = raw(echo_server)
    wire = frame(OP_CLOSE, close_payload(3003, "split"))
    for i in range(len(wire)):
        ws.send(wire[i:i + 1])
        time.sleep(0.003)
    ws.expect_close(3003)


def test_100_messages_back_to_back_raw(echo_server):
    ws = raw(echo_server)
    msgs = [(OP_TEXT if i % 2 else OP_BINARY, f"message #{i} ".encode() * (i % 7 + 1)) for i in range(100)]
    ws.send(b"".join(frame(op, p) for op, p in msgs))
    for op, p in msgs:
        assert ws.recv_message() == (op, p)
    ws.close()


def test_100_messages_back_to_back_websockets(echo_server):
    with ws_connect(echo_server) as ws:
        msgs = [f"msg {i} " + "ü" * i if i % 3 else os.urandom(i * 100) for i in range(100)]
        for m in msgs:
            ws.send(m)
        for m in msgs:
            assert ws.recv(timeout=10) == m


def test_many_small_messages_in_one_write_and_a_big_one(echo_server):
    ws = raw(echo_server)
    big = os.urandom(200 * KIB)
    wire = b"".join(frame(OP_BINARY, bytes([i])) for i in range(100)) + frame(OP_BINARY, big) + frame(OP_TEXT, b"end")
    ws.send(wire)
    for i in range(100):
        assert ws.recv_message() == (OP_BINARY, bytes([i]))
    assert ws.recv_message() == (OP_BINARY, big)
    assert ws.recv_message() == (OP_TEXT, b"end")
    ws.close()


def test_concurrent_connections_are_independent(echo_server):
    conns = [raw(echo_server) for _ in range(20)]
    for i, ws in enumerate(conns):
        ws.send_frame(OP_TEXT, f"conn {i}".encode(), fin=False)
    for i, ws in enumerate(conns):
        ws.send_frame(OP_CONT, b" done", fin=True)
    for i, ws in enumerate(conns):
        assert ws.recv_message() == (OP_TEXT, f"conn {i} done".encode())
    conns[3].send(frame(OP_TEXT, b"x", mask=False))
    conns[3].expect_close(1002)
    for i, ws in enumerate(conns):
        if i != 3:
            ws.send_frame(OP_BINARY, bytes([i]))
            assert ws.recv_message() == (OP_BINARY, bytes([i]))
            ws.close()
