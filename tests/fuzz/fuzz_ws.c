/*
 * fuzz_ws.c — libFuzzer driver for the WebSocket frame decoder and the
 * UTF-8 validator.
 *
 * Input layout: byte 0 configures the run, the rest is the client's byte
 * stream.
 *   bit 0     allow_rsv1 (permessage-deflate negotiated)
 *   bits 1-3  max_message: 0 (none), 1, 8, 64, 125, 1000, 4096, 65536
 *   bits 4-5  delivery: all at once, or chunks of 1-4, 1-16, 1-128 bytes,
 *             the sizes read from the stream's own bytes, last to first
 * The stream is delivered the way src/net does it: the decoder's unconsumed
 * tail is kept, the next chunk appended, and the decoder called until it
 * asks for more. Each call sees an exact-size heap copy, so any read past
 * `len` is an ASan report.
 *
 * Invariants checked: consumed ≤ len; NONE consumes nothing and anything
 * else consumes something; events point inside the consumed input; close
 * codes on error are 1002/1007/1009; what is kept between calls is never
 * more than a client header plus a control payload; every uncompressed text
 * message passes an independent UTF-8 check and ends on a character
 * boundary; messages respect max_message; control payloads ≤ 125; close
 * codes are valid and reasons UTF-8. Independently, validating the raw
 * stream in three pieces gives the same state as one call.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude, with
 *        every .c of src/ws and src/http plus this file.
 * Run:   ./fuzz_ws -dict=tests/fuzz/ws.dict WORK_CORPUS tests/fuzz/corpus/ws
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/ws.h"

#define REQUIRE(cond)                                                                  \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_ws.c:%d: invariant failed: %s\n", __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static const uint64_t max_messages[8] = {0, 1, 8, 64, 125, 1000, 4096, 65536};
static const size_t chunk_masks[4] = {0, 3, 15, 127};

static void fuzz_utf8_splits(const uint8_t *p, size_t n)
{
    uint32_t whole = rc_utf8_validate(RC_UTF8_ACCEPT, p, n);
    if (n == 0) {
        REQUIRE(whole == RC_UTF8_ACCEPT);
        return;
    }
    size_t i = p[n / 2] % (n + 1);
    size_t j = i + p[n / 3] % (n - i + 1);
    uint32_t s = rc_utf8_validate(RC_UTF8_ACCEPT, p, i);
    s = rc_utf8_validate(s, p + i, j - i);
    s = rc_utf8_validate(s, p + j, n - j);
    REQUIRE((s == RC_UTF8_REJECT) == (whole == RC_UTF8_REJECT));
    REQUIRE(s == whole); /* a DFA: the same state, not just the same verdict */
}

/* What the driver knows about the message being received. */
struct shadow {
    bool in_message;
    uint8_t opcode;
    bool compressed;
    uint64_t bytes;
    uint32_t utf8;
};

/* Checks one event; returns false when decoding must stop (close). */
static bool check_event(const struct rc_ws_decoder *d, const struct rc_ws_event *ev,
                        const uint8_t *buf, size_t off, size_t have, ssize_t r,
                        struct shadow *msg)
{
    const uint8_t *start = buf + off, *end = buf + off + (size_t)r;

    REQUIRE(r >= 0 && (size_t)r <= have - off);
    if (ev->type == RC_WS_EV_NONE) {
        REQUIRE(r == 0);
        /* Bounded buffering: a partial header or control frame at most. */
        REQUIRE(d->in_frame ? have - off == 0
                            : have - off < RC_WS_MAX_CLIENT_HEADER + RC_WS_MAX_CONTROL);
        return true;
    }
    REQUIRE(r > 0);
    REQUIRE(ev->len <= (size_t)r);
    REQUIRE(ev->data >= start && ev->data + ev->len <= end);

    switch (ev->type) {
    case RC_WS_EV_DATA:
        REQUIRE(ev->opcode == RC_WS_OP_TEXT || ev->opcode == RC_WS_OP_BINARY);
        if (!msg->in_message) {
            msg->in_message = true;
            msg->opcode = ev->opcode;
            msg->compressed = ev->compressed;
            msg->bytes = 0;
            msg->utf8 = RC_UTF8_ACCEPT;
        }
        REQUIRE(ev->opcode == msg->opcode && ev->compressed == msg->compressed);
        REQUIRE(!ev->compressed || d->allow_rsv1);
        msg->bytes += ev->len;
        REQUIRE(d->max_message == 0 || msg->bytes <= d->max_message);
        if (msg->opcode == RC_WS_OP_TEXT && !msg->compressed) {
            msg->utf8 = rc_utf8_validate(msg->utf8, ev->data, ev->len);
            REQUIRE(msg->utf8 != RC_UTF8_REJECT);
            REQUIRE(!ev->fin || msg->utf8 == RC_UTF8_ACCEPT);
        }
        if (ev->fin)
            msg->in_message = false;
        return true;
    case RC_WS_EV_PING:
    case RC_WS_EV_PONG:
        REQUIRE(ev->len <= RC_WS_MAX_CONTROL);
        return true;
    case RC_WS_EV_CLOSE:
        REQUIRE(ev->len <= RC_WS_MAX_CONTROL - 2);
        if (ev->close_code == RC_WS_CLOSE_NO_STATUS)
            REQUIRE(ev->len == 0);
        else
            REQUIRE(rc_ws_close_code_valid(ev->close_code));
        REQUIRE(rc_utf8_validate(RC_UTF8_ACCEPT, ev->data, ev->len) == RC_UTF8_ACCEPT);
        return false; /* a server stops reading after a close */
    default:
        REQUIRE(!"unknown event type");
        return false;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t cfg = data[0];
    const uint8_t *wire = data + 1;
    size_t n = size - 1;

    fuzz_utf8_splits(wire, n);

    struct rc_ws_decoder d;
    rc_ws_decoder_init(&d, max_messages[(cfg >> 1) & 7], cfg & 1);
    size_t chunk_mask = chunk_masks[(cfg >> 4) & 3];

    uint8_t *pending = malloc(n + 1); /* unconsumed tail carried between reads */
    size_t have = 0, sent = 0, chunk_no = 0;
    struct shadow msg = {0};
    bool done = false;

    while (sent < n && !done) {
        size_t chunk = n - sent;
        if (chunk_mask) {
            size_t want = 1 + (wire[n - 1 - (chunk_no % n)] & chunk_mask);
            chunk = want < chunk ? want : chunk;
        }
        chunk_no++;
        memcpy(pending + have, wire + sent, chunk);
        have += chunk;
        sent += chunk;

        /* A scratch buffer of exactly the bytes held, as a read would fill. */
        uint8_t *buf = malloc(have ? have : 1);
        memcpy(buf, pending, have);
        size_t off = 0;
        for (;;) {
            struct rc_ws_event ev;
            ssize_t r = rc_ws_decode(&d, buf + off, have - off, &ev);
            if (r < 0) {
                REQUIRE(r == -1);
                REQUIRE(ev.close_code == RC_WS_CLOSE_PROTOCOL ||
                        ev.close_code == RC_WS_CLOSE_INVALID_DATA ||
                        ev.close_code == RC_WS_CLOSE_TOO_BIG);
                REQUIRE(ev.close_code != RC_WS_CLOSE_TOO_BIG || d.max_message != 0);
                done = true; /* the decoder is unusable now */
                break;
            }
            if (!check_event(&d, &ev, buf, off, have, r, &msg)) {
                done = true;
                break;
            }
            if (ev.type == RC_WS_EV_NONE)
                break;
            off += (size_t)r;
        }
        memmove(pending, buf + off, have - off);
        have -= off;
        free(buf);
    }
    free(pending);
    return 0;
}
