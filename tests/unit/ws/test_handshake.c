/*
 * test_handshake.c — SHA-1 (FIPS 180 vectors), base64 (RFC 4648 vectors,
 * round trips, strict rejects), Sec-WebSocket-Accept (RFC 6455 §1.3) and
 * every status rc_ws_handshake_check() can answer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rc_test.h"
#include "ringcast/http.h"
#include "ringcast/ws.h"

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void check_sha1(const void *data, size_t len, const char *want)
{
    uint8_t d[20];
    char h[41];

    rc_sha1(data, len, d);
    hex(d, 20, h);
    if (strcmp(h, want) != 0)
        fprintf(stderr, "sha1 of %zu bytes: got %s want %s\n", len, h, want);
    CHECK(strcmp(h, want) == 0);
}

static void test_sha1(void)
{
    check_sha1("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    check_sha1("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    check_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
               "84983e441c3bd26ebaae4aa1f95129e5e54670f1");

    /* Padding boundaries: 55 fits one block, 56 needs a second. */
    static char a[1000000];
    memset(a, 'a', sizeof a);
    check_sha1(a, 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a");
    check_sha1(a, 56, "c2db330f6083854c99d4b5bfb6e8f29f201be699");
    check_sha1(a, 63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5");
    check_sha1(a, 64, "0098ba824b5c16427bd7a1122a5a442a25ec644d");
    check_sha1(a, 65, "11655326c708d70319be2610e8a57d9a5b959d3b");
    check_sha1(a, sizeof a, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

static void test_base64(void)
{
    /* RFC 4648 §10. */
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char enc[64];
    uint8_t dec[64];

    for (size_t i = 0; i < 7; i++) {
        size_t n = strlen(plain[i]);
        size_t m = rc_base64_encode((const uint8_t *)plain[i], n, enc);
        CHECK_EQ(m, strlen(coded[i]));
        CHECK_MEM(enc, coded[i], m);
        CHECK_EQ(rc_base64_decode(coded[i], strlen(coded[i]), dec, sizeof dec), (ssize_t)n);
        CHECK_MEM(dec, plain[i], n);
    }

    /* Round trips of every length up to 48 with all byte values. */
    uint8_t src[48];
    for (size_t len = 0; len <= sizeof src; len++) {
        for (size_t i = 0; i < len; i++)
            src[i] = (uint8_t)(i * 97 + len * 13 + 0xF0);
        size_t m = rc_base64_encode(src, len, enc);
        CHECK_EQ(m, (len + 2) / 3 * 4);
        CHECK_EQ(rc_base64_decode(enc, m, dec, sizeof dec), (ssize_t)len);
        CHECK_MEM(dec, src, len);
        /* Exactly enough room works, one byte less does not. */
        CHECK_EQ(rc_base64_decode(enc, m, dec, len), (ssize_t)len);
        if (len > 0)
            CHECK_EQ(rc_base64_decode(enc, m, dec, len - 1), -1);
    }
    /* Both extra alphabet characters. */
    uint8_t hi[3] = {0xFB, 0xFF, 0xBF};
    CHECK_EQ(rc_base64_encode(hi, 3, enc), 4);
    CHECK_MEM(enc, "+/+/", 4);
    CHECK_EQ(rc_base64_decode("+/+/", 4, dec, sizeof dec), 3);
    CHECK_MEM(dec, hi, 3);

    /* Strict rejects. */
    static const char *bad[] = {
        "Zg",       /* not a multiple of 4 */
        "Zg=",      /* ditto */
        "Zm9vY",    /* ditto */
        "Z===",     /* three pads */
        "====",     /* only pads */
        "Zg==Zg==", /* padding before the end */
        "Zm=v",     /* pad inside a quantum */
        "Z=g=",     /* ditto */
        "Zh==",     /* non-zero unused bits */
        "Zm9=",     /* ditto */
        "Zm 9",     /* space */
        "Zm9v\r\n", /* line break */
        "Zm-v",     /* base64url alphabet */
        "Zm_v",     /* ditto */
        "Zm9\x80",  /* non-ASCII */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssize_t r = rc_base64_decode(bad[i], strlen(bad[i]), dec, sizeof dec);
        if (r != -1)
            fprintf(stderr, "base64 accepted bad[%zu] \"%s\"\n", i, bad[i]);
        CHECK_EQ(r, -1);
    }
    /* A NUL inside the input is just an invalid character. */
    CHECK_EQ(rc_base64_decode("Zm\0v", 4, dec, sizeof dec), -1);
}

static void test_accept_key(void)
{
    char out[29];

    /* RFC 6455 §1.3's example, also reproduced with Python's hashlib. */
    memset(out, 'X', sizeof out);
    rc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    CHECK_EQ(out[28], '\0');
    /* Only key_len bytes of the key count. */
    rc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==\r\nHost", 24, out);
    CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    /* Another key, its answer computed with Python's hashlib. */
    rc_ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
    CHECK(strcmp(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=") == 0);
}

/* ---- handshake checks on hand-built requests ---- */

static void set_header(struct rc_http_request *req, const char *name, const char *value)
{
    struct rc_http_header *h = &req->headers[req->num_headers++];
    h->name = name;
    h->name_len = strlen(name);
    h->value = value;
    h->value_len = strlen(value);
}

static void remove_header(struct rc_http_request *req, const char *name)
{
    size_t o = 0;
    for (size_t i = 0; i < req->num_headers; i++)
        if (strcmp(req->headers[i].name, name) != 0)
            req->headers[o++] = req->headers[i];
    req->num_headers = o;
}

static void replace_header(struct rc_http_request *req, const char *name, const char *value)
{
    remove_header(req, name);
    set_header(req, name, value);
}

static const char sample_key[] = "dGhlIHNhbXBsZSBub25jZQ==";

static void base_request(struct rc_http_request *req)
{
    memset(req, 0, sizeof *req);
    req->method = "GET";
    req->method_len = 3;
    req->target = req->path = "/chat";
    req->target_len = req->path_len = 5;
    req->minor_version = 1;
    req->content_length = -1;
    req->keep_alive = true;
    set_header(req, "Host", "server.example.com");
    set_header(req, "Upgrade", "websocket");
    set_header(req, "Connection", "Upgrade");
    set_header(req, "Sec-WebSocket-Key", sample_key);
    set_header(req, "Origin", "http://example.com");
    set_header(req, "Sec-WebSocket-Version", "13");
}

static int check_with(const char *name, const char *value)
{
    static struct rc_http_request req;
    struct rc_ws_handshake hs;

    base_request(&req);
    if (value)
        replace_header(&req, name, value);
    else
        remove_header(&req, name);
    return rc_ws_handshake_check(&req, &hs);
}

static void test_handshake_check(void)
{
    static struct rc_http_request req;
    struct rc_ws_handshake hs;

    /* The RFC 6455 §1.3 request. */
    base_request(&req);
    memset(&hs, 0, sizeof hs);
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), 0);
    CHECK(hs.key == req.headers[3].value);
    CHECK_EQ(hs.key_len, 24);

    /* Method. */
    base_request(&req);
    req.method = "POST", req.method_len = 4;
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), -405);
    req.method = "get", req.method_len = 3;
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), -405);
    req.method = "HEAD", req.method_len = 4;
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), -405);
    req.method = "POST", req.method_len = 4;
    req.minor_version = 0; /* method is checked first */
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), -405);

    /* Version. */
    base_request(&req);
    req.minor_version = 0;
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), -400);

    /* Host. */
    CHECK_EQ(check_with("Host", NULL), -400);

    /* Upgrade. */
    CHECK_EQ(check_with("Upgrade", NULL), -426);
    CHECK_EQ(check_with("Upgrade", "h2c"), -426);
    CHECK_EQ(check_with("Upgrade", "websockets"), -426);
    CHECK_EQ(check_with("Upgrade", "WebSocket"), 0);
    CHECK_EQ(check_with("Upgrade", "foo/2, websocket"), 0);

    /* Connection. */
    CHECK_EQ(check_with("Connection", NULL), -400);
    CHECK_EQ(check_with("Connection", "close"), -400);
    CHECK_EQ(check_with("Connection", "upgraded"), -400);
    CHECK_EQ(check_with("Connection", "keep-alive, Upgrade"), 0);
    CHECK_EQ(check_with("Connection", "UPGRADE"), 0);

    /* Sec-WebSocket-Version. */
    CHECK_EQ(check_with("Sec-WebSocket-Version", NULL), -426);
    CHECK_EQ(check_with("Sec-WebSocket-Version", "8"), -426);
    CHECK_EQ(check_with("Sec-WebSocket-Version", "12"), -426);
    CHECK_EQ(check_with("Sec-WebSocket-Version", "13, 8"), -426);
    CHECK_EQ(check_with("Sec-WebSocket-Version", "013"), -426);
    CHECK_EQ(check_with("Sec-WebSocket-Version", ""), -426);
    base_request(&req);
    set_header(&req, "sec-websocket-version", "8"); /* a second, different one */
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), -426);

    /* Sec-WebSocket-Key. */
    CHECK_EQ(check_with("Sec-WebSocket-Key", NULL), -400);
    CHECK_EQ(check_with("Sec-WebSocket-Key", ""), -400);
    CHECK_EQ(check_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ"), -400);     /* no padding */
    CHECK_EQ(check_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), 0);
    CHECK_EQ(check_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR=="), -400);   /* unused bits */
    CHECK_EQ(check_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j"), -400);       /* 15 bytes */
    CHECK_EQ(check_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZXg="), -400);   /* 17 bytes */
    CHECK_EQ(check_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==AAAA"), -400); /* 19 bytes */
    CHECK_EQ(check_with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ-="), -400);
    CHECK_EQ(check_with("Sec-WebSocket-Key", "not a key at all!!!!!!=="), -400);
    base_request(&req);
    set_header(&req, "SEC-WEBSOCKET-KEY", sample_key); /* present twice */
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), -400);

    /* A body. */
    base_request(&req);
    req.content_length = 5;
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), -400);
    req.content_length = 0;
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), 0);
    req.content_length = -1;
    req.chunked = true;
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), -400);

    /* Header names match case-insensitively. */
    base_request(&req);
    req.num_headers = 0;
    set_header(&req, "HOST", "a");
    set_header(&req, "upgrade", "websocket");
    set_header(&req, "CONNECTION", "upgrade");
    set_header(&req, "sec-websocket-key", sample_key);
    set_header(&req, "SEC-WEBSOCKET-VERSION", "13");
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), 0);
    CHECK_EQ(hs.key_len, 24);
    /* Look-alike names of the same length are other headers. */
    set_header(&req, "Sec-WebSocket-Kex", "not base64");
    set_header(&req, "Sec-WebSocket-Versiom", "8");
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), 0);
}

/* The same request through the real parser. */
static void test_parsed_request(void)
{
    static const char head[] = "GET /chat HTTP/1.1\r\n"
                               "Host: server.example.com\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Origin: http://example.com\r\n"
                               "Sec-WebSocket-Protocol: chat, superchat\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "\r\n";
    static struct rc_http_request req;
    struct rc_http_limits lim = RC_HTTP_LIMITS_DEFAULT;
    struct rc_ws_handshake hs;
    char accept[29];

    CHECK_EQ(rc_http_parse_request(head, sizeof head - 1, &lim, &req), (ssize_t)(sizeof head - 1));
    CHECK_EQ(rc_ws_handshake_check(&req, &hs), 0);
    CHECK_EQ(hs.key_len, 24);
    rc_ws_accept_key(hs.key, hs.key_len, accept);
    CHECK(strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
}

int main(void)
{
    test_sha1();
    test_base64();
    test_accept_key();
    test_handshake_check();
    test_parsed_request();
    RC_TEST_MAIN_END("test_handshake");
}
