/*
 * ringcast/http.h — HTTP/1.1 request-head parser and small response builder.
 *
 * Place in the data flow: the first bytes of every accepted connection go
 * through rc_http_parse_request() until a complete head is seen; the router
 * in src/net then answers it (REST endpoints, errors) or upgrades it to a
 * WebSocket (src/ws/handshake.c).
 *
 * Owns nothing: the parser keeps no state, copies nothing, and every slice
 * in struct rc_http_request points into the caller's buffer, so the request
 * is valid only while that buffer is. Any thread may call these functions.
 */
#ifndef RINGCAST_HTTP_H
#define RINGCAST_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RC_HTTP_MAX_HEADERS 100 /* hard upper bound of rc_http_limits.max_headers */

struct rc_http_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing whitespace trimmed */
    size_t value_len;
};

struct rc_http_request {
    const char *method;
    size_t method_len;
    const char *target; /* the request-target as sent (path and query) */
    size_t target_len;
    const char *path; /* target up to '?' */
    size_t path_len;
    const char *query; /* after '?', not including it; NULL/0 when absent */
    size_t query_len;
    int minor_version; /* HTTP/1.<minor_version> */
    struct rc_http_header headers[RC_HTTP_MAX_HEADERS];
    size_t num_headers;

    /* Derived from the headers by the parser. */
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* HTTP/1.1 default true; Connection: close → false; 1.0 needs keep-alive */
};

struct rc_http_limits {
    size_t max_head_bytes; /* whole head including the final CRLFCRLF (default 8192) */
    size_t max_headers;    /* ≤ RC_HTTP_MAX_HEADERS (default 64) */
    size_t max_line_bytes; /* one request line or header line (default 4096) */
};

#define RC_HTTP_LIMITS_DEFAULT {8192, 64, 4096}

/*
 * Parses one request head from buf[0..len).
 *
 * Returns the number of bytes of the head (through the blank line) on
 * success; -EAGAIN when the head is incomplete and still within limits;
 * otherwise the negated HTTP status the server must answer with:
 *   -400 malformed syntax, bad Content-Length, Content-Length together with
 *        Transfer-Encoding, bare LF / CR misuse, control bytes, obs-fold;
 *   -414 request line longer than max_line_bytes;
 *   -431 a header line longer than max_line_bytes, more than max_headers
 *        headers, or a head longer than max_head_bytes;
 *   -501 a Transfer-Encoding other than chunked;
 *   -505 a version other than HTTP/1.0 or HTTP/1.1.
 * The limits are enforced on incomplete input too, so a peer can never make
 * the caller buffer more than max_head_bytes.
 */
ssize_t rc_http_parse_request(const char *buf, size_t len, const struct rc_http_limits *lim,
                              struct rc_http_request *req);

/* Returns the first header named `name` (ASCII case-insensitive) or NULL. */
const struct rc_http_header *rc_http_find_header(const struct rc_http_request *req, const char *name);

/* True when any header named `name` holds `token` in its comma-separated
 * list (case-insensitive, whitespace around elements ignored). */
bool rc_http_header_has_token(const struct rc_http_request *req, const char *name, const char *token);

/* True when [s, s+n) equals the NUL-terminated `lit` exactly (case-sensitive). */
bool rc_http_slice_eq(const char *s, size_t n, const char *lit);

/* Reason phrase for a status code ("OK", "Not Found", ...); "Unknown" otherwise. */
const char *rc_http_status_text(int status);

/*
 * Writes a complete HTTP/1.1 response into out[0..cap):
 *   status line, Content-Type (when content_type != NULL), Content-Length,
 *   "Connection: close" when !keep_alive, the caller's extra_headers
 *   (each line ending in "\r\n", may be NULL), blank line, body.
 * 1xx, 204 and 304 responses carry no Content-Length and no body.
 * Returns the bytes written, -ENOSPC when cap is too small, or -EINVAL for
 * a status outside 100–999 or a body on a status that cannot have one.
 */
ssize_t rc_http_format_response(char *out, size_t cap, int status, const char *content_type,
                                const char *extra_headers, const void *body, size_t body_len,
                                bool keep_alive);

/*
 * Writes a small JSON error response: {"error":"<message>","status":<status>}.
 * `message` must not need JSON escaping beyond what the function does
 * (quotes and backslashes are escaped, control bytes dropped).
 * Returns bytes written or -ENOSPC.
 */
ssize_t rc_http_format_error(char *out, size_t cap, int status, const char *message,
                             const char *extra_headers, bool keep_alive);

#endif
