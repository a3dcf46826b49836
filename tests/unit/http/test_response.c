/*
 * tests/unit/http/test_response.c — unit tests for src/http/response.c:
 * reason phrases, exact response bytes, the statuses that carry no
 * Content-Length, JSON error bodies and their escaping, and -ENOSPC at
 * every too-small capacity without writing past it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rc_test.h"
#include "ringcast/http.h"

#define CHECK_OUT(r, buf, lit)                                  \
    do {                                                        \
        size_t lit_len_ = strlen(lit);                          \
        CHECK_EQ((r), lit_len_);                                \
        if ((r) == (ssize_t)lit_len_)                           \
            CHECK_MEM((buf), (lit), lit_len_);                  \
        else                                                    \
            fprintf(stderr, "got: %.*s\n", (int)((r) > 0 ? (r) : 0), (buf)); \
    } while (0)

static void test_status_text(void)
{
    static const int required[] = {101, 200, 201, 202, 204, 400, 401, 403, 404, 405, 408,
                                   411, 413, 414, 415, 426, 429, 431, 500, 501, 503, 505};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const char *t = rc_http_status_text(required[i]);
        CHECK(t != NULL && strcmp(t, "Unknown") != 0 && t[0] != '\0');
    }
    CHECK(strcmp(rc_http_status_text(101), "Switching Protocols") == 0);
    CHECK(strcmp(rc_http_status_text(200), "OK") == 0);
    CHECK(strcmp(rc_http_status_text(404), "Not Found") == 0);
    CHECK(strcmp(rc_http_status_text(413), "Content Too Large") == 0);
    CHECK(strcmp(rc_http_status_text(414), "URI Too Long") == 0);
    CHECK(strcmp(rc_http_status_text(426), "Upgrade Required") == 0);
    CHECK(strcmp(rc_http_status_text(431), "Request Header Fields Too Large") == 0);
    CHECK(strcmp(rc_http_status_text(505), "HTTP Version Not Supported") == 0);
    CHECK(strcmp(rc_http_status_text(299), "Unknown") == 0);
    CHECK(strcmp(rc_http_status_text(0), "Unknown") == 0);
    CHECK(strcmp(rc_http_status_text(-404), "Unknown") == 0);
}

static void test_format_response_exact(void)
{
    char out[512];
    ssize_t r = rc_http_format_response(out, sizeof out, 200, "text/plain", NULL, "hello", 5, true);
    CHECK_OUT(r, out,
              "HTTP/1.1 200 OK\r\n"
              "Server: ringcast\r\n"
              "Content-Type: text/plain\r\n"
              "Content-Length: 5\r\n"
              "\r\n"
              "hello");

    r = rc_http_format_response(out, sizeof out, 404, NULL, NULL, NULL, 0, false);
    CHECK_OUT(r, out,
              "HTTP/1.1 404 Not Found\r\n"
              "Server: ringcast\r\n"
              "Content-Length: 0\r\n"
              "Connection: close\r\n"
              "\r\n");

    r = rc_http_format_response(out, sizeof out, 200, "application/json",
                                "Cache-Control: no-store\r\nX-Topic: news\r\n", "{}", 2, false);
    CHECK_OUT(r, out,
              "HTTP/1.1 200 OK\r\n"
              "Server: ringcast\r\n"
              "Content-Type: application/json\r\n"
              "Content-Length: 2\r\n"
              "Connection: close\r\n"
              "Cache-Control: no-store\r\n"
              "X-Topic: news\r\n"
              "\r\n"
              "{}");

    /* Binary bodies are copied as they are, NULs included. */
    static const char bin[] = {'a', '\0', 'b', '\r', '\n'};
    r = rc_http_format_response(out, sizeof out, 202, "application/octet-stream", "", bin,
                                sizeof bin, true);
    static const char expect_bin[] = "HTTP/1.1 202 Accepted\r\n"
                                     "Server: ringcast\r\n"
                                     "Content-Type: application/octet-stream\r\n"
                                     "Content-Length: 5\r\n"
                                     "\r\n"
                                     "a\0b\r\n";
    CHECK_EQ(r, sizeof expect_bin - 1);
    CHECK_MEM(out, expect_bin, sizeof expect_bin - 1);

    /* An unknown status still gets a three-digit status line. */
    r = rc_http_format_response(out, sizeof out, 299, NULL, NULL, NULL, 0, true);
    CHECK_OUT(r, out, "HTTP/1.1 299 Unknown\r\nServer: ringcast\r\nContent-Length: 0\r\n\r\n");
}

static void test_no_content_statuses(void)
{
    char out[512];
    ssize_t r = rc_http_format_response(out, sizeof out, 101, NULL,
                                        "Upgrade: websocket\r\n"
                                        "Connection: Upgrade\r\n"
                                        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
                                        NULL, 0, true);
    CHECK_OUT(r, out,
              "HTTP/1.1 101 Switching Protocols\r\n"
              "Server: ringcast\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
              "\r\n");

    r = rc_http_format_response(out, sizeof out, 204, NULL, NULL, NULL, 0, true);
    CHECK_OUT(r, out, "HTTP/1.1 204 No Content\r\nServer: ringcast\r\n\r\n");

    r = rc_http_format_response(out, sizeof out, 304, NULL, NULL, NULL, 0, false);
    CHECK_OUT(r, out, "HTTP/1.1 304 Not Modified\r\nServer: ringcast\r\nConnection: close\r\n\r\n");

    /* Bodies are impossible there, and so are statuses that are not 3 digits. */
    CHECK_EQ(rc_http_format_response(out, sizeof out, 204, NULL, NULL, "x", 1, true), -EINVAL);
    CHECK_EQ(rc_http_format_response(out, sizeof out, 101, NULL, NULL, "x", 1, true), -EINVAL);
    CHECK_EQ(rc_http_format_response(out, sizeof out, 99, NULL, NULL, NULL, 0, true), -EINVAL);
    CHECK_EQ(rc_http_format_response(out, sizeof out, 1000, NULL, NULL, NULL, 0, true), -EINVAL);
    CHECK_EQ(rc_http_format_response(out, sizeof out, -400, NULL, NULL, NULL, 0, true), -EINVAL);
    CHECK_EQ(rc_http_format_error(out, sizeof out, 204, "x", NULL, true), -EINVAL);
}

static void test_format_error_exact(void)
{
    char out[512];
    ssize_t r = rc_http_format_error(out, sizeof out, 400, "bad request line", NULL, false);
    CHECK_OUT(r, out,
              "HTTP/1.1 400 Bad Request\r\n"
              "Server: ringcast\r\n"
              "Content-Type: application/json\r\n"
              "Content-Length: 41\r\n"
              "Connection: close\r\n"
              "\r\n"
              "{\"error\":\"bad request line\",\"status\":400}");

    r = rc_http_format_error(out, sizeof out, 426, "upgrade required",
                             "Sec-WebSocket-Version: 13\r\n", true);
    CHECK_OUT(r, out,
              "HTTP/1.1 426 Upgrade Required\r\n"
              "Server: ringcast\r\n"
              "Content-Type: application/json\r\n"
              "Content-Length: 41\r\n"
              "Sec-WebSocket-Version: 13\r\n"
              "\r\n"
              "{\"error\":\"upgrade required\",\"status\":426}");

    /* NULL message: the reason phrase. */
    r = rc_http_format_error(out, sizeof out, 404, NULL, NULL, true);
    CHECK_OUT(r, out,
              "HTTP/1.1 404 Not Found\r\n"
              "Server: ringcast\r\n"
              "Content-Type: application/json\r\n"
              "Content-Length: 34\r\n"
              "\r\n"
              "{\"error\":\"Not Found\",\"status\":404}");

    /* Quotes and backslashes escaped, control bytes dropped, UTF-8 kept. */
    r = rc_http_format_error(out, sizeof out, 400, "say \"hi\"\\\n\tnow\x7f caf\xc3\xa9", NULL,
                             true);
    CHECK_OUT(r, out,
              "HTTP/1.1 400 Bad Request\r\n"
              "Server: ringcast\r\n"
              "Content-Type: application/json\r\n"
              "Content-Length: 46\r\n"
              "\r\n"
              "{\"error\":\"say \\\"hi\\\"\\\\now caf\xc3\xa9\",\"status\":400}");

    r = rc_http_format_error(out, sizeof out, 500, "", NULL, false);
    CHECK_OUT(r, out,
              "HTTP/1.1 500 Internal Server Error\r\n"
              "Server: ringcast\r\n"
              "Content-Type: application/json\r\n"
              "Content-Length: 25\r\n"
              "Connection: close\r\n"
              "\r\n"
              "{\"error\":\"\",\"status\":500}");
}

/* Content-Length must match the bytes after the blank line. */
static void check_length_matches(const char *out, ssize_t r)
{
    CHECK(r > 0);
    if (r <= 0)
        return;
    const char *end = memmem(out, (size_t)r, "\r\n\r\n", 4);
    const char *cl = memmem(out, (size_t)r, "Content-Length: ", 16);
    CHECK(end != NULL && cl != NULL);
    if (end == NULL || cl == NULL)
        return;
    long declared = strtol(cl + 16, NULL, 10);
    CHECK_EQ(declared, (out + r) - (end + 4));
}

static void test_lengths_consistent(void)
{
    char out[2048];
    char msg[600];
    for (size_t n = 0; n < sizeof msg - 1; n += 37) {
        for (size_t i = 0; i < n; i++)
            msg[i] = "ab\"\\\x01 \xc3"[i % 7];
        msg[n] = '\0';
        ssize_t r = rc_http_format_error(out, sizeof out, 413, msg, NULL, true);
        check_length_matches(out, r);
    }
    ssize_t r = rc_http_format_response(out, sizeof out, 200, NULL, NULL, msg, 123, true);
    check_length_matches(out, r);
}

/* Every capacity below the needed size gives -ENOSPC and leaves the bytes
 * at and after cap untouched; the exact size succeeds. */
static void test_enospc(void)
{
    char out[512];
    char probe[512];
    ssize_t need_resp = rc_http_format_response(probe, sizeof probe, 200, "text/plain",
                                                "X-A: 1\r\n", "hello world", 11, false);
    ssize_t need_err = rc_http_format_error(probe, sizeof probe, 503, "busy \"now\"", "Retry-After: 1\r\n",
                                            false);
    CHECK(need_resp > 0);
    CHECK(need_err > 0);
    int bad_ret = 0, overwritten = 0;
    for (ssize_t cap = 0; cap < need_resp; cap++) {
        memset(out, 0x5a, sizeof out);
        if (rc_http_format_response(out, (size_t)cap, 200, "text/plain", "X-A: 1\r\n",
                                    "hello world", 11, false) != -ENOSPC)
            bad_ret++;
        for (size_t i = (size_t)cap; i < sizeof out; i++)
            if (out[i] != 0x5a)
                overwritten++;
    }
    for (ssize_t cap = 0; cap < need_err; cap++) {
        memset(out, 0x5a, sizeof out);
        if (rc_http_format_error(out, (size_t)cap, 503, "busy \"now\"", "Retry-After: 1\r\n",
                                 false) != -ENOSPC)
            bad_ret++;
        for (size_t i = (size_t)cap; i < sizeof out; i++)
            if (out[i] != 0x5a)
                overwritten++;
    }
    CHECK_EQ(bad_ret, 0);
    CHECK_EQ(overwritten, 0);
    CHECK_EQ(rc_http_format_response(NULL, 0, 200, NULL, NULL, NULL, 0, true), -ENOSPC);

    memset(out, 0x5a, sizeof out);
    CHECK_EQ(rc_http_format_response(out, (size_t)need_resp, 200, "text/plain", "X-A: 1\r\n",
                                     "hello world", 11, false),
             need_resp);
    CHECK_EQ((unsigned char)out[need_resp], 0x5a);
    CHECK_EQ(rc_http_format_error(out, (size_t)need_err, 503, "busy \"now\"", "Retry-After: 1\r\n",
                                  false),
             need_err);
    CHECK_MEM(out, probe, (size_t)need_err);
}

int main(void)
{
    test_status_text();
    test_format_response_exact();
    test_no_content_statuses();
    test_format_error_exact();
    test_lengths_consistent();
    test_enospc();
    RC_TEST_MAIN_END("test_response");
}
