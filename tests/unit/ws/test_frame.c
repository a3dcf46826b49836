/*
 * test_frame.c — rc_ws_decode() against hand-built client frames (every
 * rejection rule, fragmentation with control frames in between, streaming
 * at every split point) and rc_ws_write_header() byte for byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rc_test.h"
#include "ringcast/ws.h"

#define FIN 0x80
#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10

static const uint8_t test_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Builds a client frame: first byte b0, payload[0..n) masked with test_mask
 * (unless !masked), length in the shortest form or forced to len_bytes
 * extra bytes (2 or 8). Returns the frame length. */
static size_t mkframe_ex(uint8_t *out, uint8_t b0, const void *payload, size_t n, int len_bytes,
                         int masked)
{
    size_t o = 0;
    uint8_t m = masked ? 0x80 : 0;

    if (len_bytes == 0)
        len_bytes = n <= 125 ? 0 : n <= 0xFFFF ? 2 : 8;
    out[o++] = b0;
    if (len_bytes == 0) {
        out[o++] = (uint8_t)(m | n);
    } else if (len_bytes == 2) {
        out[o++] = m | 126;
        out[o++] = (uint8_t)(n >> 8);
        out[o++] = (uint8_t)n;
    } else {
        out[o++] = m | 127;
        for (int i = 0; i < 8; i++)
            out[o++] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    }
    if (masked) {
        memcpy(out + o, test_mask, 4);
        o += 4;
    }
    for (size_t i = 0; i < n; i++)
        out[o + i] = ((const uint8_t *)payload)[i] ^ (masked ? test_mask[i & 3] : 0);
    return o + n;
}

static size_t mkframe(uint8_t *out, uint8_t b0, const void *payload, size_t n)
{
    return mkframe_ex(out, b0, payload, n, 0, 1);
}

/* Decodes a buffer that must fail; returns the close code (0 if it did not
 * fail). Works on an exact-size heap copy so ASan sees any overread. */
static int decode_error(struct rc_ws_decoder *d, const uint8_t *frame, size_t n)
{
    uint8_t *buf = malloc(n ? n : 1);
    size_t off = 0;
    struct rc_ws_event ev;
    int code = 0;

    memcpy(buf, frame, n);
    for (;;) {
        ssize_t r = rc_ws_decode(d, buf + off, n - off, &ev);
        if (r < 0) {
            code = ev.close_code;
            break;
        }
        if (r == 0 && ev.type == RC_WS_EV_NONE)
            break;
        off += (size_t)r;
    }
    free(buf);
    return code;
}

static int fresh_error(const uint8_t *frame, size_t n, uint64_t max, bool rsv1)
{
    struct rc_ws_decoder d;

    rc_ws_decoder_init(&d, max, rsv1);
    return decode_error(&d, frame, n);
}

/* ---- a caller that receives the wire in pieces ---- */

struct collected {
    uint8_t data[80000]; /* DATA bytes of every message, concatenated */
    size_t data_len;
    int messages; /* DATA events with fin */
    int data_events;
    int pings;
    uint8_t ping[RC_WS_MAX_CONTROL];
    size_t ping_len;
    int closes;
    uint16_t close_code;
    char close_reason[RC_WS_MAX_CONTROL];
    size_t close_reason_len;
    uint8_t last_opcode;
    int error; /* close code of a -1, else 0 */
};

static uint8_t stream_pending[80000];

/* Feeds wire[0..n) in pieces of `step` bytes like src/net would: keep the
 * unconsumed tail, append the next piece, decode until NONE. Every decode
 * call sees an exact-size heap buffer. */
static void feed(const uint8_t *wire, size_t n, size_t step, uint64_t max, struct collected *c)
{
    struct rc_ws_decoder d;
    size_t have = 0, sent = 0;

    memset(c, 0, sizeof *c);
    rc_ws_decoder_init(&d, max, false);
    while (sent < n) {
        size_t piece = n - sent < step ? n - sent : step;
        memcpy(stream_pending + have, wire + sent, piece);
        have += piece;
        sent += piece;

        uint8_t *buf = malloc(have ? have : 1);
        memcpy(buf, stream_pending, have);
        size_t off = 0;
        for (;;) {
            struct rc_ws_event ev;
            ssize_t r = rc_ws_decode(&d, buf + off, have - off, &ev);
            if (r < 0) {
                c->error = ev.close_code;
                free(buf);
                return;
            }
            if (ev.type == RC_WS_EV_NONE) {
                if (r != 0)
                    c->error = -1; /* contract: NONE consumes nothing */
                break;
            }
            switch (ev.type) {
            case RC_WS_EV_DATA:
                if (ev.data < buf + off || ev.data + ev.len > buf + have)
                    c->error = -2;
                memcpy(c->data + c->data_len, ev.data, ev.len);
                c->data_len += ev.len;
                c->data_events++;
                c->last_opcode = ev.opcode;
                if (ev.fin)
                    c->messages++;
                break;
            case RC_WS_EV_PING:
                c->pings++;
                memcpy(c->ping, ev.data, ev.len);
                c->ping_len = ev.len;
                break;
            case RC_WS_EV_CLOSE:
                c->closes++;
                c->close_code = ev.close_code;
                memcpy(c->close_reason, ev.data, ev.len);
                c->close_reason_len = ev.len;
                break;
            default:
                break;
            }
            off += (size_t)r;
        }
        memmove(stream_pending, buf + off, have - off);
        have -= off;
        free(buf);
    }
    if (have != 0)
        c->error = -3; /* bytes left over after the whole wire */
}

/* ---- tests ---- */

static void test_rfc_examples(void)
{
    /* RFC 6455 §5.7: a single-frame masked text message "Hello". */
    uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct rc_ws_decoder d;
    struct rc_ws_event ev;

    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, hello, sizeof hello, &ev), 11);
    CHECK_EQ(ev.type, RC_WS_EV_DATA);
    CHECK_EQ(ev.opcode, RC_WS_OP_TEXT);
    CHECK(ev.fin);
    CHECK(!ev.compressed);
    CHECK_EQ(ev.len, 5);
    CHECK(ev.data == hello + 6);
    CHECK_MEM(ev.data, "Hello", 5);
    CHECK(!d.in_frame);
    CHECK_EQ(d.msg_opcode, 0);
    CHECK_EQ(rc_ws_decode(&d, hello + 11, 0, &ev), 0);
    CHECK_EQ(ev.type, RC_WS_EV_NONE);

    /* The same frame unmasked is a protocol error from a client. */
    uint8_t unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    CHECK_EQ(fresh_error(unmasked, sizeof unmasked, 0, false), 1002);
    /* Detected from the first two bytes alone. */
    CHECK_EQ(fresh_error(unmasked, 2, 0, false), 1002);

    /* §5.7 masked ping "Hello". */
    uint8_t ping[32];
    size_t n = mkframe(ping, FIN | RC_WS_OP_PING, "Hello", 5);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, ping, n, &ev), 11);
    CHECK_EQ(ev.type, RC_WS_EV_PING);
    CHECK_EQ(ev.len, 5);
    CHECK_MEM(ev.data, "Hello", 5);
}

static void test_rsv_bits(void)
{
    uint8_t f[64];
    size_t n;
    struct rc_ws_decoder d;
    struct rc_ws_event ev;

    n = mkframe(f, FIN | RSV2 | RC_WS_OP_TEXT, "a", 1);
    CHECK_EQ(fresh_error(f, n, 0, true), 1002);
    CHECK_EQ(fresh_error(f, 1, 0, true), 1002); /* fails on the first byte */
    n = mkframe(f, FIN | RSV3 | RC_WS_OP_BINARY, "a", 1);
    CHECK_EQ(fresh_error(f, n, 0, true), 1002);
    n = mkframe(f, FIN | RSV1 | RC_WS_OP_TEXT, "a", 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);

    /* Negotiated: RSV1 on the first frame marks the message compressed,
     * and compressed text is not UTF-8 checked here (it is deflate data). */
    n = mkframe(f, RSV1 | RC_WS_OP_TEXT, "\xff\xfe", 2);
    n += mkframe(f + n, FIN | RC_WS_OP_CONT, "\xc0", 1);
    rc_ws_decoder_init(&d, 0, true);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), 8);
    CHECK_EQ(ev.type, RC_WS_EV_DATA);
    CHECK(ev.compressed);
    CHECK(!ev.fin);
    CHECK_MEM(ev.data, "\xff\xfe", 2);
    CHECK_EQ(rc_ws_decode(&d, f + 8, n - 8, &ev), 7);
    CHECK_EQ(ev.type, RC_WS_EV_DATA);
    CHECK(ev.compressed); /* the message's flag, reported on every chunk */
    CHECK(ev.fin);
    CHECK_EQ(ev.opcode, RC_WS_OP_TEXT);

    /* ... but not on a continuation frame ... */
    n = mkframe(f, RSV1 | RC_WS_OP_TEXT, "a", 1);
    n += mkframe(f + n, FIN | RSV1 | RC_WS_OP_CONT, "b", 1);
    CHECK_EQ(fresh_error(f, n, 0, true), 1002);
    n = mkframe(f, RC_WS_OP_BINARY, "a", 1);
    n += mkframe(f + n, FIN | RSV1 | RC_WS_OP_CONT, "b", 1);
    CHECK_EQ(fresh_error(f, n, 0, true), 1002);
    /* ... nor on control frames. */
    n = mkframe(f, FIN | RSV1 | RC_WS_OP_PING, "a", 1);
    CHECK_EQ(fresh_error(f, n, 0, true), 1002);
    n = mkframe(f, FIN | RSV1 | RC_WS_OP_CLOSE, "\x03\xe8", 2);
    CHECK_EQ(fresh_error(f, n, 0, true), 1002);

    /* Uncompressed text after a compressed message is validated again. */
    n = mkframe(f, FIN | RSV1 | RC_WS_OP_TEXT, "\xff", 1);
    size_t m = mkframe(f + n, FIN | RC_WS_OP_TEXT, "\xff", 1);
    rc_ws_decoder_init(&d, 0, true);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), (ssize_t)n);
    CHECK(ev.compressed && ev.fin);
    CHECK_EQ(rc_ws_decode(&d, f + n, m, &ev), -1);
    CHECK_EQ(ev.close_code, 1007);
}

static void test_opcodes(void)
{
    static const uint8_t reserved[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    uint8_t f[32];

    for (size_t i = 0; i < sizeof reserved; i++) {
        size_t n = mkframe(f, (uint8_t)(FIN | reserved[i]), "xy", 2);
        CHECK_EQ(fresh_error(f, n, 0, false), 1002);
        CHECK_EQ(fresh_error(f, 1, 0, false), 1002);
        /* Also without FIN (a reserved data opcode starting a fragment). */
        n = mkframe(f, reserved[i], "xy", 2);
        CHECK_EQ(fresh_error(f, n, 0, false), 1002);
    }
    /* The valid ones do not fail. */
    static const uint8_t valid[] = {RC_WS_OP_TEXT, RC_WS_OP_BINARY, RC_WS_OP_PING, RC_WS_OP_PONG};
    for (size_t i = 0; i < sizeof valid; i++) {
        size_t n = mkframe(f, (uint8_t)(FIN | valid[i]), "xy", 2);
        CHECK_EQ(fresh_error(f, n, 0, false), 0);
    }
}

static void test_control_rules(void)
{
    uint8_t f[300], payload[200];
    size_t n;
    struct rc_ws_decoder d;
    struct rc_ws_event ev;

    memset(payload, 'p', sizeof payload);
    /* Control frames must not be fragmented. */
    n = mkframe(f, RC_WS_OP_PING, "a", 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);
    n = mkframe(f, RC_WS_OP_PONG, "a", 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);
    n = mkframe(f, RC_WS_OP_CLOSE, "", 0);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);

    /* 125 payload bytes is the limit. */
    n = mkframe(f, FIN | RC_WS_OP_PING, payload, 125);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), 131);
    CHECK_EQ(ev.type, RC_WS_EV_PING);
    CHECK_EQ(ev.len, 125);
    CHECK_MEM(ev.data, payload, 125);
    n = mkframe(f, FIN | RC_WS_OP_PING, payload, 126);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);
    CHECK_EQ(fresh_error(f, 4, 0, false), 1002); /* known from the length alone */
    n = mkframe(f, FIN | RC_WS_OP_PONG, payload, 126);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);
    n = mkframe_ex(f, FIN | RC_WS_OP_PING, payload, 200, 8, 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);

    /* Pong: reported with its payload. */
    n = mkframe(f, FIN | RC_WS_OP_PONG, "pong!", 5);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), 11);
    CHECK_EQ(ev.type, RC_WS_EV_PONG);
    CHECK_EQ(ev.len, 5);
    CHECK_MEM(ev.data, "pong!", 5);

    /* Empty ping. */
    n = mkframe(f, FIN | RC_WS_OP_PING, "", 0);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), 6);
    CHECK_EQ(ev.type, RC_WS_EV_PING);
    CHECK_EQ(ev.len, 0);

    /* A control frame is reported only when complete: every prefix is NONE
     * and consumes nothing. */
    n = mkframe(f, FIN | RC_WS_OP_PING, "abcdefgh", 8);
    for (size_t k = 0; k < n; k++) {
        uint8_t copy[64];
        memcpy(copy, f, k);
        rc_ws_decoder_init(&d, 0, false);
        CHECK_EQ(rc_ws_decode(&d, copy, k, &ev), 0);
        CHECK_EQ(ev.type, RC_WS_EV_NONE);
    }
}

static void test_fragmentation_rules(void)
{
    uint8_t f[64];
    size_t n;

    /* CONT with no message in progress. */
    n = mkframe(f, FIN | RC_WS_OP_CONT, "a", 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);
    n = mkframe(f, RC_WS_OP_CONT, "a", 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);
    /* ... nor after a message has ended. */
    n = mkframe(f, FIN | RC_WS_OP_TEXT, "a", 1);
    n += mkframe(f + n, FIN | RC_WS_OP_CONT, "b", 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);

    /* TEXT or BINARY while a fragmented message is in progress. */
    n = mkframe(f, RC_WS_OP_TEXT, "a", 1);
    n += mkframe(f + n, FIN | RC_WS_OP_TEXT, "b", 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);
    n = mkframe(f, RC_WS_OP_BINARY, "a", 1);
    n += mkframe(f + n, FIN | RC_WS_OP_TEXT, "b", 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);
    n = mkframe(f, RC_WS_OP_TEXT, "a", 1);
    n += mkframe(f + n, RC_WS_OP_BINARY, "b", 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);

    /* A control frame in between is fine; the message state survives it. */
    n = mkframe(f, RC_WS_OP_TEXT, "a", 1);
    n += mkframe(f + n, FIN | RC_WS_OP_PONG, "", 0);
    n += mkframe(f + n, FIN | RC_WS_OP_TEXT, "b", 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);
}

static void test_fragmented_with_ping(void)
{
    uint8_t f[128];
    size_t n = 0;
    struct rc_ws_decoder d;
    struct rc_ws_event ev;
    ssize_t r;

    n += mkframe(f + n, RC_WS_OP_TEXT, "Hel", 3);         /* 9 bytes */
    n += mkframe(f + n, FIN | RC_WS_OP_PING, "ping", 4);  /* 10 */
    n += mkframe(f + n, RC_WS_OP_CONT, "lo, ", 4);        /* 10 */
    n += mkframe(f + n, FIN | RC_WS_OP_PONG, "", 0);      /* 6 */
    n += mkframe(f + n, FIN | RC_WS_OP_CONT, "world", 5); /* 11 */
    CHECK_EQ(n, 46);

    rc_ws_decoder_init(&d, 0, false);
    size_t off = 0;
    r = rc_ws_decode(&d, f + off, n - off, &ev);
    CHECK_EQ(r, 9);
    CHECK_EQ(ev.type, RC_WS_EV_DATA);
    CHECK_EQ(ev.opcode, RC_WS_OP_TEXT);
    CHECK(!ev.fin);
    CHECK_MEM(ev.data, "Hel", 3);
    off += (size_t)r;
    r = rc_ws_decode(&d, f + off, n - off, &ev);
    CHECK_EQ(r, 10);
    CHECK_EQ(ev.type, RC_WS_EV_PING);
    CHECK_MEM(ev.data, "ping", 4);
    CHECK_EQ(d.msg_opcode, RC_WS_OP_TEXT);
    off += (size_t)r;
    r = rc_ws_decode(&d, f + off, n - off, &ev);
    CHECK_EQ(r, 10);
    CHECK_EQ(ev.type, RC_WS_EV_DATA);
    CHECK_EQ(ev.opcode, RC_WS_OP_TEXT); /* the message's opcode, not CONT */
    CHECK(!ev.fin);
    CHECK_MEM(ev.data, "lo, ", 4);
    off += (size_t)r;
    r = rc_ws_decode(&d, f + off, n - off, &ev);
    CHECK_EQ(r, 6);
    CHECK_EQ(ev.type, RC_WS_EV_PONG);
    off += (size_t)r;
    r = rc_ws_decode(&d, f + off, n - off, &ev);
    CHECK_EQ(r, 11);
    CHECK_EQ(ev.type, RC_WS_EV_DATA);
    CHECK_EQ(ev.opcode, RC_WS_OP_TEXT);
    CHECK(ev.fin);
    CHECK_MEM(ev.data, "world", 5);
    CHECK_EQ(d.msg_opcode, 0);
    CHECK_EQ(d.msg_len, 0);

    /* The same wire in every piece size gives the same result (rebuilt:
     * the decode above unmasked f in place). */
    n = 0;
    n += mkframe(f + n, RC_WS_OP_TEXT, "Hel", 3);
    n += mkframe(f + n, FIN | RC_WS_OP_PING, "ping", 4);
    n += mkframe(f + n, RC_WS_OP_CONT, "lo, ", 4);
    n += mkframe(f + n, FIN | RC_WS_OP_PONG, "", 0);
    n += mkframe(f + n, FIN | RC_WS_OP_CONT, "world", 5);
    for (size_t step = 1; step <= n; step++) {
        static struct collected c;
        feed(f, n, step, 0, &c);
        CHECK_EQ(c.error, 0);
        CHECK_EQ(c.messages, 1);
        CHECK_EQ(c.pings, 1);
        CHECK_EQ(c.data_len, 12);
        CHECK_MEM(c.data, "Hello, world", 12);
        CHECK_MEM(c.ping, "ping", 4);
        if (c.error || c.data_len != 12)
            break; /* one report is enough */
    }
}

static void test_streaming_byte_by_byte(void)
{
    /* 40 bytes of payload: the mask position must carry across calls. */
    static const char text[] = "The quick brown fox jumps over the lazy!";
    uint8_t f[64];
    size_t n = mkframe(f, FIN | RC_WS_OP_TEXT, text, 40);
    struct rc_ws_decoder d;
    struct rc_ws_event ev;
    uint8_t out[40];
    size_t got = 0, off = 0, avail = 0;

    rc_ws_decoder_init(&d, 0, false);
    /* The caller's buffer grows by one byte at a time. */
    while (avail < n) {
        avail++;
        ssize_t r = rc_ws_decode(&d, f + off, avail - off, &ev);
        CHECK(r >= 0);
        if (r < 0)
            return;
        if (avail < 6) {
            CHECK_EQ(r, 0); /* header incomplete */
            CHECK_EQ(ev.type, RC_WS_EV_NONE);
            continue;
        }
        CHECK_EQ(ev.type, RC_WS_EV_DATA);
        if (avail == 6) {
            CHECK_EQ(r, 6); /* header consumed, no payload yet */
            CHECK_EQ(ev.len, 0);
            CHECK(!ev.fin);
        } else {
            CHECK_EQ(r, 1);
            CHECK_EQ(ev.len, 1);
            CHECK_EQ(ev.fin, avail == n);
            CHECK_EQ(d.mask_off, (avail - 6) & 3);
        }
        memcpy(out + got, ev.data, ev.len);
        got += ev.len;
        off += (size_t)r;
        /* Nothing more until the next byte. */
        r = rc_ws_decode(&d, f + off, avail - off, &ev);
        CHECK_EQ(r, 0);
        CHECK_EQ(ev.type, RC_WS_EV_NONE);
    }
    CHECK_EQ(got, 40);
    CHECK_MEM(out, text, 40);

    /* Chunks of 3: the mask offset goes 0,3,2,1,0,... */
    n = mkframe(f, FIN | RC_WS_OP_BINARY, text, 40);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, 9, &ev), 9);
    CHECK_EQ(ev.len, 3);
    CHECK_EQ(d.mask_off, 3);
    CHECK_EQ(d.remaining, 37);
    CHECK_MEM(ev.data, "The", 3);
    off = 9;
    while (off < n) {
        size_t k = n - off < 3 ? n - off : 3;
        ssize_t r = rc_ws_decode(&d, f + off, k, &ev);
        CHECK_EQ(r, (ssize_t)k);
        CHECK_MEM(ev.data, text + (off - 6), k);
        off += k;
    }
    CHECK(ev.fin);
}

static void test_streaming_every_split(void)
{
    /* A mixed stream: fragmented text with a ping, a 16-bit binary, a 64-bit
     * binary, zero-length frames, then a close. */
    static uint8_t wire[1000];
    static uint8_t expect[600];
    size_t n = 0, e = 0;
    uint8_t bin[300];

    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(i * 7 + 1);
    n += mkframe(wire + n, RC_WS_OP_TEXT, "\xce\xba\xe1", 3); /* splits a character */
    n += mkframe(wire + n, FIN | RC_WS_OP_PING, "hi", 2);
    n += mkframe(wire + n, RC_WS_OP_CONT, "", 0);
    n += mkframe(wire + n, FIN | RC_WS_OP_CONT, "\xbd\xb9 ok", 5);
    memcpy(expect + e, "\xce\xba\xe1\xbd\xb9 ok", 8);
    e += 8;
    n += mkframe(wire + n, FIN | RC_WS_OP_BINARY, bin, 300);
    memcpy(expect + e, bin, 300);
    e += 300;
    n += mkframe_ex(wire + n, FIN | RC_WS_OP_BINARY, bin, 130, 8, 1);
    memcpy(expect + e, bin, 130);
    e += 130;
    n += mkframe(wire + n, FIN | RC_WS_OP_TEXT, "", 0);
    n += mkframe(wire + n, FIN | RC_WS_OP_CLOSE, "\x03\xe8" "bye", 5);

    for (size_t step = 1; step <= n; step++) {
        static struct collected c;
        feed(wire, n, step, 0, &c);
        CHECK_EQ(c.error, 0);
        CHECK_EQ(c.messages, 4);
        CHECK_EQ(c.pings, 1);
        CHECK_EQ(c.closes, 1);
        CHECK_EQ(c.close_code, 1000);
        CHECK_EQ(c.close_reason_len, 3);
        CHECK_MEM(c.close_reason, "bye", 3);
        CHECK_EQ(c.data_len, e);
        CHECK_MEM(c.data, expect, e);
        if (c.error || c.data_len != e)
            break; /* one report is enough */
    }
}

static void test_lengths(void)
{
    static uint8_t f[70100], payload[70000];
    struct rc_ws_decoder d;
    struct rc_ws_event ev;
    size_t n;

    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i ^ (i >> 8));

    /* 16-bit length. */
    n = mkframe(f, FIN | RC_WS_OP_BINARY, payload, 300);
    CHECK_EQ(n, 2 + 2 + 4 + 300);
    CHECK_EQ(f[1], 0x80 | 126);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), (ssize_t)n);
    CHECK_EQ(ev.type, RC_WS_EV_DATA);
    CHECK_EQ(ev.len, 300);
    CHECK(ev.fin);
    CHECK_MEM(ev.data, payload, 300);

    /* 16-bit length, 65535 (the largest). */
    n = mkframe(f, FIN | RC_WS_OP_BINARY, payload, 65535);
    CHECK_EQ(f[2], 0xFF);
    CHECK_EQ(f[3], 0xFF);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), (ssize_t)n);
    CHECK_EQ(ev.len, 65535);
    CHECK_MEM(ev.data, payload, 65535);

    /* 64-bit length. */
    n = mkframe(f, FIN | RC_WS_OP_BINARY, payload, 70000);
    CHECK_EQ(n, 2 + 8 + 4 + 70000);
    CHECK_EQ(f[1], 0x80 | 127);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), (ssize_t)n);
    CHECK_EQ(ev.len, 70000);
    CHECK(ev.fin);
    CHECK_MEM(ev.data, payload, 70000);

    /* Non-minimal encodings are accepted. */
    n = mkframe_ex(f, FIN | RC_WS_OP_TEXT, "short", 5, 2, 1);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), 13);
    CHECK_EQ(ev.len, 5);
    CHECK_MEM(ev.data, "short", 5);
    n = mkframe_ex(f, FIN | RC_WS_OP_TEXT, "short", 5, 8, 1);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), 19);
    CHECK_MEM(ev.data, "short", 5);

    /* 64-bit length with the top bit set. */
    uint8_t huge[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 'x'};
    CHECK_EQ(fresh_error(huge, sizeof huge, 0, false), 1002);
    CHECK_EQ(fresh_error(huge, 10, 0, false), 1002); /* before the mask arrives */
    /* 2^63 - 1 is legal (streams without a limit). */
    uint8_t big[] = {0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4, 'x'};
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, big, sizeof big, &ev), 15);
    CHECK_EQ(ev.type, RC_WS_EV_DATA);
    CHECK_EQ(ev.len, 1);
    CHECK(!ev.fin);
    CHECK_EQ(d.remaining, INT64_MAX - 1);

    /* Incomplete headers: NONE, nothing consumed. */
    n = mkframe(f, FIN | RC_WS_OP_BINARY, payload, 70000);
    for (size_t k = 0; k < 14; k++) {
        rc_ws_decoder_init(&d, 0, false);
        CHECK_EQ(rc_ws_decode(&d, f, k, &ev), 0);
        CHECK_EQ(ev.type, RC_WS_EV_NONE);
    }
}

static void test_zero_length(void)
{
    uint8_t f[64];
    size_t n = 0;
    struct rc_ws_decoder d;
    struct rc_ws_event ev;

    n += mkframe(f + n, FIN | RC_WS_OP_TEXT, "", 0);
    n += mkframe(f + n, RC_WS_OP_BINARY, "", 0);
    n += mkframe(f + n, FIN | RC_WS_OP_CONT, "", 0);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), 6);
    CHECK_EQ(ev.type, RC_WS_EV_DATA);
    CHECK_EQ(ev.len, 0);
    CHECK(ev.fin);
    CHECK_EQ(ev.opcode, RC_WS_OP_TEXT);
    CHECK_EQ(rc_ws_decode(&d, f + 6, n - 6, &ev), 6);
    CHECK_EQ(ev.type, RC_WS_EV_DATA);
    CHECK_EQ(ev.len, 0);
    CHECK(!ev.fin);
    CHECK_EQ(ev.opcode, RC_WS_OP_BINARY);
    CHECK_EQ(rc_ws_decode(&d, f + 12, n - 12, &ev), 6);
    CHECK_EQ(ev.type, RC_WS_EV_DATA);
    CHECK_EQ(ev.len, 0);
    CHECK(ev.fin);
    CHECK_EQ(ev.opcode, RC_WS_OP_BINARY);
    CHECK_EQ(rc_ws_decode(&d, f + 18, 0, &ev), 0);
    CHECK_EQ(ev.type, RC_WS_EV_NONE);

    /* An empty text message with an incomplete character is impossible,
     * but an empty final fragment ending a split character must fail. */
    n = mkframe(f, RC_WS_OP_TEXT, "\xe2\x82", 2);
    n += mkframe(f + n, FIN | RC_WS_OP_CONT, "", 0);
    CHECK_EQ(fresh_error(f, n, 0, false), 1007);
}

static void test_max_message(void)
{
    uint8_t f[128];
    size_t n;
    struct rc_ws_decoder d;
    struct rc_ws_event ev;

    /* Exactly the limit passes. */
    n = mkframe(f, FIN | RC_WS_OP_TEXT, "0123456789", 10);
    CHECK_EQ(fresh_error(f, n, 10, false), 0);
    /* One over fails on the header, before any payload is present. */
    n = mkframe(f, FIN | RC_WS_OP_TEXT, "0123456789a", 11);
    CHECK_EQ(fresh_error(f, 6, 10, false), 1009);
    CHECK_EQ(fresh_error(f, 2, 10, false), 1009); /* even before the mask */
    CHECK_EQ(fresh_error(f, n, 10, false), 1009);
    /* Counted across fragments, with control frames not counted. */
    n = mkframe(f, RC_WS_OP_BINARY, "012345", 6);
    n += mkframe(f + n, FIN | RC_WS_OP_PING, "0123456789abc", 13);
    n += mkframe(f + n, FIN | RC_WS_OP_CONT, "6789", 4);
    CHECK_EQ(fresh_error(f, n, 10, false), 0);
    n = mkframe(f, RC_WS_OP_BINARY, "012345", 6);
    size_t second = n;
    n += mkframe(f + n, FIN | RC_WS_OP_CONT, "6789a", 5);
    rc_ws_decoder_init(&d, 10, false);
    CHECK_EQ(rc_ws_decode(&d, f, second, &ev), (ssize_t)second);
    CHECK_EQ(d.msg_len, 6);
    CHECK_EQ(rc_ws_decode(&d, f + second, 2, &ev), -1);
    CHECK_EQ(ev.close_code, 1009);
    /* The count restarts with each message. */
    n = mkframe(f, FIN | RC_WS_OP_BINARY, "01234567", 8);
    n += mkframe(f + n, FIN | RC_WS_OP_BINARY, "01234567", 8);
    CHECK_EQ(fresh_error(f, n, 10, false), 0);
    /* A 64-bit length far over the limit. */
    uint8_t huge[] = {0x82, 0xFF, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
    CHECK_EQ(fresh_error(huge, sizeof huge, 1 << 20, false), 1009);
    /* 0 = no limit. */
    CHECK_EQ(fresh_error(huge, sizeof huge, 0, false), 0);
}

static void test_close(void)
{
    uint8_t f[200];
    size_t n;
    struct rc_ws_decoder d;
    struct rc_ws_event ev;

    /* No payload: 1005. */
    n = mkframe(f, FIN | RC_WS_OP_CLOSE, "", 0);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), 6);
    CHECK_EQ(ev.type, RC_WS_EV_CLOSE);
    CHECK_EQ(ev.close_code, 1005);
    CHECK_EQ(ev.len, 0);

    /* Code only. */
    n = mkframe(f, FIN | RC_WS_OP_CLOSE, "\x03\xe9", 2);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), 8);
    CHECK_EQ(ev.type, RC_WS_EV_CLOSE);
    CHECK_EQ(ev.close_code, 1001);
    CHECK_EQ(ev.len, 0);

    /* Code and reason: data is the reason after the code. */
    n = mkframe(f, FIN | RC_WS_OP_CLOSE, "\x0f\xa0g\xc3\xbcte", 7);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), 13);
    CHECK_EQ(ev.type, RC_WS_EV_CLOSE);
    CHECK_EQ(ev.close_code, 4000);
    CHECK_EQ(ev.len, 5);
    CHECK_MEM(ev.data, "g\xc3\xbcte", 5);

    /* One byte of payload. */
    n = mkframe(f, FIN | RC_WS_OP_CLOSE, "\x03", 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);

    /* Invalid codes (Autobahn 7.9.x and then some). */
    static const uint16_t bad[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t body[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        n = mkframe(f, FIN | RC_WS_OP_CLOSE, body, 2);
        CHECK_EQ(fresh_error(f, n, 0, false), 1002);
        CHECK(!rc_ws_close_code_valid(bad[i]));
    }
    /* Valid codes (Autobahn 7.7.x and the IANA additions). */
    static const uint16_t good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                    1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint8_t body[2] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i]};
        n = mkframe(f, FIN | RC_WS_OP_CLOSE, body, 2);
        rc_ws_decoder_init(&d, 0, false);
        CHECK_EQ(rc_ws_decode(&d, f, n, &ev), 8);
        CHECK_EQ(ev.type, RC_WS_EV_CLOSE);
        CHECK_EQ(ev.close_code, good[i]);
        CHECK(rc_ws_close_code_valid(good[i]));
    }

    /* Reason not UTF-8 (Autobahn 7.5.1: a surrogate). */
    static const char bad_reason[] = "\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
                                     "edited";
    n = mkframe(f, FIN | RC_WS_OP_CLOSE, bad_reason, sizeof bad_reason - 1);
    CHECK_EQ(fresh_error(f, n, 0, false), 1007);
    /* Reason ending mid-character. */
    n = mkframe(f, FIN | RC_WS_OP_CLOSE, "\x03\xe8\xce", 3);
    CHECK_EQ(fresh_error(f, n, 0, false), 1007);

    /* Close payload over 125 (Autobahn 7.3.6). */
    uint8_t long_body[126];
    memset(long_body, '*', sizeof long_body);
    long_body[0] = 0x03;
    long_body[1] = 0xe8;
    n = mkframe(f, FIN | RC_WS_OP_CLOSE, long_body, 126);
    CHECK_EQ(fresh_error(f, n, 0, false), 1002);

    /* Close between fragments is reported. */
    n = mkframe(f, RC_WS_OP_TEXT, "frag", 4);
    size_t first = n;
    n += mkframe(f + n, FIN | RC_WS_OP_CLOSE, "\x03\xe8", 2);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, n, &ev), (ssize_t)first);
    CHECK_EQ(rc_ws_decode(&d, f + first, n - first, &ev), 8);
    CHECK_EQ(ev.type, RC_WS_EV_CLOSE);
    CHECK_EQ(ev.close_code, 1000);
}

static void test_text_utf8(void)
{
    uint8_t f[200];
    size_t n;
    struct rc_ws_decoder d;
    struct rc_ws_event ev;

    /* Valid multi-byte text in one frame. */
    static const char kosme[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    n = mkframe(f, FIN | RC_WS_OP_TEXT, kosme, 11);
    CHECK_EQ(fresh_error(f, n, 0, false), 0);

    /* Invalid byte: fails. */
    n = mkframe(f, FIN | RC_WS_OP_TEXT, "ab\xff", 3);
    CHECK_EQ(fresh_error(f, n, 0, false), 1007);
    /* Binary is not checked. */
    n = mkframe(f, FIN | RC_WS_OP_BINARY, "ab\xff", 3);
    CHECK_EQ(fresh_error(f, n, 0, false), 0);

    /* Fail fast inside a frame: the frame announces 20 bytes, only the
     * first 16 (containing a surrogate) have arrived. */
    static const char partial[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
                                  "edited";
    n = mkframe(f, FIN | RC_WS_OP_TEXT, partial, 20);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, 6 + 8, &ev), 14); /* valid so far */
    CHECK_EQ(ev.len, 8);
    CHECK_EQ(rc_ws_decode(&d, f + 14, 8, &ev), -1);
    CHECK_EQ(ev.close_code, 1007);

    /* Fail fast across fragments: the first fragment already has the bad
     * byte, the rest never needs to arrive (Autobahn 6.4.1). */
    n = mkframe(f, RC_WS_OP_TEXT, partial, 16);
    CHECK_EQ(fresh_error(f, n, 0, false), 1007);

    /* A character split across fragments is fine ... */
    n = mkframe(f, RC_WS_OP_TEXT, "\xf0\x9f", 2);
    n += mkframe(f + n, FIN | RC_WS_OP_CONT, "\x98\x80", 2);
    CHECK_EQ(fresh_error(f, n, 0, false), 0);
    /* ... but a message that ends inside one fails at fin. */
    n = mkframe(f, FIN | RC_WS_OP_TEXT, "ok\xf0\x9f\x98", 5);
    rc_ws_decoder_init(&d, 0, false);
    CHECK_EQ(rc_ws_decode(&d, f, 6 + 4, &ev), 10); /* could still complete */
    CHECK_EQ(rc_ws_decode(&d, f + 10, 1, &ev), -1);
    CHECK_EQ(ev.close_code, 1007);

    /* Validator state resets between messages. */
    n = mkframe(f, FIN | RC_WS_OP_TEXT, "\xc3\xa9", 2);
    n += mkframe(f + n, FIN | RC_WS_OP_TEXT, "\xc3\xa9", 2);
    CHECK_EQ(fresh_error(f, n, 0, false), 0);
}

static void test_write_header(void)
{
    uint8_t h[RC_WS_MAX_HEADER];

    CHECK_EQ(rc_ws_write_header(h, RC_WS_OP_TEXT, true, false, 0), 2);
    CHECK_MEM(h, "\x81\x00", 2);
    CHECK_EQ(rc_ws_write_header(h, RC_WS_OP_TEXT, true, false, 125), 2);
    CHECK_MEM(h, "\x81\x7d", 2);
    CHECK_EQ(rc_ws_write_header(h, RC_WS_OP_BINARY, true, false, 126), 4);
    CHECK_MEM(h, "\x82\x7e\x00\x7e", 4);
    CHECK_EQ(rc_ws_write_header(h, RC_WS_OP_BINARY, true, false, 65535), 4);
    CHECK_MEM(h, "\x82\x7e\xff\xff", 4);
    CHECK_EQ(rc_ws_write_header(h, RC_WS_OP_BINARY, true, false, 65536), 10);
    CHECK_MEM(h, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    CHECK_EQ(rc_ws_write_header(h, RC_WS_OP_TEXT, true, true, UINT64_C(1) << 32), 10);
    CHECK_MEM(h, "\xc1\x7f\x00\x00\x00\x01\x00\x00\x00\x00", 10);
    CHECK_EQ(rc_ws_write_header(h, RC_WS_OP_TEXT, false, true, 3), 2);
    CHECK_MEM(h, "\x41\x03", 2);
    CHECK_EQ(rc_ws_write_header(h, RC_WS_OP_CONT, false, false, 1), 2);
    CHECK_MEM(h, "\x00\x01", 2);
    CHECK_EQ(rc_ws_write_header(h, RC_WS_OP_CLOSE, true, false, 2), 2);
    CHECK_MEM(h, "\x88\x02", 2);
    CHECK_EQ(rc_ws_write_header(h, RC_WS_OP_PONG, true, false, 0x0102030405060708ull), 10);
    CHECK_MEM(h, "\x8a\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10);

    CHECK_EQ(rc_ws_header_len(0), 2);
    CHECK_EQ(rc_ws_header_len(125), 2);
    CHECK_EQ(rc_ws_header_len(126), 4);
    CHECK_EQ(rc_ws_header_len(65535), 4);
    CHECK_EQ(rc_ws_header_len(65536), 10);
    CHECK_EQ(rc_ws_header_len(UINT64_C(1) << 32), 10);
}

int main(void)
{
    test_rfc_examples();
    test_rsv_bits();
    test_opcodes();
    test_control_rules();
    test_fragmentation_rules();
    test_fragmented_with_ping();
    test_streaming_byte_by_byte();
    test_streaming_every_split();
    test_lengths();
    test_zero_length();
    test_max_message();
    test_close();
    test_text_utf8();
    test_write_header();
    RC_TEST_MAIN_END("test_frame");
}
