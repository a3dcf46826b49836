/*
 * ringcast/pmd.h — permessage-deflate (RFC 7692): negotiation, one-shot
 * compression of a message, and bounded inflation of a client's message.
 *
 * ringcast compresses each broadcast frame once and sends the same bytes to
 * every subscriber that negotiated compression, so it always answers with
 * server_no_context_takeover (every compressed message is a self-contained
 * raw DEFLATE stream, valid for any subscriber) and adds
 * client_no_context_takeover (no per-connection inflate state: a client's
 * compressed message is inflated on its own, by a per-shard inflater).
 *
 * No I/O. A deflater / inflater belongs to one shard (one thread); the
 * negotiation function is pure.
 */
#ifndef RINGCAST_PMD_H
#define RINGCAST_PMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringcast/http.h"

struct rc_pmd_params {
    /* log2 of the window our compressed output must fit in: 15 unless the
     * client offered server_max_window_bits (8..15). */
    uint8_t server_max_window_bits;
};

/*
 * Walks every Sec-WebSocket-Extensions header of req (RFC 7692 §5 and
 * RFC 6455 §9.1 grammar: comma-separated extensions, each a token followed
 * by ;-separated params, each token or token=value, value a token or a
 * quoted-string) and accepts the first acceptable permessage-deflate offer.
 *
 * An offer is declined (the next one is tried) when it has an unknown
 * parameter, a parameter twice, server_no_context_takeover or
 * client_no_context_takeover with a value, server_max_window_bits without
 * a value or outside 8..15 (no leading zeros, no sign), or
 * client_max_window_bits with a value outside 8..15. Other extensions are
 * skipped. A malformed header declines everything in it (never fails the
 * handshake).
 *
 * Returns 1, fills *out and writes the response header value into
 * resp[0..cap) (NUL-terminated), e.g.
 *   "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
 *   "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
 * (server_max_window_bits echoed with the offered value when offered;
 * client_max_window_bits never sent). Returns 0 when no offer is
 * acceptable (or none was made): the connection runs without compression.
 */
int rc_pmd_negotiate(const struct rc_http_request *req, struct rc_pmd_params *out, char *resp, size_t cap);

struct rc_deflater;

/* A compressor at the given level (library-specific meaning, see deflate.c).
 * NULL when memory runs out. */
struct rc_deflater *rc_deflater_create(int level);
void rc_deflater_destroy(struct rc_deflater *d); /* accepts NULL */

/* Upper bound of rc_deflate_message's output for len input bytes. */
size_t rc_deflate_bound(size_t len);

/*
 * Compresses in[0..len) as one permessage-deflate message payload: a raw
 * DEFLATE stream with no reference further back than 2^window_bits bytes
 * (8..15) and no reference to anything before the message, with the
 * trailing 00 00 FF FF of its final empty stored block removed (RFC 7692
 * §7.2.1), so that a receiver that appends 00 00 FF FF and inflates gets
 * exactly in back. out must hold rc_deflate_bound(len) bytes.
 * Returns the payload length, or -ENOSPC / -EINVAL.
 */
ssize_t rc_deflate_message(struct rc_deflater *d, const void *in, size_t len, void *out, size_t cap,
                           unsigned window_bits);

struct rc_inflater;

struct rc_inflater *rc_inflater_create(void);
void rc_inflater_destroy(struct rc_inflater *z); /* accepts NULL */

/*
 * Inflates one permessage-deflate message payload in[0..len) (appending the
 * 00 00 FF FF tail itself; no state from earlier messages) into
 * out[0..cap). Returns the inflated length; -E2BIG as soon as the output
 * would exceed cap (a decompression bomb costs at most cap bytes of work
 * space and stops early); -EINVAL for data that is not valid DEFLATE or
 * that does not end at the message's end.
 */
ssize_t rc_inflate_message(struct rc_inflater *z, const void *in, size_t len, void *out, size_t cap);

#endif
