/*
 * test_pmd.c — src/ws/pmd.c: permessage-deflate negotiation (RFC 7692 §5,
 * §7.1; RFC 6455 §9.1 grammar): every accept / decline rule, the exact
 * answers, several offers and several headers, the offers browsers and the
 * Autobahn testsuite (cases 12.* and 13.*) send, and malformed headers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rc_test.h"
#include "ringcast/http.h"
#include "ringcast/pmd.h"

#define BASE "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

static struct rc_http_request req;
static char resp[256];
static struct rc_pmd_params params;

static void add_header(const char *name, const char *value)
{
    struct rc_http_header *h = &req.headers[req.num_headers++];
    h->name = name;
    h->name_len = strlen(name);
    h->value = value;
    h->value_len = strlen(value);
}

/* Negotiates over Sec-WebSocket-Extensions headers v1, v2, v3 (NULL ends). */
static int negotiate3(const char *v1, const char *v2, const char *v3)
{
    memset(&req, 0, sizeof req);
    add_header("Host", "example.com");
    add_header("Upgrade", "websocket");
    const char *v[3] = {v1, v2, v3};
    for (int i = 0; i < 3 && v[i]; i++)
        add_header("Sec-WebSocket-Extensions", v[i]);
    add_header("Sec-WebSocket-Version", "13");
    memset(resp, 'x', sizeof resp);
    params.server_max_window_bits = 0;
    return rc_pmd_negotiate(&req, &params, resp, sizeof resp);
}

static int negotiate(const char *value)
{
    return negotiate3(value, NULL, NULL);
}

/* The offer is accepted with exactly this answer and window. */
#define ACCEPTS(value, answer, bits)                                                   \
    do {                                                                               \
        int r_ = negotiate(value);                                                     \
        CHECK_EQ(r_, 1);                                                               \
        CHECK(r_ == 1 && strcmp(resp, answer) == 0);                                   \
        CHECK_EQ(params.server_max_window_bits, bits);                                 \
        if (r_ != 1 || strcmp(resp, answer) != 0)                                      \
            fprintf(stderr, "  offer [%s] -> %d [%s]\n", value, r_, r_ == 1 ? resp : ""); \
    } while (0)

#define DECLINES(value)                                                         \
    do {                                                                        \
        int r_ = negotiate(value);                                              \
        CHECK_EQ(r_, 0);                                                        \
        if (r_ != 0)                                                            \
            fprintf(stderr, "  offer [%s] accepted as [%s]\n", value, resp);    \
    } while (0)

static void test_plain_offers(void)
{
    /* Firefox, Chrome / Safari, Node's ws, Python's websockets. */
    ACCEPTS("permessage-deflate", BASE, 15);
    ACCEPTS("permessage-deflate; client_max_window_bits", BASE, 15);
    ACCEPTS("permessage-deflate; client_max_window_bits=15", BASE, 15);
    ACCEPTS("permessage-deflate; server_no_context_takeover", BASE, 15);
    ACCEPTS("permessage-deflate; client_no_context_takeover", BASE, 15);
    ACCEPTS("permessage-deflate; server_no_context_takeover; client_no_context_takeover", BASE, 15);
    ACCEPTS("permessage-deflate; client_max_window_bits=8", BASE, 15);
    ACCEPTS("permessage-deflate; client_max_window_bits=12", BASE, 15);
}

static void test_server_max_window_bits(void)
{
    ACCEPTS("permessage-deflate; server_max_window_bits=8", BASE "; server_max_window_bits=8", 8);
    ACCEPTS("permessage-deflate; server_max_window_bits=9", BASE "; server_max_window_bits=9", 9);
    ACCEPTS("permessage-deflate; server_max_window_bits=10", BASE "; server_max_window_bits=10", 10);
    ACCEPTS("permessage-deflate; server_max_window_bits=14", BASE "; server_max_window_bits=14", 14);
    ACCEPTS("permessage-deflate; server_max_window_bits=15", BASE "; server_max_window_bits=15", 15);
    /* Quoted values are unescaped, and the answer is a plain token. */
    ACCEPTS("permessage-deflate; server_max_window_bits=\"10\"", BASE "; server_max_window_bits=10", 10);
    ACCEPTS("permessage-deflate; server_max_window_bits=\"1\\1\"", BASE "; server_max_window_bits=11", 11);
    ACCEPTS("permessage-deflate; client_max_window_bits=\"9\"", BASE, 15);

    /* server_max_window_bits needs a value in 8..15, written plainly. */
    static const char *bad[] = {"",   "=7",   "=16",  "=0",   "=08",   "=+9",    "=-9",  "=9.0",
                                "=a", "=100", "=015", "=1e1", "=\"\"x", "=\"7\"", "=0x9", "=99999999999"};
    char offer[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(offer, sizeof offer, "permessage-deflate; server_max_window_bits%s", bad[i]);
        DECLINES(offer);
        snprintf(offer, sizeof offer, "permessage-deflate; client_max_window_bits%s", bad[i]);
        if (bad[i][0])
            DECLINES(offer);
    }
}

static void test_autobahn_offers(void)
{
    /* 12.*, 13.1: PerMessageDeflateOffer() */
    const char *deflt = "permessage-deflate; client_no_context_takeover; client_max_window_bits";
    ACCEPTS(deflt, BASE, 15);
    /* 13.2: requestNoContextTakeover */
    ACCEPTS("permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover",
            BASE, 15);
    /* 13.3 / 13.4: requestMaxWindowBits 9 / 15 */
    ACCEPTS("permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=9",
            BASE "; server_max_window_bits=9", 9);
    ACCEPTS("permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=15",
            BASE "; server_max_window_bits=15", 15);
    /* 13.5 / 13.6: both */
    ACCEPTS("permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; "
            "server_max_window_bits=9",
            BASE "; server_max_window_bits=9", 9);
    ACCEPTS("permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; "
            "server_max_window_bits=15",
            BASE "; server_max_window_bits=15", 15);
    /* 13.7: three offers in one header; the first is taken. */
    ACCEPTS("permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; "
            "server_max_window_bits=9, permessage-deflate; client_no_context_takeover; client_max_window_bits; "
            "server_no_context_takeover, permessage-deflate; client_no_context_takeover; client_max_window_bits",
            BASE "; server_max_window_bits=9", 9);
    /* The brief's spelling, parameters in another order. */
    ACCEPTS("permessage-deflate; server_max_window_bits=9; client_max_window_bits", BASE "; server_max_window_bits=9",
            9);
}

static void test_declines(void)
{
    /* Unknown parameters. */
    DECLINES("permessage-deflate; foo");
    DECLINES("permessage-deflate; foo=1");
    DECLINES("permessage-deflate; client_max_window_bits; mux");
    DECLINES("permessage-deflate; server_no_context_takeovers");
    /* A parameter twice. */
    DECLINES("permessage-deflate; server_no_context_takeover; server_no_context_takeover");
    DECLINES("permessage-deflate; client_no_context_takeover; client_no_context_takeover");
    DECLINES("permessage-deflate; server_max_window_bits=9; server_max_window_bits=9");
    DECLINES("permessage-deflate; client_max_window_bits; client_max_window_bits=10");
    DECLINES("permessage-deflate; client_max_window_bits; CLIENT_MAX_WINDOW_BITS");
    /* *_no_context_takeover with a value. */
    DECLINES("permessage-deflate; server_no_context_takeover=1");
    DECLINES("permessage-deflate; client_no_context_takeover=true");
    DECLINES("permessage-deflate; client_no_context_takeover=\"x\"");
    /* Other extensions only, or nothing. */
    DECLINES("x-webkit-deflate-frame");
    DECLINES("permessage-deflate-x");
    DECLINES("deflate-frame; server_max_window_bits=10");
    DECLINES("");
    DECLINES(" , ,");
    CHECK_EQ(negotiate3(NULL, NULL, NULL), 0);
    CHECK_EQ(rc_pmd_negotiate(NULL, &params, resp, sizeof resp), 0);

    /* Declining one offer moves on to the next. */
    ACCEPTS("permessage-deflate; foo, permessage-deflate", BASE, 15);
    ACCEPTS("permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=10",
            BASE "; server_max_window_bits=10", 10);
    ACCEPTS("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", BASE, 15);
    ACCEPTS("permessage-foo; x=1; y=\"ab\", permessage-deflate", BASE, 15);
}

static void test_grammar(void)
{
    /* Names are case-insensitive; OWS around ; , = is fine; empty list
     * elements are skipped. */
    ACCEPTS("PerMessage-Deflate; Server_No_Context_Takeover; SERVER_MAX_WINDOW_BITS=10",
            BASE "; server_max_window_bits=10", 10);
    ACCEPTS("permessage-deflate ;server_max_window_bits = 12 ; client_max_window_bits",
            BASE "; server_max_window_bits=12", 12);
    ACCEPTS("permessage-deflate\t;\tserver_max_window_bits\t=\t\"13\"\t", BASE "; server_max_window_bits=13", 13);
    ACCEPTS(", , permessage-deflate ,", BASE, 15);
    ACCEPTS("permessage-deflate,,", BASE, 15);
}

/* A malformed header declines every offer in it, even one before the
 * fault; the next header is still read. */
static void test_malformed(void)
{
    static const char *bad[] = {
        "permessage-deflate;",
        "permessage-deflate; ",
        "permessage-deflate;; client_max_window_bits",
        "permessage-deflate; =9",
        "permessage-deflate; server_max_window_bits=",
        "permessage-deflate; server_max_window_bits= ;",
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate; server_max_window_bits=\"\"",
        "permessage-deflate; server_max_window_bits=\"1 0\"",
        "permessage-deflate; server_max_window_bits=10 10",
        "permessage-deflate; server_max_window_bits=10=10",
        "permessage-deflate; x=\"\\",
        "permessage-deflate; x=\"a\\\"",
        "permessage-deflate client_max_window_bits",
        "permessage deflate",
        "\"permessage-deflate\"",
        ";permessage-deflate",
        "=permessage-deflate",
        "permessage-deflate @",
        "permessage-deflate, @",
        "permessage-deflate, permessage-deflate;",
        "permessage-deflate; client_max_window_bits, permessage-deflate; x=\"",
        "permessage-deflate; \xff",
        "permessage-deflate\xc3\xa9",
        "permessage-deflate; client_max_window_bits\x01",
        "permessage-deflate;\r\n client_max_window_bits",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        DECLINES(bad[i]);
        int r = negotiate3(bad[i], "permessage-deflate; server_max_window_bits=11", NULL);
        CHECK_EQ(r, 1);
        CHECK(r == 1 && strcmp(resp, BASE "; server_max_window_bits=11") == 0);
    }
    /* A quoted value must unescape to a token (RFC 6455 §9.1), even in
     * another extension's parameter: otherwise the header is malformed. */
    DECLINES("x-foo; a=\"q\\\"\", permessage-deflate");
}

static void test_several_headers(void)
{
    int r = negotiate3("x-foo", "permessage-deflate; server_max_window_bits=12", NULL);
    CHECK(r == 1 && strcmp(resp, BASE "; server_max_window_bits=12") == 0);
    CHECK_EQ(params.server_max_window_bits, 12);

    r = negotiate3("permessage-deflate; server_max_window_bits=7", "x-foo", "permessage-deflate");
    CHECK(r == 1 && strcmp(resp, BASE) == 0);
    CHECK_EQ(params.server_max_window_bits, 15);

    r = negotiate3("permessage-deflate; server_max_window_bits=11", "permessage-deflate; server_max_window_bits=12",
                   NULL);
    CHECK(r == 1 && strcmp(resp, BASE "; server_max_window_bits=11") == 0);

    CHECK_EQ(negotiate3("x-foo", "permessage-deflate; foo", "permessage-deflate;"), 0);

    /* Header names are case-insensitive; other headers are not read. */
    memset(&req, 0, sizeof req);
    add_header("X-Extensions", "permessage-deflate");
    add_header("Sec-WebSocket-Extension", "permessage-deflate");
    CHECK_EQ(rc_pmd_negotiate(&req, &params, resp, sizeof resp), 0);
    add_header("sec-websocket-EXTENSIONS", "permessage-deflate; server_max_window_bits=10");
    CHECK_EQ(rc_pmd_negotiate(&req, &params, resp, sizeof resp), 1);
    CHECK_EQ(params.server_max_window_bits, 10);

    /* The value is read by length, not up to a NUL. */
    memset(&req, 0, sizeof req);
    add_header("Sec-WebSocket-Extensions", "permessage-deflate; foo");
    req.headers[0].value_len = strlen("permessage-deflate");
    CHECK_EQ(rc_pmd_negotiate(&req, &params, resp, sizeof resp), 1);
}

static void test_through_parser(void)
{
    static const char head[] = "GET /ws HTTP/1.1\r\n"
                               "Host: example.com\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n"
                               "sec-websocket-extensions:   permessage-deflate; client_max_window_bits;"
                               " server_max_window_bits=10  \r\n"
                               "\r\n";
    struct rc_http_limits lim = RC_HTTP_LIMITS_DEFAULT;
    static struct rc_http_request parsed;
    CHECK_EQ(rc_http_parse_request(head, sizeof head - 1, &lim, &parsed), (ssize_t)(sizeof head - 1));
    CHECK_EQ(rc_pmd_negotiate(&parsed, &params, resp, sizeof resp), 1);
    CHECK(strcmp(resp, BASE "; server_max_window_bits=10") == 0);
    CHECK_EQ(params.server_max_window_bits, 10);
}

static void test_response_buffer(void)
{
    negotiate("permessage-deflate");
    size_t need = strlen(BASE) + 1;
    char small[128];

    CHECK_EQ(rc_pmd_negotiate(&req, &params, small, need), 1);
    CHECK(strcmp(small, BASE) == 0);
    memset(small, 'x', sizeof small);
    CHECK_EQ(rc_pmd_negotiate(&req, &params, small, need - 1), 0);
    CHECK_EQ(small[0], '\0');
    CHECK_EQ(rc_pmd_negotiate(&req, &params, NULL, 0), 0);

    negotiate("permessage-deflate; server_max_window_bits=10");
    need = strlen(BASE "; server_max_window_bits=10") + 1;
    CHECK_EQ(rc_pmd_negotiate(&req, &params, small, need), 1);
    CHECK_EQ(rc_pmd_negotiate(&req, &params, small, need - 1), 0);
    CHECK_EQ(rc_pmd_negotiate(&req, NULL, small, need), 1); /* params optional */
}

/* Random headers from the grammar's alphabet: no crash, and an answer is
 * always one of the two shapes with a window in 8..15. */
static void test_random_headers(void)
{
    static const char *pieces[] = {"permessage-deflate", "server_no_context_takeover", "client_no_context_takeover",
                                   "server_max_window_bits", "client_max_window_bits", "x-foo", ";", ",", "=",
                                   " ", "\t", "\"", "\\", "8", "9", "10", "15", "16", "0", "\"10\"", "@", "\xff"};
    uint64_t state = 0x9E3779B97F4A7C15ULL;
    char value[512];
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0;
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        int count = (int)(state >> 59) + 1;
        for (int k = 0; k < count; k++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            const char *p = pieces[(state >> 33) % (sizeof pieces / sizeof pieces[0])];
            size_t len = strlen(p);
            if (n + len >= sizeof value)
                break;
            memcpy(value + n, p, len);
            n += len;
        }
        value[n] = '\0';
        int r = negotiate(value);
        CHECK(r == 0 || r == 1);
        if (r == 1) {
            accepted++;
            CHECK(strncmp(resp, BASE, strlen(BASE)) == 0);
            CHECK(params.server_max_window_bits >= 8 && params.server_max_window_bits <= 15);
        }
    }
    CHECK(accepted > 0);
}

int main(void)
{
    test_plain_offers();
    test_server_max_window_bits();
    test_autobahn_offers();
    test_declines();
    test_grammar();
    test_malformed();
    test_several_headers();
    test_through_parser();
    test_response_buffer();
    test_random_headers();
    RC_TEST_MAIN_END("test_pmd");
}
