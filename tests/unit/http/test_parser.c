/*
 * tests/unit/http/test_parser.c — unit tests for src/http/parser.c: valid
 * heads and their slices, every rejection status, incremental and pipelined
 * input, limits on complete and incomplete input, framing headers
 * (Content-Length, Transfer-Encoding) and keep-alive rules.
 *
 * Inputs that matter for bounds are copied into exactly-sized heap buffers
 * so that a read past len shows up under ASan.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rc_test.h"
#include "ringcast/http.h"

static const struct rc_http_limits defaults = RC_HTTP_LIMITS_DEFAULT;

#define CHECK_SLICE(ptr, len, lit)                                  \
    do {                                                            \
        size_t lit_len_ = strlen(lit);                              \
        CHECK_EQ((len), lit_len_);                                  \
        CHECK((ptr) != NULL);                                       \
        if ((ptr) != NULL && (len) == lit_len_)                     \
            CHECK_MEM((ptr), (lit), lit_len_);                      \
    } while (0)

/* Parses s[0..n) from an exactly-sized heap copy and frees it; for tests
 * that only look at the return value. */
static ssize_t parse_n_lim(const char *s, size_t n, const struct rc_http_limits *lim)
{
    static struct rc_http_request req;
    char *copy = malloc(n ? n : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, s, n);
    ssize_t r = rc_http_parse_request(copy, n, lim, &req);
    free(copy);
    return r;
}

static ssize_t parse_rc(const char *s)
{
    return parse_n_lim(s, strlen(s), &defaults);
}

static ssize_t parse_lim(const char *s, const struct rc_http_limits *lim)
{
    return parse_n_lim(s, strlen(s), lim);
}

/* Builds "GET / HTTP/1.1\r\n" + n headers "X-<i>: v\r\n" + "\r\n". */
static size_t build_headers(char *out, size_t cap, size_t n, bool finish)
{
    size_t len = (size_t)snprintf(out, cap, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "X-%zu: v\r\n", i);
    if (finish)
        len += (size_t)snprintf(out + len, cap - len, "\r\n");
    return len;
}

static void test_valid_get_with_query(void)
{
    const char *s = "GET /chat/room?name=a%20b&x=1 HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "User-Agent:  curl/8.0 \t\r\n"
                    "Accept: */*\r\n"
                    "\r\n";
    struct rc_http_request req;
    ssize_t r = rc_http_parse_request(s, strlen(s), &defaults, &req);
    CHECK_EQ(r, strlen(s));
    CHECK_SLICE(req.method, req.method_len, "GET");
    CHECK_SLICE(req.target, req.target_len, "/chat/room?name=a%20b&x=1");
    CHECK_SLICE(req.path, req.path_len, "/chat/room");
    CHECK_SLICE(req.query, req.query_len, "name=a%20b&x=1");
    CHECK_EQ(req.minor_version, 1);
    CHECK_EQ(req.num_headers, 3);
    CHECK_SLICE(req.headers[0].name, req.headers[0].name_len, "Host");
    CHECK_SLICE(req.headers[0].value, req.headers[0].value_len, "example.com");
    CHECK_SLICE(req.headers[1].name, req.headers[1].name_len, "User-Agent");
    CHECK_SLICE(req.headers[1].value, req.headers[1].value_len, "curl/8.0");
    CHECK_SLICE(req.headers[2].value, req.headers[2].value_len, "*/*");
    CHECK_EQ(req.content_length, -1);
    CHECK(!req.chunked);
    CHECK(req.keep_alive);
    /* Slices point into the caller's buffer, nothing is copied. */
    CHECK(req.method == s);
    CHECK(req.headers[0].name == s + strlen("GET /chat/room?name=a%20b&x=1 HTTP/1.1\r\n"));
}

static void test_target_forms(void)
{
    struct rc_http_request req;
    const char *s = "GET /plain HTTP/1.1\r\n\r\n";
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK_SLICE(req.path, req.path_len, "/plain");
    CHECK(req.query == NULL);
    CHECK_EQ(req.query_len, 0);
    CHECK_EQ(req.num_headers, 0);

    s = "GET /a? HTTP/1.1\r\n\r\n"; /* present but empty query */
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK_SLICE(req.path, req.path_len, "/a");
    CHECK(req.query == s + 7);
    CHECK_EQ(req.query_len, 0);

    s = "GET /a?b?c=/d HTTP/1.1\r\n\r\n"; /* only the first '?' splits */
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK_SLICE(req.path, req.path_len, "/a");
    CHECK_SLICE(req.query, req.query_len, "b?c=/d");

    s = "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK_SLICE(req.method, req.method_len, "OPTIONS");
    CHECK_SLICE(req.target, req.target_len, "*");
    CHECK_SLICE(req.path, req.path_len, "*");
    CHECK(req.query == NULL);

    /* Sub-delims, ':' '@' and percent escapes are all fine in origin-form. */
    s = "GET /a:b@c!$&'()*+,;=-._~%aF HTTP/1.1\r\n\r\n";
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));

    /* Methods are case-sensitive tokens: "get" is a (different) valid method. */
    s = "get / HTTP/1.1\r\n\r\n";
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK_SLICE(req.method, req.method_len, "get");
    CHECK(!rc_http_slice_eq(req.method, req.method_len, "GET"));
}

static void test_find_header_case_insensitive(void)
{
    const char *s = "GET / HTTP/1.1\r\n"
                    "hOsT: one\r\n"
                    "X-Dup: first\r\n"
                    "x-dup: second\r\n"
                    "\r\n";
    struct rc_http_request req;
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    const struct rc_http_header *h = rc_http_find_header(&req, "Host");
    CHECK(h != NULL);
    if (h != NULL)
        CHECK_SLICE(h->value, h->value_len, "one");
    CHECK(rc_http_find_header(&req, "HOST") == h);
    CHECK(rc_http_find_header(&req, "host") == h);
    h = rc_http_find_header(&req, "X-DUP");
    CHECK(h == &req.headers[1]); /* the first one */
    CHECK(rc_http_find_header(&req, "Hos") == NULL);
    CHECK(rc_http_find_header(&req, "Hostx") == NULL);
    CHECK(rc_http_find_header(&req, "Content-Length") == NULL);
}

static void test_token_lists(void)
{
    const char *s = "GET / HTTP/1.1\r\n"
                    "Connection: keep-alive, Upgrade\r\n"
                    "Upgrade: websocket\r\n"
                    "X-List: , ,  alpha\t,beta ,, \r\n"
                    "X-List: gamma\r\n"
                    "X-Empty:\r\n"
                    "\r\n";
    struct rc_http_request req;
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK(rc_http_header_has_token(&req, "Connection", "upgrade"));
    CHECK(rc_http_header_has_token(&req, "connection", "Upgrade"));
    CHECK(rc_http_header_has_token(&req, "CONNECTION", "KEEP-ALIVE"));
    CHECK(!rc_http_header_has_token(&req, "Connection", "keep"));
    CHECK(!rc_http_header_has_token(&req, "Connection", "alive"));
    CHECK(!rc_http_header_has_token(&req, "Connection", "close"));
    CHECK(!rc_http_header_has_token(&req, "Connection", "keep-alive, Upgrade"));
    CHECK(rc_http_header_has_token(&req, "Upgrade", "WebSocket"));
    CHECK(rc_http_header_has_token(&req, "X-List", "alpha"));
    CHECK(rc_http_header_has_token(&req, "X-List", "beta"));
    CHECK(rc_http_header_has_token(&req, "X-List", "gamma")); /* second header line */
    CHECK(!rc_http_header_has_token(&req, "X-List", ""));
    CHECK(!rc_http_header_has_token(&req, "X-Empty", ""));
    CHECK(!rc_http_header_has_token(&req, "X-Missing", "alpha"));
    const struct rc_http_header *h = rc_http_find_header(&req, "x-empty");
    CHECK(h != NULL);
    if (h != NULL)
        CHECK_EQ(h->value_len, 0);
    CHECK(req.keep_alive);
}

static void test_slice_eq(void)
{
    CHECK(rc_http_slice_eq("GET", 3, "GET"));
    CHECK(rc_http_slice_eq("GETX", 3, "GET"));
    CHECK(!rc_http_slice_eq("GET", 3, "get"));
    CHECK(!rc_http_slice_eq("GE", 2, "GET"));
    CHECK(!rc_http_slice_eq("GETS", 4, "GET"));
    CHECK(rc_http_slice_eq(NULL, 0, ""));
    CHECK(!rc_http_slice_eq(NULL, 0, "x"));
}

struct error_case {
    const char *input;
    ssize_t expected;
};

static void test_error_statuses(void)
{
    static const struct error_case cases[] = {
        /* line endings */
        {"GET / HTTP/1.1\n\n", -400},
        {"GET / HTTP/1.1\r\nHost: x\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: x\r\n\n", -400},
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\r\n", -400},
        {"GET / HTTP/1.1\rX\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", -400},
        {"\nGET / HTTP/1.1\r\n\r\n", -400},
        {"\r\rGET / HTTP/1.1\r\n\r\n", -400},
        /* request line */
        {"GET  / HTTP/1.1\r\n\r\n", -400},
        {" GET / HTTP/1.1\r\n\r\n", -400},
        {"GET / HTTP/1.1 \r\n\r\n", -400},
        {"GET /  HTTP/1.1\r\n\r\n", -400},
        {"GET\t/ HTTP/1.1\r\n\r\n", -400},
        {"G(T / HTTP/1.1\r\n\r\n", -400},
        {"GET\r\n\r\n", -400},
        {"GET /\r\n\r\n", -400},
        {"GET / \r\n\r\n", -400},
        {"GET /a b HTTP/1.1\r\n\r\n", -400},
        {"GET http://example.com/ HTTP/1.1\r\n\r\n", -400},
        {"CONNECT example.com:443 HTTP/1.1\r\n\r\n", -400},
        {"GET * HTTP/1.1\r\n\r\n", -400},
        {"OPTIONS *x HTTP/1.1\r\n\r\n", -400},
        {"GET a/b HTTP/1.1\r\n\r\n", -400},
        {"GET /a#frag HTTP/1.1\r\n\r\n", -400},
        {"GET /a%zz HTTP/1.1\r\n\r\n", -400},
        {"GET /a%4 HTTP/1.1\r\n\r\n", -400},
        {"GET /a% HTTP/1.1\r\n\r\n", -400},
        {"GET /a\x01 HTTP/1.1\r\n\r\n", -400},
        {"GET /a\x7f HTTP/1.1\r\n\r\n", -400},
        {"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", -400},
        {"GET / http/1.1\r\n\r\n", -400},
        {"GET / HTTP/1\r\n\r\n", -400},
        {"GET / HTTP/1.1x\r\n\r\n", -400},
        {"GET / HTTP/11.1\r\n\r\n", -400},
        {"GET / HTTP/1.a\r\n\r\n", -400},
        {"GET / HTTP-1.1\r\n\r\n", -400},
        /* unsupported but well-formed versions */
        {"GET / HTTP/2.0\r\n\r\n", -505},
        {"GET / HTTP/1.2\r\n\r\n", -505},
        {"GET / HTTP/0.9\r\n\r\n", -505},
        {"GET / HTTP/3.1\r\n\r\n", -505},
        /* header syntax */
        {"GET / HTTP/1.1\r\nHost x\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\n: x\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHo(st: x\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\n Host: x\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nX: \x1b[0m\r\n\r\n", -400},
        /* framing */
        {"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n", -400},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: , \r\n\r\n", -400},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", -501},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", -501},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -501},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", -501},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", -501},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", -501},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", -501},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunkedx\r\n\r\n", -501},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ssize_t r = parse_rc(cases[i].input);
        if (r != cases[i].expected)
            fprintf(stderr, "error case %zu: %s\n", i, cases[i].input);
        CHECK_EQ(r, cases[i].expected);
    }

    /* NUL bytes need an explicit length. */
    static const char nul_value[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    CHECK_EQ(parse_n_lim(nul_value, sizeof nul_value - 1, &defaults), -400);
    static const char nul_target[] = "GET /\0 HTTP/1.1\r\n\r\n";
    CHECK_EQ(parse_n_lim(nul_target, sizeof nul_target - 1, &defaults), -400);
    static const char nul_name[] = "GET / HTTP/1.1\r\nX\0: a\r\n\r\n";
    CHECK_EQ(parse_n_lim(nul_name, sizeof nul_name - 1, &defaults), -400);
}

static void test_errors_on_incomplete_input(void)
{
    /* A bare LF is rejected as soon as it arrives, not after a timeout. */
    CHECK_EQ(parse_rc("GET / HTTP/1.1\nHo"), -400);
    CHECK_EQ(parse_rc("GET / HTTP/1.1\r\nHost: x\nAcc"), -400);
    CHECK_EQ(parse_rc("GET / HTTP/1.1\rX"), -400);
    /* Syntax errors in complete lines are reported before the head ends. */
    CHECK_EQ(parse_rc("GET / HTTP/9.9\r\nHost"), -505);
    CHECK_EQ(parse_rc("GET / HTTP/1.1\r\nBad Name: x\r\nMore"), -400);
    CHECK_EQ(parse_rc("GET / HTTP/1.1\r\nHost: x\r\n fold"), -400);
}

static void test_header_values(void)
{
    const char *s = "GET / HTTP/1.1\r\n"
                    "X-Utf8: caf\xc3\xa9 \xff\r\n"
                    "X-Tabs:\t\tinner\tspace\t \r\n"
                    "X-Blank:    \r\n"
                    "X-Colon: a:b: c\r\n"
                    "!#$%&'*+-.^_`|~09azAZ: token-chars\r\n"
                    "\r\n";
    struct rc_http_request req;
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK_EQ(req.num_headers, 5);
    CHECK_SLICE(req.headers[0].value, req.headers[0].value_len, "caf\xc3\xa9 \xff");
    CHECK_SLICE(req.headers[1].value, req.headers[1].value_len, "inner\tspace");
    CHECK_EQ(req.headers[2].value_len, 0);
    CHECK_SLICE(req.headers[3].value, req.headers[3].value_len, "a:b: c");
    CHECK_SLICE(req.headers[4].name, req.headers[4].name_len, "!#$%&'*+-.^_`|~09azAZ");
}

static void test_incremental_byte_by_byte(void)
{
    const char *s = "GET /ws?topic=news HTTP/1.1\r\n"
                    "Host: localhost:8080\r\n"
                    "Upgrade: websocket\r\n"
                    "Connection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n"
                    "\r\n";
    size_t full = strlen(s);
    int wrong = 0;
    for (size_t n = 0; n < full; n++) {
        if (parse_n_lim(s, n, &defaults) != -EAGAIN) {
            fprintf(stderr, "prefix of %zu bytes did not give -EAGAIN\n", n);
            wrong++;
        }
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(parse_n_lim(s, full, &defaults), full);

    /* With a body (or anything) after it, the head length stays the same. */
    char with_body[512];
    snprintf(with_body, sizeof with_body, "%sHELLO", s);
    CHECK_EQ(parse_n_lim(with_body, strlen(with_body), &defaults), full);

    /* Leading empty lines are skipped but counted in the head length. */
    const char *lead = "\r\n\r\nGET / HTTP/1.0\r\n\r\n";
    for (size_t n = 0; n < strlen(lead); n++)
        CHECK_EQ(parse_n_lim(lead, n, &defaults), -EAGAIN);
    struct rc_http_request req;
    CHECK_EQ(rc_http_parse_request(lead, strlen(lead), &defaults, &req), strlen(lead));
    CHECK_SLICE(req.method, req.method_len, "GET");
    CHECK_EQ(req.minor_version, 0);

    CHECK_EQ(rc_http_parse_request(NULL, 0, &defaults, &req), -EAGAIN);
    CHECK_EQ(parse_rc("\r"), -EAGAIN);
    CHECK_EQ(parse_rc("\r\n"), -EAGAIN);
}

static void test_limits_complete_input(void)
{
    const struct rc_http_limits lim = {256, 4, 20};
    /* Request line of exactly 20 bytes passes, 21 does not. */
    CHECK_EQ(parse_lim("GET /aaaaaa HTTP/1.1\r\n\r\n", &lim), 24);
    CHECK_EQ(parse_lim("GET /aaaaaaa HTTP/1.1\r\n\r\n", &lim), -414);
    /* Header line of exactly 20 bytes passes, 21 does not. */
    CHECK_EQ(parse_lim("GET / HTTP/1.1\r\nX-Header: 0123456789\r\n\r\n", &lim), 40);
    CHECK_EQ(parse_lim("GET / HTTP/1.1\r\nX-Header: 01234567890\r\n\r\n", &lim), -431);

    /* max_headers headers pass, one more does not. */
    char buf[16384];
    size_t n = build_headers(buf, sizeof buf, 4, true);
    CHECK_EQ(parse_n_lim(buf, n, &lim), n);
    n = build_headers(buf, sizeof buf, 5, true);
    CHECK_EQ(parse_n_lim(buf, n, &lim), -431);

    /* A head of exactly max_head_bytes passes, one byte more does not. */
    struct rc_http_limits head_lim = {0, 64, 4096};
    n = build_headers(buf, sizeof buf, 10, true);
    head_lim.max_head_bytes = n;
    CHECK_EQ(parse_n_lim(buf, n, &head_lim), n);
    head_lim.max_head_bytes = n - 1;
    CHECK_EQ(parse_n_lim(buf, n, &head_lim), -431);

    /* max_headers above RC_HTTP_MAX_HEADERS is clamped to it. */
    const struct rc_http_limits big = {16384, 1000, 4096};
    n = build_headers(buf, sizeof buf, RC_HTTP_MAX_HEADERS, true);
    CHECK_EQ(parse_n_lim(buf, n, &big), n);
    n = build_headers(buf, sizeof buf, RC_HTTP_MAX_HEADERS + 1, true);
    CHECK_EQ(parse_n_lim(buf, n, &big), -431);

    /* Default limits: 64 headers pass, 65 do not. */
    n = build_headers(buf, sizeof buf, 64, true);
    CHECK_EQ(parse_n_lim(buf, n, &defaults), n);
    n = build_headers(buf, sizeof buf, 65, true);
    CHECK_EQ(parse_n_lim(buf, n, &defaults), -431);

    /* NULL limits mean the defaults. */
    CHECK_EQ(parse_n_lim(buf, n, NULL), -431);
    n = build_headers(buf, sizeof buf, 64, true);
    CHECK_EQ(parse_n_lim(buf, n, NULL), n);

    /* Degenerate limits reject everything without reading anything. */
    const struct rc_http_limits zero_head = {0, 64, 4096};
    CHECK_EQ(parse_lim("GET / HTTP/1.1\r\n\r\n", &zero_head), -431);
    const struct rc_http_limits zero_line = {8192, 64, 0};
    CHECK_EQ(parse_lim("GET / HTTP/1.1\r\n\r\n", &zero_line), -414);
    const struct rc_http_limits zero_headers = {8192, 0, 4096};
    CHECK_EQ(parse_lim("GET / HTTP/1.1\r\n\r\n", &zero_headers), 18);
    CHECK_EQ(parse_lim("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &zero_headers), -431);
}

static void test_limits_incomplete_input(void)
{
    char *big = malloc(10240 + 64);
    if (big == NULL)
        abort();

    /* 10 KB request line without CRLF: -414, not -EAGAIN. */
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', 10240 - 5);
    CHECK_EQ(parse_n_lim(big, 10240, &defaults), -414);
    /* Already as soon as the line passes max_line_bytes. */
    CHECK_EQ(parse_n_lim(big, 4096, &defaults), -EAGAIN);
    CHECK_EQ(parse_n_lim(big, 4097, &defaults), -414);

    /* 10 KB header line without CRLF: -431. */
    size_t pre = (size_t)snprintf(big, 64, "GET / HTTP/1.1\r\nX-Long: ");
    memset(big + pre, 'b', 10240 - pre);
    CHECK_EQ(parse_n_lim(big, 10240, &defaults), -431);
    CHECK_EQ(parse_n_lim(big, 16 + 4096, &defaults), -EAGAIN);
    CHECK_EQ(parse_n_lim(big, 16 + 4097, &defaults), -431);

    /* Endless short headers: too many headers before the head ends. */
    size_t n = build_headers(big, 10240, 65, false);
    CHECK_EQ(parse_n_lim(big, n, &defaults), -431);
    n = build_headers(big, 10240, 64, false);
    CHECK_EQ(parse_n_lim(big, n, &defaults), -EAGAIN);
    /* The 65th header is refused as soon as its first byte arrives. */
    big[n] = 'X';
    CHECK_EQ(parse_n_lim(big, n + 1, &defaults), -431);
    big[n] = '\r';
    CHECK_EQ(parse_n_lim(big, n + 1, &defaults), -EAGAIN);

    /* Lines within limits but the head outgrows max_head_bytes: the
     * caller learns it once it holds max_head_bytes, never later. */
    const struct rc_http_limits lim = {100, 64, 4096};
    n = build_headers(big, 10240, 20, false);
    CHECK(n > 100);
    CHECK_EQ(parse_n_lim(big, 99, &lim), -EAGAIN);
    CHECK_EQ(parse_n_lim(big, 100, &lim), -431);
    CHECK_EQ(parse_n_lim(big, n, &lim), -431);

    /* Leading CRLFs count towards max_head_bytes too. */
    memset(big, 0, 10240);
    for (size_t i = 0; i + 1 < 10240; i += 2) {
        big[i] = '\r';
        big[i + 1] = '\n';
    }
    CHECK_EQ(parse_n_lim(big, 8190, &defaults), -EAGAIN);
    CHECK_EQ(parse_n_lim(big, 8192, &defaults), -431);
    CHECK_EQ(parse_n_lim(big, 10240, &defaults), -431);

    free(big);
}

static void test_pipelined(void)
{
    const char *s = "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
                    "GET /second?x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
                    "garbage that is not http";
    size_t first_len = strlen("GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
    size_t second_len = strlen("GET /second?x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
    struct rc_http_request req;
    ssize_t r = rc_http_parse_request(s, strlen(s), &defaults, &req);
    CHECK_EQ(r, first_len);
    CHECK_SLICE(req.path, req.path_len, "/first");
    CHECK_EQ(req.num_headers, 1);
    CHECK(req.keep_alive);

    r = rc_http_parse_request(s + first_len, strlen(s) - first_len, &defaults, &req);
    CHECK_EQ(r, second_len);
    CHECK_SLICE(req.path, req.path_len, "/second");
    CHECK_SLICE(req.query, req.query_len, "x");
    CHECK_EQ(req.num_headers, 2);
    CHECK(!req.keep_alive);

    const char *rest = s + first_len + second_len;
    CHECK_EQ(rc_http_parse_request(rest, strlen(rest), &defaults, &req), -EAGAIN);
    CHECK_EQ(parse_rc("garbage that is not http\r\n"), -400);

    /* A head whose blank line is only partly there is still incomplete,
     * whatever follows a complete one is not looked at. */
    CHECK_EQ(parse_rc("GET / HTTP/1.1\r\n\r"), -EAGAIN);
    CHECK_EQ(parse_rc("GET / HTTP/1.1\r\n\r\n\n\x01\xff"), 18);
}

static void test_content_length(void)
{
    struct rc_http_request req;
    const char *s = "POST /publish HTTP/1.1\r\nContent-Length: 42\r\n\r\n";
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK_EQ(req.content_length, 42);
    CHECK(!req.chunked);

    s = "POST / HTTP/1.1\r\ncontent-length:\t 0 \t\r\n\r\n";
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK_EQ(req.content_length, 0);

    s = "POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n";
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK_EQ(req.content_length, 7);

    s = "POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n";
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK(req.content_length == INT64_MAX);

    s = "POST / HTTP/1.1\r\nContent-Length: 12\r\nX: y\r\nCONTENT-LENGTH: 12\r\n\r\n";
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK_EQ(req.content_length, 12);

    s = "POST / HTTP/1.1\r\nContent-Length: 12\r\nContent-Length: 012\r\n\r\n";
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK_EQ(req.content_length, 12); /* same value, different spelling */

    s = "GET / HTTP/1.1\r\n\r\n";
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK_EQ(req.content_length, -1);
}

static void test_chunked(void)
{
    struct rc_http_request req;
    const char *s = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    size_t head = strlen("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), head);
    CHECK(req.chunked);
    CHECK_EQ(req.content_length, -1);
    CHECK(req.keep_alive);

    s = "POST / HTTP/1.1\r\ntransfer-encoding:  CHUNKED \r\n\r\n";
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK(req.chunked);

    s = "POST / HTTP/1.1\r\nTransfer-Encoding: , chunked ,\r\n\r\n"; /* empty elements ignored */
    CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
    CHECK(req.chunked);
}

static void test_keep_alive(void)
{
    struct rc_http_request req;
    static const struct {
        const char *input;
        int minor;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, true},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 1, false},
        {"GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n", 1, false},
        {"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", 1, false},
        {"GET / HTTP/1.1\r\nConnection: Upgrade\r\nConnection: close\r\n\r\n", 1, false},
        {"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", 1, true},
        {"GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n", 1, true},
        {"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", 1, true},
        {"GET / HTTP/1.0\r\nHost: x\r\n\r\n", 0, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, true},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, true},
        {"GET / HTTP/1.0\r\nConnection: foo, keep-alive\r\n\r\n", 0, true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, false},
        {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", 0, false},
        {"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", 0, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *s = cases[i].input;
        CHECK_EQ(rc_http_parse_request(s, strlen(s), &defaults, &req), strlen(s));
        CHECK_EQ(req.minor_version, cases[i].minor);
        if (req.keep_alive != cases[i].keep_alive)
            fprintf(stderr, "keep-alive case %zu: %s\n", i, s);
        CHECK_EQ(req.keep_alive, cases[i].keep_alive);
    }
}

int main(void)
{
    test_valid_get_with_query();
    test_target_forms();
    test_find_header_case_insensitive();
    test_token_lists();
    test_slice_eq();
    test_error_statuses();
    test_errors_on_incomplete_input();
    test_header_values();
    test_incremental_byte_by_byte();
    test_limits_complete_input();
    test_limits_incomplete_input();
    test_pipelined();
    test_content_length();
    test_chunked();
    test_keep_alive();
    RC_TEST_MAIN_END("test_parser");
}
