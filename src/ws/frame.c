/*
 * frame.c — RFC 6455 frame decoder (client → server) and header writer
 * (server → client).
 *
 * Place in the data flow: the connection layer in src/net hands every byte
 * received on an upgraded connection to rc_ws_decode(), which validates the
 * framing, unmasks payload in place and reports one event per call. Frames
 * the server sends get their header from rc_ws_write_header().
 *
 * Owns nothing: events point into the caller's input buffer. A decoder is
 * per connection; any thread may use it, one at a time. No I/O, no
 * allocation.
 *
 * Decoding model. Data payload streams: once a data frame's header has been
 * consumed, every call hands out whatever payload bytes are available, so a
 * 16 MiB message never has to be buffered here and invalid UTF-8 fails as
 * soon as it arrives. Headers and control frames are all-or-nothing: while
 * incomplete, nothing is consumed and the caller keeps the bytes (at most
 * RC_WS_MAX_CLIENT_HEADER + RC_WS_MAX_CONTROL of them). Each header rule is
 * checked as soon as the bytes it depends on are present, so a bad frame
 * fails without waiting for the rest of its header, and an oversized message
 * fails (1009) before any of its payload is read.
 */
#include <string.h>

#include "ringcast/ws.h"

#define WS_FIN 0x80u
#define WS_RSV1 0x40u
#define WS_RSV23 0x30u
#define WS_OPCODE 0x0Fu
#define WS_MASKED 0x80u
#define WS_LEN7 0x7Fu

void rc_ws_decoder_init(struct rc_ws_decoder *d, uint64_t max_message, bool allow_rsv1)
{
    memset(d, 0, sizeof *d);
    d->max_message = max_message;
    d->allow_rsv1 = allow_rsv1;
    d->utf8_state = RC_UTF8_ACCEPT;
}

static ssize_t fail(struct rc_ws_event *ev, uint16_t code)
{
    ev->type = RC_WS_EV_NONE;
    ev->close_code = code;
    return -1;
}

/* XORs p[0..n) with the mask starting at mask position `off`; returns the
 * mask position for the byte after the last one. Works eight bytes at a
 * time: eight is a multiple of the mask length, so one rotated 64-bit
 * pattern serves every word. */
static uint8_t unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint8_t off)
{
    uint8_t pattern[8];
    uint64_t word_mask;
    size_t i = 0;

    for (size_t k = 0; k < 8; k++)
        pattern[k] = mask[(off + k) & 3];
    memcpy(&word_mask, pattern, sizeof word_mask);
    for (; n - i >= 8; i += 8) {
        uint64_t word;
        memcpy(&word, p + i, sizeof word);
        word ^= word_mask;
        memcpy(p + i, &word, sizeof word);
    }
    for (; i < n; i++)
        p[i] ^= pattern[i & 7];
    return (uint8_t)((off + n) & 3);
}

static void reset_message(struct rc_ws_decoder *d)
{
    d->msg_opcode = 0;
    d->msg_compressed = false;
    d->msg_len = 0;
    d->utf8_state = RC_UTF8_ACCEPT;
}

/* Hands out the payload bytes of the current data frame found at in[off..len).
 * off > 0 right after the frame's header was consumed: then a DATA event is
 * reported even with no payload byte available, because the header bytes are
 * gone and the caller must see progress. */
static ssize_t deliver_payload(struct rc_ws_decoder *d, uint8_t *in, size_t off, size_t len,
                               struct rc_ws_event *ev)
{
    size_t avail = len - off;
    size_t n = d->remaining < avail ? (size_t)d->remaining : avail;
    uint8_t *p = in + off;
    bool validate = d->msg_opcode == RC_WS_OP_TEXT && !d->msg_compressed;

    if (n == 0 && off == 0 && d->remaining > 0)
        return 0; /* NONE: nothing new */

    d->mask_off = unmask(p, n, d->mask, d->mask_off);
    d->remaining -= n;
    d->msg_len += n;
    if (validate) {
        d->utf8_state = rc_utf8_validate(d->utf8_state, p, n);
        if (d->utf8_state == RC_UTF8_REJECT)
            return fail(ev, RC_WS_CLOSE_INVALID_DATA);
    }

    ev->type = RC_WS_EV_DATA;
    ev->data = p;
    ev->len = n;
    ev->opcode = d->msg_opcode;
    ev->compressed = d->msg_compressed;
    if (d->remaining == 0) {
        d->in_frame = false;
        if (d->frame_fin) {
            /* The message may not end inside a character. */
            if (validate && d->utf8_state != RC_UTF8_ACCEPT)
                return fail(ev, RC_WS_CLOSE_INVALID_DATA);
            ev->fin = true;
            reset_message(d);
        }
    }
    return (ssize_t)(off + n);
}

/* Reports a complete, unmasked control frame payload[0..n). */
static ssize_t control_event(uint8_t opcode, uint8_t *payload, size_t n, size_t frame_len,
                             struct rc_ws_event *ev)
{
    ev->data = payload;
    ev->len = n;
    switch (opcode) {
    case RC_WS_OP_PING:
        ev->type = RC_WS_EV_PING;
        return (ssize_t)frame_len;
    case RC_WS_OP_PONG:
        ev->type = RC_WS_EV_PONG;
        return (ssize_t)frame_len;
    default: /* RC_WS_OP_CLOSE */
        break;
    }
    if (n == 0) {
        ev->type = RC_WS_EV_CLOSE;
        ev->close_code = RC_WS_CLOSE_NO_STATUS;
        return (ssize_t)frame_len;
    }
    /* A close body is a 2-byte code and an optional UTF-8 reason (§5.5.1). */
    if (n == 1)
        return fail(ev, RC_WS_CLOSE_PROTOCOL);
    uint16_t code = (uint16_t)((payload[0] << 8) | payload[1]);
    if (!rc_ws_close_code_valid(code))
        return fail(ev, RC_WS_CLOSE_PROTOCOL);
    if (rc_utf8_validate(RC_UTF8_ACCEPT, payload + 2, n - 2) != RC_UTF8_ACCEPT)
        return fail(ev, RC_WS_CLOSE_INVALID_DATA);
    ev->type = RC_WS_EV_CLOSE;
    ev->close_code = code;
    ev->data = payload + 2;
    ev->len = n - 2;
    return (ssize_t)frame_len;
}

ssize_t rc_ws_decode(struct rc_ws_decoder *d, uint8_t *in, size_t len, struct rc_ws_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (d->in_frame)
        return deliver_payload(d, in, 0, len, ev);
    if (len < 1)
        return 0;

    /* First byte: FIN, RSV, opcode — checkable against the message state. */
    uint8_t b0 = in[0];
    bool fin = b0 & WS_FIN;
    bool rsv1 = b0 & WS_RSV1;
    uint8_t opcode = b0 & WS_OPCODE;
    bool control = opcode & 0x8;

    if (b0 & WS_RSV23)
        return fail(ev, RC_WS_CLOSE_PROTOCOL);
    switch (opcode) {
    case RC_WS_OP_CONT:
        if (d->msg_opcode == 0)
            return fail(ev, RC_WS_CLOSE_PROTOCOL);
        break;
    case RC_WS_OP_TEXT:
    case RC_WS_OP_BINARY:
        if (d->msg_opcode != 0)
            return fail(ev, RC_WS_CLOSE_PROTOCOL);
        break;
    case RC_WS_OP_CLOSE:
    case RC_WS_OP_PING:
    case RC_WS_OP_PONG:
        if (!fin)
            return fail(ev, RC_WS_CLOSE_PROTOCOL);
        break;
    default:
        return fail(ev, RC_WS_CLOSE_PROTOCOL);
    }
    /* permessage-deflate marks only the first frame of a data message
     * (RFC 7692 §6); everywhere else RSV1 is a protocol error. */
    if (rsv1 && !(d->allow_rsv1 && (opcode == RC_WS_OP_TEXT || opcode == RC_WS_OP_BINARY)))
        return fail(ev, RC_WS_CLOSE_PROTOCOL);

    /* Second byte: mask bit and length. */
    if (len < 2)
        return 0;
    uint8_t b1 = in[1];
    if (!(b1 & WS_MASKED))
        return fail(ev, RC_WS_CLOSE_PROTOCOL);
    size_t len_bytes = (b1 & WS_LEN7) == 126 ? 2 : (b1 & WS_LEN7) == 127 ? 8 : 0;
    size_t hdr = 2 + len_bytes + 4;
    if (len < 2 + len_bytes)
        return 0;
    uint64_t plen = b1 & WS_LEN7;
    if (len_bytes) {
        plen = 0;
        for (size_t i = 0; i < len_bytes; i++)
            plen = (plen << 8) | in[2 + i];
    }
    if (len_bytes == 8 && (plen >> 63))
        return fail(ev, RC_WS_CLOSE_PROTOCOL);
    if (control && plen > RC_WS_MAX_CONTROL)
        return fail(ev, RC_WS_CLOSE_PROTOCOL);
    if (!control && d->max_message) {
        uint64_t so_far = opcode == RC_WS_OP_CONT ? d->msg_len : 0;
        /* so_far ≤ max_message always holds, so this cannot wrap. */
        if (plen > d->max_message - so_far)
            return fail(ev, RC_WS_CLOSE_TOO_BIG);
    }

    if (len < hdr)
        return 0;
    const uint8_t *mask = in + 2 + len_bytes;

    if (control) {
        if (len - hdr < plen)
            return 0;
        unmask(in + hdr, (size_t)plen, mask, 0);
        return control_event(opcode, in + hdr, (size_t)plen, hdr + (size_t)plen, ev);
    }

    if (opcode != RC_WS_OP_CONT) {
        reset_message(d);
        d->msg_opcode = opcode;
        d->msg_compressed = rsv1;
    }
    memcpy(d->mask, mask, sizeof d->mask);
    d->mask_off = 0;
    d->remaining = plen;
    d->frame_fin = fin;
    d->in_frame = true;
    return deliver_payload(d, in, hdr, len, ev);
}

size_t rc_ws_header_len(uint64_t payload_len)
{
    if (payload_len <= 125)
        return 2;
    if (payload_len <= 0xFFFF)
        return 4;
    return 10;
}

size_t rc_ws_write_header(uint8_t out[RC_WS_MAX_HEADER], uint8_t opcode, bool fin, bool rsv1,
                          uint64_t payload_len)
{
    size_t n = rc_ws_header_len(payload_len);

    out[0] = (uint8_t)((fin ? WS_FIN : 0) | (rsv1 ? WS_RSV1 : 0) | (opcode & WS_OPCODE));
    if (n == 2) {
        out[1] = (uint8_t)payload_len;
    } else if (n == 4) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
    } else {
        out[1] = 127;
        for (size_t i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    }
    return n;
}

bool rc_ws_close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}
