/*
 * tests/fuzz/fuzz_http.c — libFuzzer driver for the request-head parser
 * (src/http/parser.c), with the error-response builder on the side.
 *
 * Parses every input with the default limits and with tiny ones, then
 * checks what the contract promises and abort()s on any violation:
 *   - a positive return is at most the input size and max_head_bytes;
 *   - every slice (method, target, path, query, header names and values)
 *     lies inside the head; num_headers <= max_headers;
 *   - the head is self-delimiting: its own bytes parse to the same length,
 *     and one byte fewer is -EAGAIN;
 *   - -EAGAIN only while the input is shorter than max_head_bytes;
 *   - any other negative return is one of the documented statuses.
 * ASan/UBSan catch reads past the input (libFuzzer hands us an
 * exactly-sized heap copy).
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
 *          src/http/parser.c src/http/response.c tests/fuzz/fuzz_http.c -o fuzz_http
 * Run:   ./fuzz_http -dict=tests/fuzz/http.dict WORKDIR tests/fuzz/corpus/http
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                            \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_http: invariant violated: %s (line %d)\n", #cond, \
                    __LINE__);                                                   \
            abort();                                                             \
        }                                                                        \
    } while (0)

static bool inside(const char *base, size_t len, const char *p, size_t n)
{
    if (n == 0)
        return p == NULL || (p >= base && p <= base + len);
    return p != NULL && p >= base && n <= len && (size_t)(p - base) <= len - n;
}

static bool is_documented_error(ssize_t r)
{
    return r == -EAGAIN || r == -400 || r == -414 || r == -431 || r == -501 || r == -505;
}

static void check_request(const char *buf, size_t head, const struct rc_http_limits *lim,
                          const struct rc_http_request *req)
{
    size_t max_headers = lim->max_headers < RC_HTTP_MAX_HEADERS ? lim->max_headers : RC_HTTP_MAX_HEADERS;

    REQUIRE(req->method_len > 0 && inside(buf, head, req->method, req->method_len));
    REQUIRE(req->target_len > 0 && inside(buf, head, req->target, req->target_len));
    REQUIRE(req->path == req->target && req->path_len <= req->target_len);
    if (req->query != NULL) {
        REQUIRE(req->query == req->target + req->path_len + 1);
        REQUIRE(req->path_len + 1 + req->query_len == req->target_len);
    } else {
        REQUIRE(req->query_len == 0 && req->path_len == req->target_len);
    }
    REQUIRE(req->minor_version == 0 || req->minor_version == 1);
    REQUIRE(req->num_headers <= max_headers);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct rc_http_header *h = &req->headers[i];
        REQUIRE(h->name_len > 0 && inside(buf, head, h->name, h->name_len));
        REQUIRE(inside(buf, head, h->value, h->value_len));
        REQUIRE(h->value != NULL && h->value >= h->name + h->name_len);
    }
    REQUIRE(rc_http_find_header(req, "") == NULL);
    const struct rc_http_header *host = rc_http_find_header(req, "host");
    REQUIRE(host == NULL || host->name_len == 4);
    REQUIRE(req->content_length >= -1);
    REQUIRE(!req->chunked || req->content_length == -1);
    if (rc_http_header_has_token(req, "connection", "close"))
        REQUIRE(!req->keep_alive);
    (void)rc_http_header_has_token(req, "connection", "upgrade");
}

static void run(const char *buf, size_t size, const struct rc_http_limits *lim)
{
    static struct rc_http_request req;
    ssize_t r = rc_http_parse_request(buf, size, lim, &req);

    if (r <= 0) {
        REQUIRE(r != 0 && is_documented_error(r));
        if (r == -EAGAIN)
            REQUIRE(size < lim->max_head_bytes);
        return;
    }
    size_t head = (size_t)r;
    REQUIRE(head <= size && head <= lim->max_head_bytes);
    REQUIRE(head >= 4 && memcmp(buf + head - 4, "\r\n\r\n", 4) == 0);
    check_request(buf, head, lim, &req);

    /* The head delimits itself: nothing after it mattered, and one byte
     * short it is merely incomplete. */
    REQUIRE(rc_http_parse_request(buf, head, lim, &req) == r);
    REQUIRE(rc_http_parse_request(buf, head - 1, lim, &req) == -EAGAIN);
}

/* Error responses carrying a message taken from the input. */
static void run_error_response(const uint8_t *data, size_t size)
{
    static char out[1024];
    char msg[256];
    size_t n = size < sizeof msg - 1 ? size : sizeof msg - 1;
    memcpy(msg, data, n);
    msg[n] = '\0';
    size_t cap = size > 0 ? data[0] * 4u : sizeof out;
    static const int statuses[] = {400, 414, 431, 501, 505};
    int status = statuses[size % 5];
    ssize_t w = rc_http_format_error(out, cap, status, msg, NULL, size & 1);
    REQUIRE(w == -ENOSPC || (w > 0 && (size_t)w <= cap));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct rc_http_limits defaults = RC_HTTP_LIMITS_DEFAULT;
    static const struct rc_http_limits tiny = {64, 4, 32};
    const char *buf = (const char *)data;

    run(buf, size, &defaults);
    run(buf, size, &tiny);
    run_error_response(data, size);
    return 0;
}
