"""The case table for test_conformance.py: our own restatement of the
Autobahn|Testsuite fuzzingclient cases 1.* to 7.* and 9.* (RFC 6455 without
extensions), written from the suite's case descriptions so that a failure here
predicts a failure there.

Every case is built lazily (9.* carries up to 16 MiB) and describes
  * steps:  what goes on the wire and how it is chopped;
  * expect: the exact events the server must produce, in order
            ("text"/"binary" messages, "pong"/"ping" frames);
  * end:    how the connection must end:
      ClientCloses(codes)  we close with 1000 once `expect` has arrived; the
                           server must answer with a close whose code is in
                           `codes`, then end TCP (suite: closedByMe, requireClean);
      AlreadyClosed(codes, drop_ok)
                           the steps themselves sent our close frame (7.*); the
                           server must answer it (code in `codes`) or, when the
                           suite allows it (drop_ok), drop TCP;
      ServerFails(codes, within, drop_ok)
                           the server must fail the connection on its own within
                           `within` seconds of our last byte: a close frame whose
                           code is in `codes`, or a TCP drop when the suite
                           allows it (requireClean False).
The suite's lenient NON-STRICT outcomes (e.g. no echo of the valid message sent
before a bad frame, or UTF-8 errors only detected at message end) are not
accepted: every expectation here is the suite's strict "OK".
"""
from dataclasses import dataclass, field

from wsraw import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, close_payload, frame

# ---------------------------------------------------------------- steps / ends


@dataclass
class Send:
    """Bytes to write. chop=N writes N-byte slices with `delay` seconds between
    them (the suite's chopsize, each slice its own write); sync=True pauses
    after the write so the bytes travel alone (the suite's sync frames)."""
    data: bytes
    chop: int = 0
    delay: float = 0.001
    sync: bool = False


@dataclass
class Quiet:
    """The connection must stay open and silent for `secs` (the suite's
    ("timeout", tag) marker: the server has not failed the connection yet)."""
    secs: float


@dataclass
class Settle:
    """Wait `secs` while reading; by then exactly `events` must have arrived
    (the suite's continueLater pause, with the events it expects meanwhile)."""
    secs: float
    events: list


@dataclass
class RoundTrips:
    """Send one message, wait for its echo, `count` times (cases 9.7/9.8)."""
    opcode: int
    payload: bytes
    count: int


@dataclass
class ClientCloses:
    codes: list = field(default_factory=lambda: [1000])


@dataclass
class AlreadyClosed:
    codes: list
    drop_ok: bool = False


@dataclass
class ServerFails:
    codes: list
    within: float = 1.0
    drop_ok: bool = True


@dataclass
class Case:
    id: str
    steps: list
    expect: list
    end: object
    timeout: float = 5.0  # seconds allowed for `expect` to arrive


PROTOCOL_ERROR = [1002]
INVALID_PAYLOAD = [1007]


# ---------------------------------------------------------------- builders


def f(opcode, payload=b"", fin=True, rsv=0):
    """One masked client frame (fresh random mask, as the suite sends)."""
    return frame(opcode, payload, fin=fin, rsv=rsv)


def rep(pattern, n):
    """The suite's payload_len: `pattern` repeated and cut to n bytes."""
    return (pattern * (n // len(pattern) + 1))[:n]


def fragmented(opcode, payload, size):
    """The frames the suite's sendMessage(fragmentSize=size) writes: unfragmented
    when the payload fits, else size-byte fragments; when the length is an exact
    multiple of size the last fragment is an empty FIN continuation."""
    if len(payload) <= size:
        return [f(opcode, payload)]
    out, i, first, done = [], 0, True, False
    n = len(payload)
    while not done:
        j = i + size
        if j > n:
            done, j = True, n
        out.append(f(opcode if first else OP_CONT, payload[i:j], fin=done))
        first = False
        i += size
    return out


def close_frame(code=None, reason=b""):
    return f(OP_CLOSE, close_payload(code, reason) if code is not None else reason)


def text(p):
    return ("text", p)


def binary(p):
    return ("binary", p)


def pong(p):
    return ("pong", p)


HELLO = b"Hello, world!"
CASES = []


def case(cid, steps, expect, end, timeout=5.0):
    CASES.append((cid, lambda: Case(cid, steps() if callable(steps) else steps, expect() if callable(expect) else expect,
                                    end, timeout)))


# ---------------------------------------------------------------- 1.* framing

for sub, op, fill, kind in ((1, OP_TEXT, b"*", text), (2, OP_BINARY, b"\xfe", binary)):
    for i, n in enumerate((0, 125, 126, 127, 128, 65535, 65536), start=1):
        p = fill * n
        case(f"1.{sub}.{i}", [Send(f(op, p))], [kind(p)], ClientCloses())
    p = fill * 65536
    case(f"1.{sub}.8", [Send(f(op, p), chop=997)], [kind(p)], ClientCloses())

# ---------------------------------------------------------------- 2.* pings and pongs

case("2.1", [Send(f(OP_PING))], [pong(b"")], ClientCloses())
case("2.2", [Send(f(OP_PING, HELLO))], [pong(HELLO)], ClientCloses())
case("2.3", [Send(f(OP_PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))], [pong(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")],
     ClientCloses())
case("2.4", [Send(f(OP_PING, b"\xfe" * 125))], [pong(b"\xfe" * 125)], ClientCloses())
case("2.5", [Send(f(OP_PING, b"\xfe" * 126))], [], ServerFails(PROTOCOL_ERROR))
case("2.6", [Send(f(OP_PING, b"\xfe" * 125), chop=1)], [pong(b"\xfe" * 125)], ClientCloses())
case("2.7", [Send(f(OP_PONG) + close_frame(1000))], [], AlreadyClosed([1000]))
case("2.8", [Send(f(OP_PONG, b"unsolicited pong payload") + close_frame(1000))], [], AlreadyClosed([1000]))
case("2.9", [Send(f(OP_PONG, b"unsolicited pong payload") + f(OP_PING, b"ping payload"))], [pong(b"ping payload")],
     ClientCloses())
_pings = [b"payload-%d" % i for i in range(10)]
case("2.10", [Send(b"".join(f(OP_PING, p) for p in _pings))], [pong(p) for p in _pings], ClientCloses())
case("2.11", [Send(f(OP_PING, p), chop=1) for p in _pings], [pong(p) for p in _pings], ClientCloses())

# ---------------------------------------------------------------- 3.* reserved bits

case("3.1", [Send(f(OP_TEXT, HELLO, rsv=1))], [], ServerFails(PROTOCOL_ERROR))
case("3.2", [Send(f(OP_TEXT, HELLO) + f(OP_TEXT, HELLO, rsv=2) + f(OP_PING))], [text(HELLO)],
     ServerFails(PROTOCOL_ERROR))
case("3.3", [Send(f(OP_TEXT, HELLO), sync=True), Send(f(OP_TEXT, HELLO, rsv=3), sync=True), Send(f(OP_PING), sync=True)],
     [text(HELLO)], ServerFails(PROTOCOL_ERROR))
case("3.4", [Send(f(OP_TEXT, HELLO), chop=1), Send(f(OP_TEXT, HELLO, rsv=4), chop=1), Send(f(OP_PING), chop=1)],
     [text(HELLO)], ServerFails(PROTOCOL_ERROR))
case("3.5", [Send(f(OP_BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5))], [], ServerFails(PROTOCOL_ERROR))
# The suite's 3.6 says "Ping" but sends a binary frame; both are mirrored.
case("3.6", [Send(f(OP_BINARY, HELLO, rsv=6))], [], ServerFails(PROTOCOL_ERROR))
case("3.6-ping", [Send(f(OP_PING, HELLO, rsv=6))], [], ServerFails(PROTOCOL_ERROR))
case("3.7", [Send(f(OP_CLOSE, rsv=7))], [], ServerFails(PROTOCOL_ERROR))

# ---------------------------------------------------------------- 4.* reserved opcodes

for grp, ops in ((1, (3, 4, 5, 6, 7)), (2, (11, 12, 13, 14, 15))):
    a, b, c, d, e = ops
    case(f"4.{grp}.1", [Send(f(a))], [], ServerFails(PROTOCOL_ERROR))
    case(f"4.{grp}.2", [Send(f(b, b"reserved opcode payload"))], [], ServerFails(PROTOCOL_ERROR))
    case(f"4.{grp}.3", [Send(f(OP_TEXT, HELLO) + f(c) + f(OP_PING))], [text(HELLO)], ServerFails(PROTOCOL_ERROR))
    case(f"4.{grp}.4", [Send(f(OP_TEXT, HELLO) + f(d, HELLO) + f(OP_PING))], [text(HELLO)],
         ServerFails(PROTOCOL_ERROR))
    case(f"4.{grp}.5", [Send(f(OP_TEXT, HELLO), chop=1), Send(f(e, HELLO), chop=1), Send(f(OP_PING), chop=1)],
         [text(HELLO)], ServerFails(PROTOCOL_ERROR))

# ---------------------------------------------------------------- 5.* fragmentation

F1, F2, F3, F4, F5 = (b"fragment%d" % i for i in range(1, 6))
NONCONT = b"non-continuation payload"
PING_PL = b"ping payload"

case("5.1", [Send(f(OP_PING, F1, fin=False) + f(OP_CONT, F2))], [], ServerFails(PROTOCOL_ERROR))
case("5.2", [Send(f(OP_PONG, F1, fin=False) + f(OP_CONT, F2))], [], ServerFails(PROTOCOL_ERROR))
case("5.3", [Send(f(OP_TEXT, F1, fin=False) + f(OP_CONT, F2))], [text(F1 + F2)], ClientCloses())
case("5.4", [Send(f(OP_TEXT, F1, fin=False), sync=True), Send(f(OP_CONT, F2), sync=True)], [text(F1 + F2)],
     ClientCloses())
case("5.5", [Send(f(OP_TEXT, F1, fin=False), chop=1), Send(f(OP_CONT, F2), chop=1)], [text(F1 + F2)], ClientCloses())
case("5.6", [Send(f(OP_TEXT, F1, fin=False) + f(OP_PING, PING_PL) + f(OP_CONT, F2))],
     [pong(PING_PL), text(F1 + F2)], ClientCloses())
case("5.7", [Send(f(OP_TEXT, F1, fin=False), sync=True), Send(f(OP_PING, PING_PL), sync=True),
             Send(f(OP_CONT, F2), sync=True)], [pong(PING_PL), text(F1 + F2)], ClientCloses())
case("5.8", [Send(f(OP_TEXT, F1, fin=False), chop=1), Send(f(OP_PING, PING_PL), chop=1), Send(f(OP_CONT, F2), chop=1)],
     [pong(PING_PL), text(F1 + F2)], ClientCloses())
for cid, fin, how in (("5.9", True, "one"), ("5.10", True, "sync"), ("5.11", True, "chop"),
                      ("5.12", False, "one"), ("5.13", False, "sync"), ("5.14", False, "chop")):
    a, b = f(OP_CONT, NONCONT, fin=fin), f(OP_TEXT, HELLO)
    steps = {"one": [Send(a + b)], "sync": [Send(a, sync=True), Send(b, sync=True)],
             "chop": [Send(a, chop=1), Send(b, chop=1)]}[how]
    case(cid, steps, [], ServerFails(PROTOCOL_ERROR))
case("5.15", [Send(f(OP_TEXT, F1, fin=False) + f(OP_CONT, F2) + f(OP_CONT, F3, fin=False) + f(OP_TEXT, F4))],
     [text(F1 + F2)], ServerFails(PROTOCOL_ERROR))
case("5.16", [Send((f(OP_CONT, F1, fin=False) + f(OP_TEXT, F2, fin=False) + f(OP_CONT, F3)) * 2)], [],
     ServerFails(PROTOCOL_ERROR))
case("5.17", [Send((f(OP_CONT, F1) + f(OP_TEXT, F2, fin=False) + f(OP_CONT, F3)) * 2)], [],
     ServerFails(PROTOCOL_ERROR))
case("5.18", [Send(f(OP_TEXT, F1, fin=False) + f(OP_TEXT, F2))], [], ServerFails(PROTOCOL_ERROR))


def _case_5_19(sync):
    p1, p2 = b"pongme 1!", b"pongme 2!"
    part1 = [f(OP_TEXT, F1, fin=False), f(OP_CONT, F2, fin=False), f(OP_PING, p1)]
    part2 = [f(OP_CONT, F3, fin=False), f(OP_CONT, F4, fin=False), f(OP_PING, p2), f(OP_CONT, F5)]
    if sync:
        steps = [Send(x, sync=True) for x in part1]
        steps.append(Settle(1.0, [pong(p1)]))  # the first ping is answered mid-message
        steps += [Send(x, sync=True) for x in part2]
    else:
        steps = [Send(b"".join(part1)), Settle(1.0, [pong(p1)]), Send(b"".join(part2))]
    return steps


case("5.19", lambda: _case_5_19(False), [pong(b"pongme 1!"), pong(b"pongme 2!"), text(F1 + F2 + F3 + F4 + F5)],
     ClientCloses())
case("5.20", lambda: _case_5_19(True), [pong(b"pongme 1!"), pong(b"pongme 2!"), text(F1 + F2 + F3 + F4 + F5)],
     ClientCloses())

# ---------------------------------------------------------------- 6.* UTF-8

KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"  # κόσμε
HELLO_UTF8 = "Hello-µ@ßöäüàá-UTF-8!!".encode()

case("6.1.1", [Send(f(OP_TEXT, b""))], [text(b"")], ClientCloses())
case("6.1.2", [Send(f(OP_TEXT, b"", fin=False) + f(OP_CONT, b"", fin=False) + f(OP_CONT, b""))], [text(b"")],
     ClientCloses())
case("6.1.3", [Send(f(OP_TEXT, b"", fin=False) + f(OP_CONT, b"middle frame payload", fin=False) + f(OP_CONT, b""))],
     [text(b"middle frame payload")], ClientCloses())
case("6.2.1", [Send(f(OP_TEXT, HELLO_UTF8))], [text(HELLO_UTF8)], ClientCloses())
case("6.2.2", [Send(f(OP_TEXT, "Hello-µ@ßöä".encode(), fin=False) + f(OP_CONT, "üàá-UTF-8!!".encode()))],
     [text(HELLO_UTF8)], ClientCloses())
# One frame per byte: fragment ends fall inside code points.
case("6.2.3", [Send(b"".join(fragmented(OP_TEXT, HELLO_UTF8, 1)))], [text(HELLO_UTF8)], ClientCloses())
case("6.2.4", [Send(b"".join(fragmented(OP_TEXT, KOSME, 1)))], [text(KOSME)], ClientCloses())

BAD_6_3 = KOSME + b"\xed\xa0\x80" + b"edited"  # invalid exactly at byte 12 (0xa0: a surrogate)
case("6.3.1", [Send(f(OP_TEXT, BAD_6_3))], [], ServerFails(INVALID_PAYLOAD))
case("6.3.2", [Send(b"".join(fragmented(OP_TEXT, BAD_6_3, 1)))], [], ServerFails(INVALID_PAYLOAD))

# 6.4.*: fail fast. Part 1 is a valid prefix (the server must keep the
# connection open through a 1 s pause), part 2 makes the payload invalid (the
# server must fail with 1007 within 1 s, before part 3 is ever sent; failing only
# at message end is the suite's NON-STRICT).
P1, P2, P3 = KOSME, b"\xf4\x90\x80\x80", b"edited"  # P2 would be U+110000
BAD_6_4 = P1 + P2 + P3
case("6.4.1", [Send(f(OP_TEXT, P1, fin=False)), Quiet(1.0), Send(f(OP_CONT, P2, fin=False))], [],
     ServerFails(INVALID_PAYLOAD))
case("6.4.2", [Send(f(OP_TEXT, BAD_6_4[:12], fin=False)), Quiet(1.0), Send(f(OP_CONT, BAD_6_4[12:13], fin=False))], [],
     ServerFails(INVALID_PAYLOAD))


def _one_frame_in_chops(cut1, cut2):
    """The suite's streaming API: one non-FIN text frame announcing the whole
    payload, its bytes written in pieces."""
    raw = f(OP_TEXT, BAD_6_4, fin=False)
    head = len(raw) - len(BAD_6_4)
    return [Send(raw[:head + cut1]), Quiet(1.0), Send(raw[head + cut1:head + cut2])]


case("6.4.3", lambda: _one_frame_in_chops(len(P1), len(P1) + len(P2)), [], ServerFails(INVALID_PAYLOAD))
case("6.4.4", lambda: _one_frame_in_chops(12, 13), [], ServerFails(INVALID_PAYLOAD))


def utf8_sequences():
    """6.5 onwards: (category, [(valid, bytes), ...]) as numbered by the suite
    (Markus Kuhn's UTF-8 decoder stress test plus extras)."""
    seqs = []
    seqs.append([(True, b"hello\x24world"), (True, b"hello\xc2\xa2world"), (True, b"hello\xe2\x82\xacworld"),
                 (True, b"hello\xf0\xa4\xad\xa2world"), (True, KOSME)])
    # all prefixes of KOSME: valid exactly when they end on a code point
    seqs.append([(i in (2, 5, 7, 9, 11), KOSME[:i]) for i in range(1, len(KOSME) + 1)])
    seqs.append([(True, b"\x00"), (True, b"\xc2\x80"), (True, b"\xe0\xa0\x80"), (True, b"\xf0\x90\x80\x80")])
    seqs.append([(False, b"\xf8\x88\x80\x80\x80"), (False, b"\xfc\x84\x80\x80\x80\x80")])
    seqs.append([(True, b"\x7f"), (True, b"\xdf\xbf"), (True, b"\xef\xbf\xbf"), (True, b"\xf4\x8f\xbf\xbf")])
    seqs.append([(False, b"\xf7\xbf\xbf\xbf"), (False, b"\xfb\xbf\xbf\xbf\xbf"), (False, b"\xfd\xbf\xbf\xbf\xbf\xbf")])
    seqs.append([(True, b"\xed\x9f\xbf"), (True, b"\xee\x80\x80"), (True, b"\xef\xbf\xbd"), (True, b"\xf4\x8f\xbf\xbf"),
                 (False, b"\xf4\x90\x80\x80")])
    seqs.append([(False, b"\x80"), (False, b"\xbf"), (False, b"\x80\xbf"), (False, b"\x80\xbf\x80"),
                 (False, b"\x80\xbf\x80\xbf"), (False, b"\x80\xbf\x80\xbf\x80"), (False, b"\x80\xbf\x80\xbf\x80\xbf"),
                 (False, bytes(range(0x80, 0xbf)))])
    seqs.append([(False, b"".join(bytes([i, 0x20]) for i in range(lo, hi)))
                 for lo, hi in ((0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb), (0xfc, 0xfd))])
    missing = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
               b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    seqs.append([(False, k) for k in missing])
    seqs.append([(False, b"".join(missing))])
    seqs.append([(False, b"\xfe"), (False, b"\xff"), (False, b"\xfe\xfe\xff\xff")])
    seqs.append([(False, b"\xc0\xaf"), (False, b"\xe0\x80\xaf"), (False, b"\xf0\x80\x80\xaf"),
                 (False, b"\xf8\x80\x80\x80\xaf"), (False, b"\xfc\x80\x80\x80\x80\xaf")])
    seqs.append([(False, b"\xc1\xbf"), (False, b"\xe0\x9f\xbf"), (False, b"\xf0\x8f\xbf\xbf"),
                 (False, b"\xf8\x87\xbf\xbf\xbf"), (False, b"\xfc\x83\xbf\xbf\xbf\xbf")])
    seqs.append([(False, b"\xc0\x80"), (False, b"\xe0\x80\x80"), (False, b"\xf0\x80\x80\x80"),
                 (False, b"\xf8\x80\x80\x80\x80"), (False, b"\xfc\x80\x80\x80\x80\x80")])
    seqs.append([(False, b"\xed\xa0\x80"), (False, b"\xed\xad\xbf"), (False, b"\xed\xae\x80"), (False, b"\xed\xaf\xbf"),
                 (False, b"\xed\xb0\x80"), (False, b"\xed\xbe\x80"), (False, b"\xed\xbf\xbf")])
    hi_s, lo_s = (b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf"), (b"\xed\xb0\x80", b"\xed\xbf\xbf")
    seqs.append([(False, h + l) for h in hi_s for l in lo_s])
    nonchars = [b"\xef\xbf\xbe", b"\xef\xbf\xbf"]
    for z1 in (0xf0, 0xf1, 0xf2, 0xf3, 0xf4):
        for z2 in (0x8f, 0x9f, 0xaf, 0xbf):
            if z1 == 0xf4 and z2 != 0x8f:
                continue  # above U+10FFFF
            for z3 in (0xbe, 0xbf):
                zz = bytes([z1, z2, 0xbf, z3])
                if zz not in (b"\xf0\x8f\xbf\xbe", b"\xf0\x8f\xbf\xbf"):  # overlong
                    nonchars.append(zz)
    seqs.append([(True, z) for z in nonchars])  # non-characters are valid UTF-8
    seqs.append([(True, b"\xef\xbf" + bytes([x])) for x in range(0xb9, 0xc0)])  # specials
    return seqs


for _i, _cat in enumerate(utf8_sequences(), start=5):
    for _j, (_ok, _p) in enumerate(_cat, start=1):
        if _ok:
            case(f"6.{_i}.{_j}", [Send(f(OP_TEXT, _p))], [text(_p)], ClientCloses())
        else:
            case(f"6.{_i}.{_j}", [Send(f(OP_TEXT, _p))], [], ServerFails(INVALID_PAYLOAD, within=0.5))

# ---------------------------------------------------------------- 7.* closing

HW = b"Hello World!"
case("7.1.1", [Send(f(OP_TEXT, HW))], [text(HW)], ClientCloses())
case("7.1.2", [Send(close_frame(1000) + f(OP_CLOSE))], [], AlreadyClosed([1000]))
case("7.1.3", [Send(close_frame(1000) + f(OP_PING))], [], AlreadyClosed([1000]))
case("7.1.4", [Send(close_frame(1000) + f(OP_TEXT, HW))], [], AlreadyClosed([1000]))
case("7.1.5", [Send(f(OP_TEXT, F1, fin=False) + close_frame(1000) + f(OP_CONT, F2))], [], AlreadyClosed([1000]))
# Informational in the suite (a server may process the close before echoing);
# ringcast handles frames in order, so both echoes must precede its close.
_BIG_7_1_6 = rep(b"BAsd7&jh23", 256 * 2**10)
case("7.1.6", lambda: [Send(f(OP_TEXT, _BIG_7_1_6) + f(OP_TEXT, HW) + close_frame(1000) + f(OP_PING))],
     [text(_BIG_7_1_6), text(HW)], AlreadyClosed([1000]))

case("7.3.1", [Send(f(OP_CLOSE))], [], AlreadyClosed([1000, None]))  # empty close: reply 1000 or empty
case("7.3.2", [Send(f(OP_CLOSE, b"a"))], [], AlreadyClosed(PROTOCOL_ERROR, drop_ok=True))
case("7.3.3", [Send(close_frame(1000))], [], AlreadyClosed([1000]))
case("7.3.4", [Send(close_frame(1000, HW))], [], AlreadyClosed([1000]))
case("7.3.5", [Send(close_frame(1000, b"*" * 123))], [], AlreadyClosed([1000]))
case("7.3.6", [Send(close_frame(1000, b"*" * 124))], [], AlreadyClosed(PROTOCOL_ERROR, drop_ok=True))
# The suite accepts 1002 or 1007 here; a bad reason is invalid data, so 1007.
case("7.5.1", [Send(close_frame(1000, BAD_6_3))], [], AlreadyClosed(INVALID_PAYLOAD, drop_ok=True))
for _i, _code in enumerate((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999), start=1):
    case(f"7.7.{_i}", [Send(close_frame(_code))], [], AlreadyClosed([1000, _code]))
for _i, _code in enumerate((0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999), start=1):
    case(f"7.9.{_i}", [Send(close_frame(_code))], [], AlreadyClosed(PROTOCOL_ERROR, drop_ok=True))
# Informational in the suite: codes 5000 and 65535 are outside every range.
case("7.13.1", [Send(close_frame(5000))], [], AlreadyClosed([1000, 5000, 1002], drop_ok=True))
case("7.13.2", [Send(close_frame(65535))], [], AlreadyClosed([1000, 65535, 1002], drop_ok=True))

# ---------------------------------------------------------------- 9.* limits / performance

KIB, MIB = 2**10, 2**20
_SIZES = (64 * KIB, 256 * KIB, 1 * MIB, 4 * MIB, 8 * MIB, 16 * MIB)
for _i, _n in enumerate(_SIZES, start=1):
    case(f"9.1.{_i}", (lambda n: lambda: [Send(f(OP_TEXT, rep(b"BAsd7&jh23", n)))])(_n),
         (lambda n: lambda: [text(rep(b"BAsd7&jh23", n))])(_n), ClientCloses(), timeout=60)
    case(f"9.2.{_i}", (lambda n: lambda: [Send(f(OP_BINARY, rep(b"\x00\xfe\x23\xfa\xf0", n)))])(_n),
         (lambda n: lambda: [binary(rep(b"\x00\xfe\x23\xfa\xf0", n))])(_n), ClientCloses(), timeout=60)
_FRAGS = (64, 256, 1 * KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, 1 * MIB, 4 * MIB)
for _i, _fs in enumerate(_FRAGS, start=1):
    case(f"9.3.{_i}", (lambda fs: lambda: [Send(b"".join(fragmented(OP_TEXT, b"*" * (4 * MIB), fs)))])(_fs),
         (lambda: [text(b"*" * (4 * MIB))]), ClientCloses(), timeout=60)
    case(f"9.4.{_i}", (lambda fs, b: lambda: [Send(b"".join(fragmented(OP_BINARY, b * (4 * MIB), fs)))])(
        _fs, b"\xfe" if _i < 9 else b"*"), (lambda b: lambda: [binary(b * (4 * MIB))])(b"\xfe" if _i < 9 else b"*"),
         ClientCloses(), timeout=60)
for _i, _chop in enumerate((64, 128, 256, 512, 1024, 2048), start=1):
    case(f"9.5.{_i}", (lambda c: lambda: [Send(f(OP_TEXT, rep(b"BAsd7&jh23", MIB)), chop=c, delay=0)])(_chop),
         lambda: [text(rep(b"BAsd7&jh23", MIB))], ClientCloses(), timeout=60)
    case(f"9.6.{_i}", (lambda c: lambda: [Send(f(OP_BINARY, rep(b"\x00\xfe\x23\xfa\xf0", MIB)), chop=c, delay=0)])(_chop),
         lambda: [binary(rep(b"\x00\xfe\x23\xfa\xf0", MIB))], ClientCloses(), timeout=60)
for _i, _n in enumerate((0, 16, 64, 256, 1024, 4096), start=1):
    case(f"9.7.{_i}", [RoundTrips(OP_TEXT, b"*" * _n, 1000)], [], ClientCloses(), timeout=60)
    case(f"9.8.{_i}", [RoundTrips(OP_BINARY, b"\xfe" * _n, 1000)], [], ClientCloses(), timeout=60)


def _sort_key(cid):
    return [int(x) if x.isdigit() else x for x in cid.replace("-", ".").split(".")]


CASES.sort(key=lambda c: _sort_key(c[0]))
