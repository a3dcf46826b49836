"""permessage-deflate conformance of the --echo endpoint, mirroring the
Autobahn|Testsuite fuzzingclient cases 12.* and 13.*
(autobahntestsuite/case/case12_x_x.py).

Autobahn sends COUNT messages, one at a time (the next after the echo of the
previous), each a slice of LEN bytes/characters taken round-robin from a test
file, optionally auto-fragmented, and requires every echo to equal what was
sent (type, length, SHA-1), then a clean close with 1000. Here:

  * 12.1-12.5: the default offer, five kinds of data (a JSON report, an HTML
    report, German verse as binary, a grayscale bitmap, a PDF with
    compressed streams: the suite's kinds, generated deterministically),
    for each of the suite's 18 (size, fragment size) pairs;
  * 13.1-13.7: the JSON data under each of the suite's client offers:
    default; server_no_context_takeover; server_max_window_bits=9; =15;
    both combined (9 and 15); three offers at once;
  * COUNT is 1000 in the suite; K below (fewer) keeps this file near a
    minute. Fragmented sends come from the websockets client (each fragment
    compressed and sync-flushed on its own) and, in the "octets" variant,
    exactly as Autobahn does it: the compressed message cut into frames of
    N octets, so frame boundaries fall inside Huffman codes.

The client is the websockets library with a ClientPerMessageDeflateFactory
configured like each Autobahn offer; it records every compressed frame the
server sends, so that with server_max_window_bits=9 those frames are also
inflated one output byte at a time with a 512-byte window (the check zlib
only enforces that way, see clients/pmdtools.strict_inflate).
"""
import hashlib
import json
import math
import random
import struct
import zlib

import pytest
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate
from websockets.frames import Opcode
from websockets.sync.client import connect

from clients.pmdtools import PMD_RESPONSE, deflate_payload, inflate_payload, strict_inflate
from wsraw import OP_CLOSE, OP_CONT, OP_TEXT, RawWS, frame

pytestmark = pytest.mark.timeout(300)

# The suite's MSG_SIZES: (payload size, auto-fragment size; 0 = one frame).
MSG_SIZES = [
    (16, 0), (64, 0), (256, 0), (1024, 0), (4096, 0), (8192, 0), (16384, 0), (32768, 0), (65536, 0), (131072, 0),
    (8192, 256), (16384, 256), (32768, 256), (65536, 256), (131072, 256),
    (131072, 1024), (131072, 4096), (131072, 32768),
]


def count_for(size):
    """Messages per case (Autobahn: 1000)."""
    return 50 if size <= 16384 else 40 if size <= 65536 else 25


# ---------------------------------------------------------------- test data (deterministic)


def gen_json_report(target=200_000):
    """Like the suite's data1.json: an indented test-report JSON."""
    rnd = random.Random(12)
    agents = ["AutobahnPython/0.6.0", "ringcast/0.1", "Jetty/9", "Zürich-WS/2.1", "東京-ws/1.0"]
    behaviours = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
    report = {}
    size = 0
    for agent in agents:
        cases = {}
        for major in range(1, 14):
            for minor in range(1, 9):
                for sub in range(1, 1 + rnd.randrange(3, 19)):
                    case = f"{major}.{minor}.{sub}"
                    cases[case] = {
                        "behavior": rnd.choice(behaviours[:2]) if rnd.random() < 0.9 else rnd.choice(behaviours),
                        "behaviorClose": "OK",
                        "duration": rnd.randrange(1, 3000),
                        "remoteCloseCode": rnd.choice([1000, 1000, 1000, 1002, 1007, None]),
                        "reportfile": f"{agent.split('/')[0].lower()}_case_{case.replace('.', '_')}.json",
                    }
                    size += 190
        report[agent] = cases
        if size > target:
            break
    text = json.dumps(report, indent=3, ensure_ascii=False)
    return text


def gen_html_report(target=260_000):
    """Like the suite's data1.html: a styled HTML report with tables."""
    rnd = random.Random(13)
    out = ['<!DOCTYPE html>\n<html>\n   <head>\n      <meta charset="utf-8" />\n      <style lang="css">\n'
           "body {\n   background-color: #F4F4F4;\n   color: #333;\n   font-family: Segoe UI,Tahoma,Arial,Verdana,sans-serif;\n}\n"
           "td.case_ok {\n   background-color: #0a0;\n   text-align: center;\n}\n"
           "td.case_failed {\n   background-color: #900;\n   text-align: center;\n}\n      </style>\n   </head>\n   <body>\n"
           '      <h1>WebSocket Protocol Test Report — «Übersicht»</h1>\n      <table id="agent_case_results">\n']
    size = sum(map(len, out))
    n = 0
    while size < target:
        n += 1
        cls = "case_ok" if rnd.random() < 0.85 else "case_failed"
        row = (f'         <tr>\n            <td class="case_id"><a href="#case_desc_{n}">Case {n // 50 + 1}.{n % 50}</a></td>\n'
               f'            <td class="{cls}"><a href="report_case_{n}.html">{"Pass" if cls == "case_ok" else "Fail"}</a>'
               f'<br/><span class="case_duration">{rnd.randrange(1, 900)} ms</span></td>\n'
               f'            <td class="close_ok"><span class="close_code">{rnd.choice([1000, 1002, 1007])}</span></td>\n         </tr>\n')
        out.append(row)
        size += len(row)
    out.append("      </table>\n   </body>\n</html>\n")
    return "".join(out)


def gen_faust(target=222_000):
    """Like pg2229.txt (Goethe's Faust I, German): verse with speakers and umlauts, as bytes."""
    rnd = random.Random(14)
    speakers = ["FAUST.", "MEPHISTOPHELES.", "WAGNER.", "MARGARETE.", "CHOR DER ENGEL.", "SCHÜLER.", "MARTHE."]
    words = ("Habe nun ach Philosophie Juristerei und Medizin auch leider Theologie durchaus studiert mit heißem "
             "Bemühn da steh ich nun ich armer Tor und bin so klug als wie zuvor heiße Magister Doktor gar und ziehe "
             "schon an die zehen Jahr herauf herab und quer und krumm meine Schüler an der Nase herum und sehe daß "
             "wir nichts wissen können das will mir schier das Herz verbrennen Geist Welt Nacht Mond Glück Gefühl "
             "Tür Brüder Frühling Äther Öl Übermut süß grün").split()
    lines, size = [], 0
    while size < target:
        if rnd.random() < 0.12:
            line = "\r\n" + rnd.choice(speakers) + "\r\n"
        else:
            line = " ".join(rnd.choice(words) for _ in range(rnd.randrange(4, 10))).capitalize() + rnd.choice(
                [",", ".", ";", "!", "?", ""]) + "\r\n"
        lines.append(line)
        size += len(line.encode())
    return "".join(lines).encode()


def gen_bitmap():
    """Like lena512.bmp: a 512x512 8-bit grayscale BMP of a smooth picture with noise."""
    rnd = random.Random(15)
    w = h = 512
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    header = b"BM" + struct.pack("<IHHI", 14 + 40 + 1024 + w * h, 0, 0, 14 + 40 + 1024)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, w * h, 2835, 2835, 256, 0)
    rows = []
    for y in range(h):
        row = bytearray(w)
        for x in range(w):
            v = 128 + 60 * math.sin(x / 37.0) * math.cos(y / 23.0) + 40 * math.sin((x + y) / 91.0)
            row[x] = max(0, min(255, int(v + rnd.gauss(0, 6))))
        rows.append(bytes(row))
    return header + info + palette + b"".join(rows)


def gen_pdf(target=400_000):
    """Like the suite's PDF: text objects between zlib-compressed streams
    (which do not compress again)."""
    rnd = random.Random(16)
    out = [b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"]
    size, n = 0, 0
    while size < target:
        n += 1
        if n % 3:
            body = " ".join(f"BT /F1 {rnd.randrange(8, 14)} Tf {rnd.randrange(50, 550)} {rnd.randrange(50, 750)} Td "
                            f"({rnd.choice(['Abstract', 'Introduction', 'Results', 'the', 'of', 'and'])}) Tj ET"
                            for _ in range(40)).encode()
            obj = b"%d 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n" % (n, len(body), body)
        else:
            raw = bytes(rnd.randrange(256) for _ in range(3000)) + bytes(range(256)) * 8
            body = zlib.compress(raw)
            obj = b"%d 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream\nendobj\n" % (
                n, len(body), body)
        out.append(obj)
        size += len(obj)
    out.append(b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")
    return b"".join(out)


DATA = {}


def data(name):
    """(payload source, is binary) for the suite's five kinds, built once."""
    if name not in DATA:
        DATA[name] = {
            "json_data1": lambda: (gen_json_report(), False),
            "html_data1": lambda: (gen_html_report(), False),
            "gutenberg_faust": lambda: (gen_faust(), True),
            "lena512": lambda: (gen_bitmap(), True),
            "ooms": lambda: (gen_pdf(), True),
        }[name]()
    return DATA[name]


# The suite's order: 12.1 json, 12.2 lena, 12.3 faust, 12.4 html, 12.5 ooms.
DATASETS = ["json_data1", "lena512", "gutenberg_faust", "html_data1", "ooms"]
# Kinds whose every message of 256 bytes or more the server should send compressed.
COMPRESSIBLE = {"json_data1", "html_data1", "gutenberg_faust"}


class Slicer:
    """Autobahn's sendOne: consecutive LEN-long slices, wrapping around."""

    def __init__(self, payload, n):
        self.payload, self.n, self.ptr = payload, n, 0

    def next(self):
        a, b = self.ptr, (self.ptr + self.n) % len(self.payload)
        self.ptr = b
        return self.payload[a:b] if b > a else self.payload[a:] + self.payload[:b]


# ---------------------------------------------------------------- a recording client extension


class RecordingPMD(PerMessageDeflate):
    """websockets' PerMessageDeflate that keeps each data frame the server
    sent, as it came (opcode, rsv1, fin, payload), before inflating it."""

    frames = None

    def decode(self, frame, *, max_size=None):
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT) and self.frames is not None:
            self.frames.append((frame.opcode, frame.rsv1, frame.fin, bytes(frame.data)))
        return super().decode(frame, max_size=max_size)


class RecordingFactory(ClientPerMessageDeflateFactory):
    def __init__(self, frames, **kw):
        super().__init__(**kw)
        self.frames = frames

    def process_response_params(self, params, accepted_extensions):
        ext = super().process_response_params(params, accepted_extensions)
        rec = RecordingPMD(ext.remote_no_context_takeover, ext.local_no_context_takeover, ext.remote_max_window_bits,
                           ext.local_max_window_bits, ext.compress_settings)
        rec.frames = self.frames
        return rec


# Autobahn's client offers (PerMessageDeflateOffer: accept_no_context_takeover and
# accept_max_window_bits on by default, i.e. "client_no_context_takeover;
# client_max_window_bits", plus the requested server parameters), and the
# server_max_window_bits the server must then honour (None: 15, not echoed).
def offer(snct=False, smwb=None):
    return dict(server_no_context_takeover=snct, client_no_context_takeover=True, server_max_window_bits=smwb,
                client_max_window_bits=True)


OFFERS = {
    "13.1-default": ([offer()], None),
    "13.2-snct": ([offer(snct=True)], None),
    "13.3-smwb9": ([offer(smwb=9)], 9),
    "13.4-smwb15": ([offer(smwb=15)], 15),
    "13.5-snct-smwb9": ([offer(snct=True, smwb=9)], 9),
    "13.6-snct-smwb15": ([offer(snct=True, smwb=15)], 15),
    "13.7-three-offers": ([offer(snct=True, smwb=9), offer(snct=True), offer()], 9),
}


def run_case(server, offers, bits, dataset, size, frag, count, strict_sample):
    """One Autobahn 12/13 case through the websockets client. Returns the
    number of echoes that came compressed."""
    payload, binary = data(dataset)
    frames = []
    factories = [RecordingFactory(frames, **o) for o in offers]
    with connect(server.url + "/echo", compression=None, extensions=factories, max_size=None, proxy=None,
                 open_timeout=5, close_timeout=5, ping_interval=None) as ws:
        assert ws.response.headers.get_all("Sec-WebSocket-Extensions") == [
            PMD_RESPONSE + (f"; server_max_window_bits={bits}" if bits else "")]
        (ext,) = ws.protocol.extensions
        assert (ext.remote_no_context_takeover, ext.local_no_context_takeover) == (True, True)
        wbits = bits or 15
        assert ext.remote_max_window_bits == wbits
        slicer = Slicer(payload, size)
        compressed = 0
        for i in range(count):
            msg = slicer.next()
            sent_hash = hashlib.sha1(msg.encode() if not binary else msg).digest()
            if frag:
                ws.send([msg[k:k + frag] for k in range(0, len(msg), frag)])
            else:
                ws.send(msg)
            got = ws.recv(timeout=30)
            assert isinstance(got, bytes) == binary, f"message {i}: type {type(got).__name__}"
            assert len(got) == len(msg), f"message {i}: length {len(got)} != {len(msg)}"
            assert hashlib.sha1(got if binary else got.encode()).digest() == sent_hash, f"message {i}: content differs"
            # what came on the wire: one frame (the server does not fragment)
            assert len(frames) == 1 and frames[0][2], f"message {i}: {len(frames)} frames"
            op, rsv1, fin, wire = frames.pop()
            assert op == (Opcode.BINARY if binary else Opcode.TEXT)
            raw = msg if binary else msg.encode()
            if rsv1:
                compressed += 1
                assert len(wire) < len(raw)
                if wbits < 15 and i < strict_sample:
                    try:
                        assert strict_inflate(wire, wbits) == raw
                    except zlib.error as e:
                        raise AssertionError(f"message {i}: compressed beyond the {1 << wbits}-byte window: {e}")
            else:
                assert wire == raw
                assert not (dataset in COMPRESSIBLE and len(raw) >= 256), f"message {i} ({len(raw)} B) not compressed"
        ws.close()
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000
        assert ws.protocol.close_sent.code == 1000 and not ws.protocol.close_rcvd_then_sent
    return compressed


# ---------------------------------------------------------------- 12.*


def case_id(sf):
    size, frag = sf
    return f"{size}" + (f"-frag{frag}" if frag else "")


@pytest.mark.parametrize("size,frag", MSG_SIZES, ids=[case_id(sf) for sf in MSG_SIZES])
@pytest.mark.parametrize("dataset", DATASETS, ids=[f"12.{i + 1}-{d}" for i, d in enumerate(DATASETS)])
def test_case_12(echo_server, dataset, size, frag):
    offers, bits = OFFERS["13.1-default"]
    n = count_for(size)
    compressed = run_case(echo_server, offers, bits, dataset, size, frag, n, strict_sample=0)
    if dataset in COMPRESSIBLE:
        assert compressed == (n if size >= 256 else 0)


# ---------------------------------------------------------------- 13.*


@pytest.mark.parametrize("size,frag", MSG_SIZES, ids=[case_id(sf) for sf in MSG_SIZES])
@pytest.mark.parametrize("name", list(OFFERS))
def test_case_13(echo_server, name, size, frag):
    offers, bits = OFFERS[name]
    n = count_for(size)
    compressed = run_case(echo_server, offers, bits, "json_data1", size, frag, n,
                          strict_sample=3 if size <= 32768 else 1)
    assert compressed == (n if size >= 256 else 0)


@pytest.fixture(scope="module")
def echo_libdeflate():
    from conftest import Server
    s = Server(["--echo", "--shards", "2", "--deflate-level", "9"])
    yield s
    assert s.stop() == 0, s.logs()


LIBDEFLATE_SIZES = [sf for sf in MSG_SIZES if not sf[1]] + [(65536, 256)]


@pytest.mark.parametrize("size,frag", LIBDEFLATE_SIZES, ids=[case_id(sf) for sf in LIBDEFLATE_SIZES])
@pytest.mark.parametrize("name", ["13.1-default", "13.3-smwb9", "13.6-snct-smwb15", "13.7-three-offers"])
def test_case_13_libdeflate(echo_libdeflate, name, size, frag):
    """13.* against --deflate-level 9: libdeflate output (a BFINAL block
    and 0x00) under window 15, ISA-L's under window 9 beyond 512 bytes."""
    offers, bits = OFFERS[name]
    n = count_for(size) // 2
    compressed = run_case(echo_libdeflate, offers, bits, "json_data1", size, frag, n, strict_sample=2)
    assert compressed == (n if size >= 256 else 0)


# ---------------------------------------------------------------- Autobahn's own fragmentation


def raw_offer_header(offers):
    def one(o):
        p = ["permessage-deflate", "client_no_context_takeover", "client_max_window_bits"]
        if o["server_no_context_takeover"]:
            p.append("server_no_context_takeover")
        if o["server_max_window_bits"]:
            p.append(f"server_max_window_bits={o['server_max_window_bits']}")
        return "; ".join(p)

    return ", ".join(one(o) for o in offers)


OCTET_CASES = [(s, f) for s, f in MSG_SIZES if f] + [(1024, 100), (4096, 7)]


@pytest.mark.parametrize("size,frag", OCTET_CASES, ids=[case_id(sf) for sf in OCTET_CASES])
@pytest.mark.parametrize("name", ["13.1-default", "13.3-smwb9", "13.7-three-offers"])
def test_autobahn_style_fragments(echo_server, name, size, frag):
    """As Autobahn's autoFragmentSize does it: the message is compressed
    whole (a fresh compressor: client_no_context_takeover), then its
    compressed octets are cut into frames of `frag` bytes; RSV1 on the first
    only. Echoes inflate to the message (within 2^9 for 13.3/13.7)."""
    offers, bits = OFFERS[name]
    payload, binary = data("json_data1")
    ws = RawWS(echo_server.host, echo_server.port, path="/echo",
               headers={"Sec-WebSocket-Extensions": raw_offer_header(offers)}, timeout=30)
    try:
        assert ws.status == 101
        assert ws.response_headers["sec-websocket-extensions"] == PMD_RESPONSE + (
            f"; server_max_window_bits={bits}" if bits else "")
        slicer = Slicer(payload, size)
        for i in range(10):
            msg = slicer.next().encode()
            wire = deflate_payload(msg)
            chunks = [wire[k:k + frag] for k in range(0, len(wire), frag)]
            out = b"".join(
                frame(OP_TEXT if k == 0 else OP_CONT, c, fin=k == len(chunks) - 1,
                                          rsv=4 if k == 0 else 0)
                for k, c in enumerate(chunks))
            ws.send(out)
            fin, rsv, op, echo = ws.recv_frame()
            assert (fin, op) == (True, OP_TEXT)
            assert rsv == 4, "a JSON echo of at least 1 KiB comes compressed"
            got = strict_inflate(echo, bits) if bits and i < 2 else inflate_payload(echo)
            assert got == msg, f"message {i}"
        ws.send(frame(OP_CLOSE, struct.pack("!H", 1000)))
        ws.expect_close(1000)
    finally:
        ws.close()
