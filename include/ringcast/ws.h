/*
 * ringcast/ws.h — RFC 6455 frame codec, UTF-8 validation and the opening
 * handshake. No I/O and no allocation anywhere in this module.
 *
 * Place in the data flow: bytes received on an upgraded connection go
 * through rc_ws_decode(), which unmasks payload in place and reports events
 * (data chunks, control frames) to the connection layer in src/net. Frames
 * the server sends are built with rc_ws_write_header() in front of a payload
 * (server frames are never masked, so one buffer serves every subscriber).
 *
 * A decoder belongs to one connection; any thread may use it, but one at a
 * time.
 */
#ifndef RINGCAST_WS_H
#define RINGCAST_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringcast/http.h"

enum rc_ws_opcode {
    RC_WS_OP_CONT = 0x0,
    RC_WS_OP_TEXT = 0x1,
    RC_WS_OP_BINARY = 0x2,
    RC_WS_OP_CLOSE = 0x8,
    RC_WS_OP_PING = 0x9,
    RC_WS_OP_PONG = 0xA,
};

/* Close codes the server sends. */
enum {
    RC_WS_CLOSE_NORMAL = 1000,
    RC_WS_CLOSE_GOING_AWAY = 1001,
    RC_WS_CLOSE_PROTOCOL = 1002,
    RC_WS_CLOSE_UNSUPPORTED = 1003,
    RC_WS_CLOSE_NO_STATUS = 1005, /* never sent: reported when a close frame has no code */
    RC_WS_CLOSE_INVALID_DATA = 1007,
    RC_WS_CLOSE_POLICY = 1008,
    RC_WS_CLOSE_TOO_BIG = 1009,
    RC_WS_CLOSE_INTERNAL = 1011,
};

#define RC_WS_MAX_HEADER 10     /* server→client header: 2 + 8 bytes of length */
#define RC_WS_MAX_CONTROL 125   /* payload limit of control frames */
#define RC_WS_MAX_CLIENT_HEADER 14

enum rc_ws_event_type {
    RC_WS_EV_NONE = 0, /* more input needed (see rc_ws_decode) */
    RC_WS_EV_DATA,     /* a chunk of the current data message's payload */
    RC_WS_EV_PING,
    RC_WS_EV_PONG,
    RC_WS_EV_CLOSE,
};

struct rc_ws_event {
    enum rc_ws_event_type type;
    uint8_t *data; /* DATA: unmasked chunk; PING/PONG: payload; CLOSE: reason (UTF-8, after the code) */
    size_t len;
    uint8_t opcode;      /* DATA: RC_WS_OP_TEXT or RC_WS_OP_BINARY of the message */
    bool fin;            /* DATA: this chunk ends the message (possibly len == 0) */
    bool compressed;     /* DATA: the message's first frame had RSV1 (permessage-deflate) */
    uint16_t close_code; /* CLOSE: code received (1005 when absent); on error: code to send */
};

struct rc_ws_decoder {
    uint64_t max_message; /* payload bytes of one message, as received; larger → 1009 */
    uint64_t msg_len;     /* payload bytes of the current message so far */
    uint64_t remaining;   /* payload bytes still to come in the current data frame */
    uint32_t utf8_state;  /* validator state across chunks and fragments of a text message */
    uint8_t mask[4];
    uint8_t mask_off; /* position in mask for the next payload byte */
    uint8_t msg_opcode;    /* 0 = no data message in progress, else TEXT/BINARY */
    bool msg_compressed;   /* current message has RSV1 */
    bool frame_fin;        /* current data frame has FIN */
    bool in_frame;         /* a data frame header was consumed and its payload is pending */
    bool allow_rsv1;       /* permessage-deflate negotiated */
};

/* Prepares a decoder. max_message 0 means no limit. */
void rc_ws_decoder_init(struct rc_ws_decoder *d, uint64_t max_message, bool allow_rsv1);

/*
 * Decodes client frames from in[0..len), unmasking payload in place.
 *
 * Returns bytes consumed (≥ 0) and fills *ev with at most one event:
 *  - DATA: ev->data/len is a chunk of the message payload (may be shorter
 *    than the frame when input is short; len 0 for empty frames); ev->fin
 *    says the message ends with this chunk. Text messages that are not
 *    compressed are UTF-8 validated as they pass (an invalid sequence
 *    fails at once, an incomplete sequence at the end of the message fails
 *    at fin).
 *  - PING/PONG/CLOSE: only once the whole control frame is in `in`.
 *  - NONE: the rest of `in` (from the returned offset) is an incomplete
 *    frame header or control frame: keep those bytes, append more input
 *    and call again. Consumes 0 bytes in that case.
 * Returns -1 on a protocol violation with ev->close_code set to the code the
 * server must close with: 1002 (masking, RSV bits, opcodes, fragmentation,
 * control frame rules, bad close payload), 1007 (invalid UTF-8 in a text
 * message or a close reason), 1009 (message over max_message). The decoder
 * is then unusable.
 */
ssize_t rc_ws_decode(struct rc_ws_decoder *d, uint8_t *in, size_t len, struct rc_ws_event *ev);

/*
 * Writes an unmasked server frame header for a payload of payload_len
 * bytes into out. Returns the header length: 2, 4 or 10.
 */
size_t rc_ws_write_header(uint8_t out[RC_WS_MAX_HEADER], uint8_t opcode, bool fin, bool rsv1,
                          uint64_t payload_len);

/* Header length rc_ws_write_header() would produce for payload_len. */
size_t rc_ws_header_len(uint64_t payload_len);

/* True for a close code a peer may send on the wire (RFC 6455 §7.4 and the
 * IANA registry): 1000–1003, 1007–1014, 3000–4999. */
bool rc_ws_close_code_valid(uint16_t code);

/* ---- UTF-8 ---- */

#define RC_UTF8_ACCEPT 0u
#define RC_UTF8_REJECT 12u

/*
 * Advances a UTF-8 validator over p[0..n) from `state` (start with
 * RC_UTF8_ACCEPT). Returns RC_UTF8_REJECT as soon as the input cannot be
 * valid UTF-8 (overlongs, surrogates, > U+10FFFF), RC_UTF8_ACCEPT when the
 * input ends on a character boundary, another value when it ends inside a
 * character.
 */
uint32_t rc_utf8_validate(uint32_t state, const uint8_t *p, size_t n);

/* ---- Opening handshake (RFC 6455 §4.2) ---- */

struct rc_ws_handshake {
    const char *key; /* Sec-WebSocket-Key, points into the request */
    size_t key_len;
    /* Sec-WebSocket-Extensions: every header's value joined is not needed;
     * callers walk req->headers for the offers (permessage-deflate). */
};

/*
 * Checks an upgrade request. Returns 0 and fills *hs when it is a valid
 * RFC 6455 opening handshake; otherwise the negated HTTP status to answer:
 *   -405 method other than GET;
 *   -400 HTTP/1.0, missing Host, missing/invalid Sec-WebSocket-Key (must be
 *        base64 of 16 bytes), "Connection" without the "upgrade" token, or a
 *        request body;
 *   -426 no "Upgrade: websocket", or Sec-WebSocket-Version missing or not 13
 *        (the response must carry "Sec-WebSocket-Version: 13").
 */
int rc_ws_handshake_check(const struct rc_http_request *req, struct rc_ws_handshake *hs);

/* Computes Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)).
 * Writes 28 characters and a NUL into out. */
void rc_ws_accept_key(const char *key, size_t key_len, char out[29]);

/* SHA-1 of data (20 bytes out). Used by the handshake; exposed for tests. */
void rc_sha1(const void *data, size_t len, uint8_t out[20]);

/* Standard base64 with padding. Returns the output length (no NUL written). */
size_t rc_base64_encode(const uint8_t *in, size_t len, char *out);

/* Decodes standard base64 with padding. Returns the decoded length, or -1
 * on invalid input or when the result would exceed cap. */
ssize_t rc_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

#endif
