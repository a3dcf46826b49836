/*
 * fuzz_pmd.c — libFuzzer driver for permessage-deflate: negotiation
 * (src/ws/pmd.c) and the deflater / inflater (src/ws/deflate.c).
 *
 * Input layout: byte 0 picks the mode (bits 0-1) and byte 1 the knobs; the
 * rest is the data.
 *   mode 0  the data, split at '\n', is the value of 1-3
 *           Sec-WebSocket-Extensions headers (among other headers);
 *   mode 1  the data is header lines of a request head, run through
 *           rc_http_parse_request() first ("GET / HTTP/1.1\r\n" + data +
 *           "\r\n\r\n");
 *   mode 2  the data is a client's compressed payload, inflated with a cap
 *           of 0..4095 bytes (byte 1 × 16 + low bits of byte 0);
 *   mode 3  the data is a message, deflated at level 1 + byte1 % 12 with a
 *           window of 2^(8 + byte1 / 16 % 8), in a buffer of the bound or of
 *           a smaller size.
 *
 * Invariants checked:
 *   negotiation — the result is 0 or 1; an answer is NUL-terminated within
 *     the buffer, is one of the two shapes of pmd.h with the window it
 *     reports (8..15), and needs exactly strlen + 1 bytes (one byte less
 *     gives 0); the same request gives the same answer.
 *   inflate — the result is ≤ cap and one of length / -E2BIG / -EINVAL;
 *     plain zlib (payload + 00 00 FF FF, 32 KiB window) agrees: the same
 *     bytes when we accept, more than cap bytes when we say -E2BIG; what we
 *     accept, deflated again, inflates back to itself.
 *   deflate — the output is ≤ rc_deflate_bound(len) and ≤ the buffer;
 *     -ENOSPC only when the buffer is smaller than the bound; our inflater
 *     and zlib with a window of exactly 2^window_bits (one output byte per
 *     call, so no reference can reach further back) both give the message.
 *
 * Build / run: tests/fuzz/run.sh 60 pmd  (links src/ and the libraries
 * listed in build.zig: libisal, libdeflate, zlib).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "ringcast/http.h"
#include "ringcast/pmd.h"

#define REQUIRE(cond)                                                                   \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_pmd.c:%d: invariant failed: %s\n", __LINE__, #cond); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

#define BASE "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
#define MAX_MESSAGE 65536

static struct rc_deflater *deflaters[13]; /* by level 1..12 */
static struct rc_inflater *inflater;
static uint8_t scratch_a[MAX_MESSAGE + 64], scratch_b[MAX_MESSAGE + 64];
static uint8_t scratch_c[MAX_MESSAGE * 2 + 64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (int l = 1; l <= 12; l++) {
        deflaters[l] = rc_deflater_create(l);
        REQUIRE(deflaters[l] != NULL);
    }
    inflater = rc_inflater_create();
    REQUIRE(inflater != NULL);
    return 0;
}

/* ---- negotiation ------------------------------------------------------------ */

static void check_negotiation(const struct rc_http_request *req)
{
    char resp[160];
    struct rc_pmd_params p = {0};
    memset(resp, 'x', sizeof resp);

    int r = rc_pmd_negotiate(req, &p, resp, sizeof resp);
    REQUIRE(r == 0 || r == 1);
    if (r == 0)
        return;

    size_t n = strnlen(resp, sizeof resp);
    REQUIRE(n < sizeof resp);
    REQUIRE(p.server_max_window_bits >= 8 && p.server_max_window_bits <= 15);
    if (n == strlen(BASE)) {
        REQUIRE(strcmp(resp, BASE) == 0);
        REQUIRE(p.server_max_window_bits == 15);
    } else {
        char want[160];
        snprintf(want, sizeof want, BASE "; server_max_window_bits=%u", p.server_max_window_bits);
        REQUIRE(strcmp(resp, want) == 0);
    }

    char again[160];
    struct rc_pmd_params q = {0};
    REQUIRE(rc_pmd_negotiate(req, &q, again, n + 1) == 1);
    REQUIRE(strcmp(again, resp) == 0 && q.server_max_window_bits == p.server_max_window_bits);
    REQUIRE(rc_pmd_negotiate(req, &q, again, n) == 0);
}

static void fuzz_headers(const uint8_t *data, size_t size)
{
    static struct rc_http_request req;
    memset(&req, 0, sizeof req);

    /* Exact-size heap copies: reading past a value is an ASan report. */
    char *values[3] = {NULL, NULL, NULL};
    size_t start = 0;
    int n = 0;
    for (size_t i = 0; i <= size && n < 3; i++) {
        if (i == size || (data[i] == '\n' && n < 2)) {
            size_t len = i - start;
            values[n] = malloc(len ? len : 1);
            REQUIRE(values[n] != NULL);
            memcpy(values[n], data + start, len);
            req.headers[req.num_headers++] = (struct rc_http_header){"Host", 4, "example.com", 11};
            req.headers[req.num_headers++] =
                (struct rc_http_header){n == 1 ? "sec-websocket-extensions" : "Sec-WebSocket-Extensions", 24,
                                        values[n], len};
            n++;
            start = i + 1;
        }
    }
    check_negotiation(&req);
    for (int i = 0; i < 3; i++)
        free(values[i]);
}

static void fuzz_request_head(const uint8_t *data, size_t size)
{
    static const char prefix[] = "GET / HTTP/1.1\r\n", suffix[] = "\r\n\r\n";
    static struct rc_http_request req;
    size_t len = sizeof prefix - 1 + size + sizeof suffix - 1;
    char *head = malloc(len);
    REQUIRE(head != NULL);
    memcpy(head, prefix, sizeof prefix - 1);
    memcpy(head + sizeof prefix - 1, data, size);
    memcpy(head + sizeof prefix - 1 + size, suffix, sizeof suffix - 1);

    struct rc_http_limits lim = RC_HTTP_LIMITS_DEFAULT;
    if (rc_http_parse_request(head, len, &lim, &req) > 0)
        check_negotiation(&req);
    free(head);
}

/* ---- inflate / deflate ---------------------------------------------------------- */

/*
 * Plain zlib: payload + 00 00 FF FF into out[0..cap), 2^window_bits window.
 * strict: one output byte per call, so a reference further back than the
 * window is an error even though the whole message is in out. Returns the
 * bytes produced before stopping (at the end, an error, or a full buffer);
 * *ok is false on an error.
 */
static size_t zlib_inflate(const uint8_t *payload, size_t plen, int window_bits, bool strict, uint8_t *out,
                           size_t cap, bool *ok)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    z_stream zs = {0};
    int rc = Z_OK;
    REQUIRE(inflateInit2(&zs, -window_bits) == Z_OK);
    zs.next_out = out;
    zs.next_in = (Bytef *)(uintptr_t)payload;
    zs.avail_in = (uInt)plen;
    for (int part = 0; part < 2 && rc != Z_STREAM_END; part++) {
        if (part == 1) {
            zs.next_in = (Bytef *)(uintptr_t)tail;
            zs.avail_in = sizeof tail;
        }
        for (;;) {
            size_t room = cap - (size_t)(zs.next_out - out);
            if (room == 0)
                break;
            zs.avail_out = (uInt)(strict ? 1 : room);
            uInt before = zs.avail_out;
            rc = inflate(&zs, Z_SYNC_FLUSH);
            if (rc != Z_OK || zs.avail_out == before)
                break;
        }
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
            break;
    }
    *ok = rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR;
    size_t n = (size_t)(zs.next_out - out);
    inflateEnd(&zs);
    return n;
}

static void check_deflate(const uint8_t *msg, size_t len, int level, unsigned window_bits, size_t cap)
{
    size_t bound = rc_deflate_bound(len);
    REQUIRE(bound <= sizeof scratch_c);
    if (cap > bound)
        cap = bound;
    ssize_t n = rc_deflate_message(deflaters[level], msg, len, scratch_c, cap, window_bits);
    if (n == -ENOSPC) {
        REQUIRE(cap < bound);
        return;
    }
    REQUIRE(n > 0 && (size_t)n <= cap);

    ssize_t m = rc_inflate_message(inflater, scratch_c, (size_t)n, scratch_b, len);
    REQUIRE(m == (ssize_t)len && memcmp(scratch_b, msg, len) == 0);

    bool ok;
    size_t z = zlib_inflate(scratch_c, (size_t)n, (int)window_bits, window_bits < 15, scratch_b, len + 1, &ok);
    REQUIRE(ok && z == len && memcmp(scratch_b, msg, len) == 0);
}

static void fuzz_inflate(const uint8_t *data, size_t size, size_t cap, int level, unsigned window_bits)
{
    uint8_t *payload = malloc(size ? size : 1); /* exact size: overreads are reported */
    REQUIRE(payload != NULL);
    memcpy(payload, data, size);

    ssize_t r = rc_inflate_message(inflater, payload, size, scratch_a, cap);
    REQUIRE(r == -E2BIG || r == -EINVAL || (r >= 0 && (size_t)r <= cap));

    bool ok;
    if (r >= 0) {
        if (size > 0) { /* zlib has no opinion on an empty payload */
            size_t z = zlib_inflate(payload, size, 15, false, scratch_b, cap + 1, &ok);
            REQUIRE(ok && z == (size_t)r && memcmp(scratch_b, scratch_a, (size_t)r) == 0);
        }
        check_deflate(scratch_a, (size_t)r, level, window_bits, SIZE_MAX);
    } else if (r == -E2BIG) {
        size_t z = zlib_inflate(payload, size, 15, false, scratch_b, cap + 1, &ok);
        REQUIRE(z == cap + 1);
    }
    free(payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned mode = data[0] & 3, knob = data[1];
    const uint8_t *rest = data + 2;
    size_t len = size - 2;
    if (len > MAX_MESSAGE)
        return 0;

    switch (mode) {
    case 0:
        fuzz_headers(rest, len);
        break;
    case 1:
        fuzz_request_head(rest, len);
        break;
    case 2:
        fuzz_inflate(rest, len, (size_t)knob * 16 + (data[0] >> 4), 1 + (data[0] >> 2 & 3) * 3,
                     8 + (data[0] >> 4) % 8);
        break;
    case 3: {
        /* byte 0 bits 2-7 choose the buffer: the bound, or a smaller one. */
        size_t cap = (data[0] >> 2) == 0 ? SIZE_MAX : (size_t)(data[0] >> 2) * len / 64;
        check_deflate(rest, len, 1 + knob % 12, 8 + (knob / 16) % 8, cap);
        break;
    }
    }
    return 0;
}
