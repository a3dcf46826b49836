/*
 * tests/unit/auth/test_auth.c — unit tests for src/auth/auth.c: the
 * constant-time comparison, token sets (single tokens, the comma-separated
 * env form, token files written to temporary files), '*' globs and glob
 * lists, and HS256 JWT verification.
 *
 * JWTs come from two sources: fixed vectors computed with Python's hmac
 * module (one of them RFC 7515 appendix A.1), so our HMAC is checked
 * against an independent implementation, and tokens made here with
 * wolfCrypt's HMAC for every rejection case. Tokens are verified from
 * exactly-sized heap copies so a read past the end shows under ASan.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "rc_test.h"
#include "ringcast/auth.h"

#define S(lit) (lit), (sizeof(lit) - 1)

/* ---- constant-time comparison ---- */

static void test_token_equal(void)
{
    CHECK(rc_token_equal(S("secret"), S("secret")));
    CHECK(!rc_token_equal(S("secret"), S("secreT")));
    CHECK(!rc_token_equal(S("secret"), S("Secret")));
    CHECK(!rc_token_equal(S("secret"), S("secret2")));
    CHECK(!rc_token_equal(S("secret2"), S("secret")));
    CHECK(!rc_token_equal(S("secret"), S("")));
    CHECK(!rc_token_equal(S(""), S("secret")));
    CHECK(rc_token_equal(S(""), S("")));
    CHECK(rc_token_equal(NULL, 0, NULL, 0));
    CHECK(!rc_token_equal(NULL, 0, S("x")));
    /* A NUL byte inside is compared like any other. */
    CHECK(!rc_token_equal(S("ab\0c"), S("ab\0d")));
    CHECK(rc_token_equal(S("ab\0c"), S("ab\0c")));
    /* Differences only past the shorter length still differ. */
    CHECK(!rc_token_equal(S("abc"), S("abc\0")));
}

/* ---- token sets ---- */

static void test_token_set_add(void)
{
    struct rc_token_set *ts = rc_token_set_new();
    CHECK(ts != NULL);
    CHECK_EQ(rc_token_set_count(ts), 0);
    CHECK(!rc_token_set_match(ts, S("")));
    CHECK(!rc_token_set_match(ts, S("x")));

    CHECK_EQ(rc_token_set_add(ts, S("alpha")), 0);
    CHECK_EQ(rc_token_set_add(ts, S("beta-2_x.Y~=+/")), 0);
    CHECK_EQ(rc_token_set_add(ts, S("alpha")), 0); /* duplicate: not added twice */
    CHECK_EQ(rc_token_set_count(ts), 2);

    CHECK_EQ(rc_token_set_add(ts, S("")), -EINVAL);
    CHECK_EQ(rc_token_set_add(ts, S("a b")), -EINVAL);
    CHECK_EQ(rc_token_set_add(ts, S("ab ")), -EINVAL);
    CHECK_EQ(rc_token_set_add(ts, S("a\tb")), -EINVAL);
    CHECK_EQ(rc_token_set_add(ts, S("a\rb")), -EINVAL);
    CHECK_EQ(rc_token_set_add(ts, S("a\nb")), -EINVAL);
    CHECK_EQ(rc_token_set_add(ts, S("a\x01" "b")), -EINVAL);
    CHECK_EQ(rc_token_set_add(ts, S("a\0b")), -EINVAL);
    CHECK_EQ(rc_token_set_add(ts, S("a\x7f")), -EINVAL);
    char big[RC_TOKEN_MAX + 1];
    memset(big, 'k', sizeof(big));
    CHECK_EQ(rc_token_set_add(ts, big, RC_TOKEN_MAX + 1), -EINVAL);
    CHECK_EQ(rc_token_set_add(ts, big, RC_TOKEN_MAX), 0);
    CHECK_EQ(rc_token_set_count(ts), 3);

    CHECK(rc_token_set_match(ts, S("alpha")));
    CHECK(rc_token_set_match(ts, S("beta-2_x.Y~=+/")));
    CHECK(rc_token_set_match(ts, big, RC_TOKEN_MAX));
    CHECK(!rc_token_set_match(ts, big, RC_TOKEN_MAX - 1));
    CHECK(!rc_token_set_match(ts, S("alph")));
    CHECK(!rc_token_set_match(ts, S("alphaa")));
    CHECK(!rc_token_set_match(ts, S("ALPHA")));
    CHECK(!rc_token_set_match(ts, S("")));
    CHECK(!rc_token_set_match(ts, NULL, 0));
    CHECK(!rc_token_set_match(NULL, S("alpha")));
    CHECK_EQ(rc_token_set_count(NULL), 0);
    rc_token_set_free(ts);
    rc_token_set_free(NULL);
}

static void test_token_set_list(void)
{
    struct rc_token_set *ts = rc_token_set_new();
    CHECK_EQ(rc_token_set_add_list(ts, "t1,t2, t3 ,\tt4"), 0);
    CHECK_EQ(rc_token_set_count(ts), 4);
    CHECK(rc_token_set_match(ts, S("t1")));
    CHECK(rc_token_set_match(ts, S("t3")));
    CHECK(rc_token_set_match(ts, S("t4")));
    CHECK(!rc_token_set_match(ts, S(" t3 ")));
    CHECK(!rc_token_set_match(ts, S("t1,t2")));

    /* Errors leave the set as it was. */
    CHECK_EQ(rc_token_set_add_list(ts, "n1,,n2"), -EINVAL);
    CHECK_EQ(rc_token_set_add_list(ts, "n1,n2,"), -EINVAL);
    CHECK_EQ(rc_token_set_add_list(ts, ",n1"), -EINVAL);
    CHECK_EQ(rc_token_set_add_list(ts, "n1, ,n2"), -EINVAL);
    CHECK_EQ(rc_token_set_add_list(ts, "n1,n 2"), -EINVAL);
    CHECK_EQ(rc_token_set_add_list(ts, ""), -EINVAL);
    CHECK_EQ(rc_token_set_add_list(ts, NULL), -EINVAL);
    CHECK_EQ(rc_token_set_count(ts), 4);
    CHECK(!rc_token_set_match(ts, S("n1")));

    CHECK_EQ(rc_token_set_add_list(ts, "single"), 0);
    CHECK_EQ(rc_token_set_count(ts), 5);
    CHECK(rc_token_set_match(ts, S("single")));
    rc_token_set_free(ts);
}

/* Writes data[0..n) to a fresh temporary file; its path into path[64]. */
static void temp_file(char path[64], const char *data, size_t n)
{
    strcpy(path, "/tmp/rc-test-auth-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, data, n) != (ssize_t)n) {
        perror("temp file");
        abort();
    }
    close(fd);
}

/* rc_token_set_load_file() of a temporary file holding the literal. */
static int load(struct rc_token_set *ts, const char *data, size_t n, char *err, size_t errcap)
{
    char path[64];
    temp_file(path, data, n);
    int rc = rc_token_set_load_file(ts, path, err, errcap);
    unlink(path);
    return rc;
}

#define LOAD(ts, lit, err) load((ts), (lit), sizeof(lit) - 1, (err), sizeof(err))

static void test_token_set_file(void)
{
    char err[256];
    struct rc_token_set *ts = rc_token_set_new();

    err[0] = '\0';
    CHECK_EQ(LOAD(ts, "# publishers\n\n  tokA  \r\ntokB\r\n\t# old: tokZ\n   \n\ttokC", err), 0);
    CHECK_EQ(rc_token_set_count(ts), 3);
    CHECK(rc_token_set_match(ts, S("tokA")));
    CHECK(rc_token_set_match(ts, S("tokB")));
    CHECK(rc_token_set_match(ts, S("tokC")));
    CHECK(!rc_token_set_match(ts, S("tokB\r")));
    CHECK(!rc_token_set_match(ts, S("tokZ")));
    CHECK(!rc_token_set_match(ts, S("# publishers")));
    CHECK(!rc_token_set_match(ts, S("# old: tokZ")));

    /* A UTF-8 BOM is skipped; a token repeated from before still counts. */
    CHECK_EQ(LOAD(ts, "\xEF\xBB\xBFtokD\n", err), 0);
    CHECK(rc_token_set_match(ts, S("tokD")));
    CHECK_EQ(LOAD(ts, "tokA\n", err), 0);
    CHECK_EQ(rc_token_set_count(ts), 4);

    /* No token at all. */
    err[0] = '\0';
    CHECK_EQ(LOAD(ts, "", err), -EINVAL);
    CHECK(strstr(err, "no token in /tmp/rc-test-auth-") != NULL);
    err[0] = '\0';
    CHECK_EQ(LOAD(ts, "# only a comment\n\n \r\n", err), -EINVAL);
    CHECK(strstr(err, "no token in") != NULL);

    /* A bad line: named by number, the token itself not quoted, the set
     * unchanged (tokE on line 1 is not kept). */
    err[0] = '\0';
    CHECK_EQ(LOAD(ts, "tokE\nbad token here\ntokF\n", err), -EINVAL);
    CHECK(strstr(err, ":2: ") != NULL);
    CHECK(strstr(err, "whitespace") != NULL);
    CHECK(strstr(err, "bad token") == NULL);
    CHECK(!rc_token_set_match(ts, S("tokE")));
    CHECK_EQ(rc_token_set_count(ts), 4);
    CHECK_EQ(LOAD(ts, "ok\nnul\0byte\n", err), -EINVAL);
    CHECK(strstr(err, ":2: ") != NULL);

    char big[RC_TOKEN_MAX + 3];
    memset(big, 'x', sizeof(big));
    big[RC_TOKEN_MAX + 1] = '\n';
    big[RC_TOKEN_MAX + 2] = '\0';
    CHECK_EQ(load(ts, big, RC_TOKEN_MAX + 2, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, ":1: ") != NULL && strstr(err, "512") != NULL);

    /* Unreadable: -errno and the path in the message. */
    err[0] = '\0';
    CHECK_EQ(rc_token_set_load_file(ts, "/nonexistent/rc-tokens", err, sizeof(err)), -ENOENT);
    CHECK(strstr(err, "cannot read /nonexistent/rc-tokens") != NULL);
    CHECK_EQ(rc_token_set_load_file(ts, "/tmp", err, sizeof(err)), -EISDIR);
    CHECK_EQ(rc_token_set_count(ts), 4);

    /* Error text is optional. */
    CHECK_EQ(rc_token_set_load_file(ts, "/nonexistent/rc-tokens", NULL, 0), -ENOENT);
    rc_token_set_free(ts);
}

static void test_token_set_file_too_big(void)
{
    size_t n = (1u << 20) + 1;
    char *data = malloc(n);
    if (data == NULL)
        abort();
    memset(data, '#', n);
    char err[256];
    struct rc_token_set *ts = rc_token_set_new();
    CHECK_EQ(load(ts, data, n, err, sizeof(err)), -EFBIG);
    CHECK_EQ(load(ts, data, n - 1, err, sizeof(err)), -EINVAL); /* 1 MiB of comment: no token */
    rc_token_set_free(ts);
    free(data);
}

/* ---- globs ---- */

#define GLOB(p, s) rc_glob_match(S(p), S(s))

static void test_glob(void)
{
    CHECK(GLOB("abc", "abc"));
    CHECK(!GLOB("abc", "abd"));
    CHECK(!GLOB("abc", "ab"));
    CHECK(!GLOB("abc", "abcd"));
    /* prefix, suffix, middle */
    CHECK(GLOB("orders:*", "orders:alice"));
    CHECK(GLOB("orders:*", "orders:"));
    CHECK(!GLOB("orders:*", "orders"));
    CHECK(!GLOB("orders:*", "xorders:alice"));
    CHECK(GLOB("*:alice", "orders:alice"));
    CHECK(!GLOB("*:alice", "orders:alice2"));
    CHECK(GLOB("orders:*:fills", "orders:alice:fills"));
    CHECK(GLOB("orders:*:fills", "orders::fills"));
    CHECK(!GLOB("orders:*:fills", "orders:alice:fill"));
    /* several stars, backtracking */
    CHECK(GLOB("*a*b*c*", "xxaxxbxxcxx"));
    CHECK(GLOB("a*b*c", "abc"));
    CHECK(GLOB("a*b*c", "aXbYbZc"));
    CHECK(!GLOB("a*b*c", "acb"));
    CHECK(GLOB("*ab", "aab"));
    CHECK(GLOB("*aab", "aaab"));
    CHECK(!GLOB("*aab", "aaba"));
    CHECK(GLOB("a**b", "ab"));
    CHECK(GLOB("a**b", "a**b"));
    /* '*' alone, empty strings */
    CHECK(GLOB("*", "anything"));
    CHECK(GLOB("*", "*"));
    CHECK(GLOB("*", ""));
    CHECK(GLOB("**", ""));
    CHECK(GLOB("", ""));
    CHECK(!GLOB("", "a"));
    CHECK(!GLOB("a", ""));
    CHECK(!GLOB("a*", ""));
    /* '*' in the subject is an ordinary byte; '?' and '[' are literal */
    CHECK(!GLOB("demo:*", "*"));
    CHECK(GLOB("a?c", "a?c"));
    CHECK(!GLOB("a?c", "abc"));
    CHECK(!GLOB("[ab]", "a"));
    /* lengths, not NULs, end both strings */
    CHECK(rc_glob_match(S("a*"), S("a\0b")));
    CHECK(!rc_glob_match("abc", 2, "abc", 3));

    /* A worst case finishes (O(n*m), no exponential backtracking). */
    static char subject[20000];
    memset(subject, 'a', sizeof(subject));
    CHECK(!rc_glob_match(S("*a*a*a*a*a*a*a*a*b"), subject, sizeof(subject)));
    CHECK(rc_glob_match(S("*a*a*a*a*a*a*a*a*"), subject, sizeof(subject)));
}

static void test_globs(void)
{
    struct rc_globs g;
    CHECK_EQ(rc_globs_parse(&g, "portfolio:*,orders:*"), 0);
    CHECK_EQ(g.n, 2);
    CHECK(g.n == 2 && strcmp(g.pat[0], "portfolio:*") == 0 && g.len[0] == 11);
    CHECK(g.n == 2 && strcmp(g.pat[1], "orders:*") == 0 && g.len[1] == 8);
    CHECK(rc_globs_match(&g, S("portfolio:alice")));
    CHECK(rc_globs_match(&g, S("orders:bob:1")));
    CHECK(!rc_globs_match(&g, S("demo:BTC")));
    CHECK(!rc_globs_match(&g, S("*")));
    rc_globs_free(&g);
    CHECK_EQ(g.n, 0);
    CHECK(g.pat == NULL);
    CHECK(!rc_globs_match(&g, S("x")));
    rc_globs_free(&g); /* twice is fine */

    CHECK_EQ(rc_globs_parse(&g, " a:* ,\tb "), 0);
    CHECK(rc_globs_match(&g, S("b")));
    CHECK(!rc_globs_match(&g, S(" b")));
    CHECK(rc_globs_match(&g, S("a:x")));
    rc_globs_free(&g);

    CHECK_EQ(rc_globs_parse(&g, "*"), 0);
    CHECK(rc_globs_match(&g, S("*")));
    CHECK(rc_globs_match(&g, S("anything")));
    rc_globs_free(&g);

    CHECK_EQ(rc_globs_parse(&g, "a,,b"), -EINVAL);
    CHECK(g.n == 0 && g.pat == NULL && g.len == NULL);
    CHECK_EQ(rc_globs_parse(&g, "a,"), -EINVAL);
    CHECK_EQ(rc_globs_parse(&g, " "), -EINVAL);
    CHECK_EQ(rc_globs_parse(&g, ""), -EINVAL);
    CHECK_EQ(rc_globs_parse(&g, NULL), -EINVAL);
    CHECK(g.n == 0);
    CHECK(!rc_globs_match(NULL, S("x")));
}

/* ---- JWT ---- */

static const char SECRET[] = "test-secret-0123456789";
static const int64_t NOW = 1700000000;

static void b64url(const void *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = abc[v >> 18];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = abc[v >> 6 & 63];
        out[o++] = abc[v & 63];
    }
    if (n - i == 1) {
        out[o++] = abc[p[i] >> 2];
        out[o++] = abc[(p[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
        out[o++] = abc[v >> 10];
        out[o++] = abc[v >> 4 & 63];
        out[o++] = abc[(v & 15) << 2];
    }
    out[o] = '\0';
}

/* header_b64.payload_b64.HMAC-SHA256(secret) into out (wolfCrypt). */
static void make_jwt(const char *header, const char *payload, const char *secret, char *out)
{
    b64url(header, strlen(header), out);
    strcat(out, ".");
    b64url(payload, strlen(payload), out + strlen(out));
    unsigned char mac[32];
    Hmac h;
    if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0 ||
        wc_HmacSetKey(&h, WC_SHA256, (const byte *)secret, (word32)strlen(secret)) != 0 ||
        wc_HmacUpdate(&h, (const byte *)out, (word32)strlen(out)) != 0 || wc_HmacFinal(&h, mac) != 0)
        abort();
    wc_HmacFree(&h);
    strcat(out, ".");
    b64url(mac, sizeof(mac), out + strlen(out));
}

static char last_err[256];

/* rc_jwt_verify() of an exactly-sized copy; claims kept in *out when
 * out is not NULL (else freed). */
static int verify_n(const char *tok, size_t len, const void *secret, size_t slen, int64_t now,
                    struct rc_claims **out)
{
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, tok, len);
    struct rc_claims *c = (struct rc_claims *)1;
    last_err[0] = '\0';
    int rc = rc_jwt_verify(copy, len, secret, slen, now, &c, last_err, sizeof(last_err));
    free(copy);
    if (rc < 0 && c != NULL) {
        fprintf(stderr, "claims not NULL on error\n");
        rc_test_failures++;
        c = NULL;
    }
    if (out != NULL)
        *out = c;
    else
        rc_claims_free(c);
    return rc;
}

static int verify(const char *tok, int64_t now)
{
    return verify_n(tok, strlen(tok), SECRET, strlen(SECRET), now, NULL);
}

static bool err_is(const char *want)
{
    if (strcmp(last_err, want) == 0)
        return true;
    fprintf(stderr, "  error was \"%s\", expected \"%s\"\n", last_err, want);
    return false;
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* Payload p signed with SECRET under the usual header: 0 or the error. */
static int verify_payload(const char *p)
{
    char tok[RC_JWT_MAX * 2];
    make_jwt(HS256, p, SECRET, tok);
    return verify(tok, NOW);
}

static void test_jwt_python_vectors(void)
{
    /* Python: hmac.new(b"python-secret", ...) over {"alg":"HS256","typ":"JWT"}
     * and {"sub":"alice","topics":["portfolio:alice","orders:alice:*"],"exp":4102444800}. */
    static const char tok[] =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiJhbGljZSIsInRvcGljcyI6WyJwb3J0Zm9saW86YWxpY2UiLCJvcmRlcnM6YWxpY2U6KiJdLCJleHAiOjQxMDI0NDQ4MDB9."
        "sz6pEiOYKOow6SkGRzUqE2RrRQiK85SLklMSrW6aV_0";
    struct rc_claims *c = NULL;
    CHECK_EQ(verify_n(S(tok), S("python-secret"), NOW, &c), 0);
    CHECK(c != NULL);
    CHECK_EQ(rc_claims_exp(c), 4102444800LL);
    CHECK(rc_claims_cover(c, S("portfolio:alice")));
    CHECK(rc_claims_cover(c, S("orders:alice:42")));
    CHECK(!rc_claims_cover(c, S("orders:bob:42")));
    CHECK(!rc_claims_cover(c, S("portfolio:bob")));
    CHECK(!rc_claims_cover(c, S("*")));
    rc_claims_free(c);
    CHECK_EQ(verify_n(S(tok), S("python-secreT"), NOW, NULL), -EINVAL);
    CHECK(err_is("bad signature"));
    CHECK_EQ(verify_n(S(tok), S("python-secret"), 4102444800LL, NULL), -EINVAL);
    CHECK(err_is("token expired"));

    /* RFC 7515 appendix A.1: a 64-byte key, a header with CR LF in it,
     * "exp":1300819380, no "topics". */
    static const unsigned char key[] = {
        0x03, 0x23, 0x35, 0x4b, 0x2b, 0x0f, 0xa5, 0xbc, 0x83, 0x7e, 0x06, 0x65, 0x77, 0x7b, 0xa6, 0x8f,
        0x5a, 0xb3, 0x28, 0xe6, 0xf0, 0x54, 0xc9, 0x28, 0xa9, 0x0f, 0x84, 0xb2, 0xd2, 0x50, 0x2e, 0xbf,
        0xd3, 0xfb, 0x5a, 0x92, 0xd2, 0x06, 0x47, 0xef, 0x96, 0x8a, 0xb4, 0xc3, 0x77, 0x62, 0x3d, 0x22,
        0x3d, 0x2e, 0x21, 0x72, 0x05, 0x2e, 0x4f, 0x08, 0xc0, 0xcd, 0x9a, 0xf5, 0x67, 0xd0, 0x80, 0xa3,
    };
    static const char rfc[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    CHECK_EQ(verify_n(S(rfc), key, sizeof(key), 1300819379, &c), 0);
    CHECK_EQ(rc_claims_exp(c), 1300819380);
    CHECK(!rc_claims_cover(c, S("*")));
    CHECK(!rc_claims_cover(c, S("x")));
    rc_claims_free(c);
    CHECK_EQ(verify_n(S(rfc), key, sizeof(key), 1300819380, NULL), -EINVAL);
    CHECK(err_is("token expired"));
    CHECK_EQ(verify_n(S(rfc), key, sizeof(key) - 1, 1300819379, NULL), -EINVAL);
    CHECK(err_is("bad signature"));
}

static void test_jwt_valid(void)
{
    char tok[1024];
    struct rc_claims *c = NULL;
    make_jwt(HS256, "{\"topics\":[\"portfolio:alice\",\"orders:alice:*\"],\"exp\":1700000060}", SECRET, tok);
    CHECK_EQ(verify_n(tok, strlen(tok), SECRET, strlen(SECRET), NOW, &c), 0);
    CHECK(rc_claims_cover(c, S("portfolio:alice")));
    CHECK(rc_claims_cover(c, S("orders:alice:")));
    CHECK(!rc_claims_cover(c, S("portfolio:alice2")));
    CHECK(!rc_claims_cover(c, S("*")));
    CHECK_EQ(rc_claims_exp(c), 1700000060);
    rc_claims_free(c);

    /* "typ" optional, nothing required in the payload. */
    make_jwt("{\"alg\":\"HS256\"}", "{}", SECRET, tok);
    CHECK_EQ(verify_n(tok, strlen(tok), SECRET, strlen(SECRET), NOW, &c), 0);
    CHECK_EQ(rc_claims_exp(c), 0);
    CHECK(!rc_claims_cover(c, S("x")));
    CHECK(!rc_claims_cover(c, S("*")));
    rc_claims_free(c);

    /* The firehose rule: "*" covers "*" and everything; other globs do not
     * cover "*". */
    make_jwt(HS256, "{\"topics\":[\"*\"]}", SECRET, tok);
    CHECK_EQ(verify_n(tok, strlen(tok), SECRET, strlen(SECRET), NOW, &c), 0);
    CHECK(rc_claims_cover(c, S("*")));
    CHECK(rc_claims_cover(c, S("portfolio:bob")));
    rc_claims_free(c);
    make_jwt(HS256, "{\"topics\":[\"demo:*\",\"*:x\",\"a*\"]}", SECRET, tok);
    CHECK_EQ(verify_n(tok, strlen(tok), SECRET, strlen(SECRET), NOW, &c), 0);
    CHECK(!rc_claims_cover(c, S("*")));
    CHECK(rc_claims_cover(c, S("demo:BTC")));
    rc_claims_free(c);
    make_jwt(HS256, "{\"topics\":[]}", SECRET, tok);
    CHECK_EQ(verify_n(tok, strlen(tok), SECRET, strlen(SECRET), NOW, &c), 0);
    CHECK(!rc_claims_cover(c, S("*")));
    rc_claims_free(c);
    CHECK(!rc_claims_cover(NULL, S("*")));
    CHECK_EQ(rc_claims_exp(NULL), 0);
    rc_claims_free(NULL);

    /* exp rounds down; nbf == now is valid; fractional times work. */
    make_jwt(HS256, "{\"exp\":1700000001.9,\"nbf\":1700000000,\"iat\":1}", SECRET, tok);
    CHECK_EQ(verify_n(tok, strlen(tok), SECRET, strlen(SECRET), NOW, &c), 0);
    CHECK_EQ(rc_claims_exp(c), 1700000001);
    rc_claims_free(c);
    make_jwt(HS256, "{\"exp\":1e300}", SECRET, tok);
    CHECK_EQ(verify_n(tok, strlen(tok), SECRET, strlen(SECRET), NOW, &c), 0);
    CHECK_EQ(rc_claims_exp(c), INT64_MAX);
    rc_claims_free(c);
}

static void test_jwt_signature(void)
{
    char tok[1024], other[1024];
    make_jwt(HS256, "{\"topics\":[\"a\"]}", SECRET, tok);
    CHECK_EQ(verify(tok, NOW), 0);

    /* Wrong secret. */
    CHECK_EQ(verify_n(tok, strlen(tok), S("test-secret-0123456788"), NOW, NULL), -EINVAL);
    CHECK(err_is("bad signature"));
    CHECK_EQ(verify_n(tok, strlen(tok), S("test-secret-012345678"), NOW, NULL), -EINVAL);
    CHECK(err_is("bad signature"));

    /* Tampered payload: another token's payload under this signature. */
    make_jwt(HS256, "{\"topics\":[\"*\"]}", SECRET, other);
    char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    char *o1 = strchr(other, '.'), *o2 = strrchr(other, '.');
    char forged[1024];
    snprintf(forged, sizeof(forged), "%.*s.%.*s%s", (int)(d1 - tok), tok, (int)(o2 - o1 - 1), o1 + 1, d2);
    CHECK_EQ(verify(forged, NOW), -EINVAL);
    CHECK(err_is("bad signature"));

    /* One flipped character of the payload (still valid base64url). */
    strcpy(forged, tok);
    forged[d1 - tok + 2] ^= 1;
    CHECK_EQ(verify(forged, NOW), -EINVAL);
    CHECK(strcmp(last_err, "bad signature") == 0 || strcmp(last_err, "malformed token") == 0);

    /* Truncated, empty or extended signature. */
    strcpy(forged, tok);
    forged[strlen(forged) - 3] = '\0'; /* 40 chars: 30 bytes */
    CHECK_EQ(verify(forged, NOW), -EINVAL);
    CHECK(err_is("bad signature"));
    snprintf(forged, sizeof(forged), "%.*s", (int)(d2 - tok + 1), tok);
    CHECK_EQ(verify(forged, NOW), -EINVAL);
    CHECK(err_is("bad signature"));
    snprintf(forged, sizeof(forged), "%sAAAA", tok);
    CHECK_EQ(verify(forged, NOW), -EINVAL);
    CHECK(err_is("bad signature"));

    /* An empty secret is refused, not used. */
    make_jwt(HS256, "{}", "", tok);
    CHECK_EQ(verify_n(tok, strlen(tok), "", 0, NOW, NULL), -EINVAL);
    CHECK(err_is("no JWT secret"));
}

static void test_jwt_alg(void)
{
    char tok[1024];
    static const char *const bad[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS384\"}",
        "{\"alg\":\"RS256\"}",
        "{\"alg\":\"hs256\"}",
        "{\"alg\":\"HS256 \"}",
        "{\"alg\":null}",
        "{\"alg\":256}",
        "{\"alg\":[\"HS256\"]}",
        "{\"ALG\":\"HS256\"}",
        "{\"typ\":\"JWT\"}",
        "{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        make_jwt(bad[i], "{}", SECRET, tok);
        CHECK_EQ(verify(tok, NOW), -EINVAL);
        CHECK(err_is("alg must be HS256"));
    }
    /* alg none with an empty signature, the classic forgery. */
    char h[128], p[128];
    b64url(S("{\"alg\":\"none\"}"), h);
    b64url(S("{\"topics\":[\"*\"]}"), p);
    snprintf(tok, sizeof(tok), "%s.%s.", h, p);
    CHECK_EQ(verify(tok, NOW), -EINVAL);
    CHECK(err_is("alg must be HS256"));

    /* Header duplicates and extensions. */
    make_jwt("{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}", SECRET, tok);
    CHECK_EQ(verify(tok, NOW), -EINVAL);
    CHECK(err_is("malformed token"));
    make_jwt("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", "{}", SECRET, tok);
    CHECK_EQ(verify(tok, NOW), -EINVAL);
    CHECK(err_is("unsupported \"crit\" header"));
    make_jwt("{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"at+jwt\"}", "{}", SECRET, tok);
    CHECK_EQ(verify(tok, NOW), 0);
    /* Not an object. */
    make_jwt("[\"HS256\"]", "{}", SECRET, tok);
    CHECK_EQ(verify(tok, NOW), -EINVAL);
    CHECK(err_is("malformed token"));
    make_jwt("{\"alg\":\"HS256\"", "{}", SECRET, tok);
    CHECK_EQ(verify(tok, NOW), -EINVAL);
    CHECK(err_is("malformed token"));
}

static void test_jwt_times(void)
{
    CHECK_EQ(verify_payload("{\"exp\":1699999999}"), -EINVAL);
    CHECK(err_is("token expired"));
    CHECK_EQ(verify_payload("{\"exp\":1700000000}"), -EINVAL); /* exp == now */
    CHECK(err_is("token expired"));
    CHECK_EQ(verify_payload("{\"exp\":0}"), -EINVAL);
    CHECK(err_is("token expired"));
    CHECK_EQ(verify_payload("{\"exp\":1700000001}"), 0);
    CHECK_EQ(verify_payload("{\"nbf\":1700000001}"), -EINVAL);
    CHECK(err_is("token not yet valid"));
    CHECK_EQ(verify_payload("{\"nbf\":1700000000}"), 0);
    CHECK_EQ(verify_payload("{\"nbf\":1699999999,\"exp\":1700000001}"), 0);
    CHECK_EQ(verify_payload("{\"exp\":\"1800000000\"}"), -EINVAL);
    CHECK(err_is("\"exp\" must be a number"));
    CHECK_EQ(verify_payload("{\"exp\":null}"), -EINVAL);
    CHECK(err_is("\"exp\" must be a number"));
    CHECK_EQ(verify_payload("{\"nbf\":true}"), -EINVAL);
    CHECK(err_is("\"nbf\" must be a number"));
    /* A second "exp" cannot override the first. */
    CHECK_EQ(verify_payload("{\"exp\":1800000000,\"exp\":1}"), -EINVAL);
    CHECK(err_is("malformed token"));
}

static void test_jwt_topics(void)
{
    CHECK_EQ(verify_payload("{\"topics\":\"portfolio:alice\"}"), -EINVAL);
    CHECK(err_is("\"topics\" must be an array of strings"));
    CHECK_EQ(verify_payload("{\"topics\":{\"a\":1}}"), -EINVAL);
    CHECK(err_is("\"topics\" must be an array of strings"));
    CHECK_EQ(verify_payload("{\"topics\":null}"), -EINVAL);
    CHECK(err_is("\"topics\" must be an array of strings"));
    CHECK_EQ(verify_payload("{\"topics\":[\"a\",1]}"), -EINVAL);
    CHECK(err_is("\"topics\" must be an array of strings"));
    CHECK_EQ(verify_payload("{\"topics\":[[\"a\"]]}"), -EINVAL);
    CHECK(err_is("\"topics\" must be an array of strings"));
    CHECK_EQ(verify_payload("{\"topics\":[\"a\",null]}"), -EINVAL);
    CHECK(err_is("\"topics\" must be an array of strings"));
    CHECK_EQ(verify_payload("{\"topics\":[\"\"]}"), -EINVAL);
    CHECK(err_is("\"topics\" entries must be 1 to 200 bytes"));
    CHECK_EQ(verify_payload("{\"topics\":[\"a\\u0000b\"]}"), -EINVAL);
    CHECK(err_is("malformed token"));
    CHECK_EQ(verify_payload("{\"topics\":[\"a\"],\"topics\":[\"*\"]}"), -EINVAL);
    CHECK(err_is("malformed token"));

    /* 200 bytes pass, 201 do not; 256 entries pass, 257 do not. */
    char p[4096];
    char t[RC_JWT_TOPIC_MAX + 2];
    memset(t, 'x', sizeof(t));
    t[RC_JWT_TOPIC_MAX] = '\0';
    snprintf(p, sizeof(p), "{\"topics\":[\"%s\"]}", t);
    CHECK_EQ(verify_payload(p), 0);
    t[RC_JWT_TOPIC_MAX] = 'x';
    t[RC_JWT_TOPIC_MAX + 1] = '\0';
    snprintf(p, sizeof(p), "{\"topics\":[\"%s\"]}", t);
    CHECK_EQ(verify_payload(p), -EINVAL);
    CHECK(err_is("\"topics\" entries must be 1 to 200 bytes"));

    size_t o = (size_t)snprintf(p, sizeof(p), "{\"topics\":[\"t\"");
    for (int i = 1; i < RC_JWT_TOPICS_MAX; i++)
        o += (size_t)snprintf(p + o, sizeof(p) - o, ",\"t%d\"", i);
    snprintf(p + o, sizeof(p) - o, "]}");
    struct rc_claims *c = NULL;
    char tok[RC_JWT_MAX * 2];
    make_jwt(HS256, p, SECRET, tok);
    CHECK_EQ(verify_n(tok, strlen(tok), SECRET, strlen(SECRET), NOW, &c), 0);
    CHECK(rc_claims_cover(c, S("t255")));
    CHECK(!rc_claims_cover(c, S("t256")));
    rc_claims_free(c);
    snprintf(p + o, sizeof(p) - o, ",\"t256\"]}");
    CHECK_EQ(verify_payload(p), -EINVAL);
    CHECK(err_is("\"topics\" has more than 256 entries"));

    /* UTF-8 topics pass; invalid UTF-8 in the payload does not. */
    CHECK_EQ(verify_payload("{\"topics\":[\"caf\xC3\xA9:*\"]}"), 0);
    CHECK_EQ(verify_payload("{\"topics\":[\"caf\xC3:*\"]}"), -EINVAL);
    CHECK(err_is("malformed token"));
}

static void test_jwt_malformed(void)
{
    char tok[RC_JWT_MAX * 2], bad[RC_JWT_MAX * 2];
    make_jwt(HS256, "{\"topics\":[\"a\"]}", SECRET, tok);
    CHECK_EQ(verify(tok, NOW), 0);
    char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');

    /* Three parts, no more, no fewer. */
    snprintf(bad, sizeof(bad), "%.*s", (int)(d2 - tok), tok);
    CHECK_EQ(verify(bad, NOW), -EINVAL);
    CHECK(err_is("malformed token"));
    snprintf(bad, sizeof(bad), "%s.", tok);
    CHECK_EQ(verify(bad, NOW), -EINVAL);
    CHECK(err_is("malformed token"));
    snprintf(bad, sizeof(bad), "%s.%s", tok, d2 + 1);
    CHECK_EQ(verify(bad, NOW), -EINVAL);
    CHECK(err_is("malformed token"));
    CHECK_EQ(verify("", NOW), -EINVAL);
    CHECK(err_is("malformed token"));
    CHECK_EQ(verify("..", NOW), -EINVAL);
    CHECK(err_is("malformed token"));
    CHECK_EQ(verify("abc", NOW), -EINVAL);
    CHECK(err_is("malformed token"));

    /* Padding, standard-alphabet bytes, spaces. */
    snprintf(bad, sizeof(bad), "%s=", tok);
    CHECK_EQ(verify(bad, NOW), -EINVAL);
    CHECK(err_is("malformed token"));
    snprintf(bad, sizeof(bad), "%.*s=%s", (int)(d1 - tok), tok, d1);
    CHECK_EQ(verify(bad, NOW), -EINVAL);
    CHECK(err_is("malformed token"));
    for (const char *sub = "+/ =%"; *sub; sub++) {
        strcpy(bad, tok);
        bad[d1 - tok + 3] = *sub;
        CHECK_EQ(verify(bad, NOW), -EINVAL);
        CHECK(err_is("malformed token"));
    }
    /* Signature of 32 bytes = 43 chars, the last holding 2 unused bits:
     * a non-canonical last character is refused, not decoded alike. */
    strcpy(bad, tok);
    char *last = bad + strlen(bad) - 1;
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(abc, *last) - abc);
    *last = abc[v | 1];
    if (v & 1)
        *last = abc[v & ~1];
    CHECK_EQ(verify(bad, NOW), -EINVAL);
    CHECK(err_is("malformed token"));
    /* A part of length 4k+1 cannot be base64. */
    snprintf(bad, sizeof(bad), "%s.%sAA.%s", "eyJhbGciOiJIUzI1NiJ9", "e30", d2 + 1);
    CHECK_EQ(verify(bad, NOW), -EINVAL);
    CHECK(err_is("malformed token"));

    /* Payload not a JSON object, or not strict JSON. */
    static const char *const payloads[] = { "[]", "\"x\"", "1", "", "{", "{} x", "{\"a\":01}", "{'a':1}" };
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        CHECK_EQ(verify_payload(payloads[i]), -EINVAL);
        CHECK(err_is("malformed token"));
    }

    /* The length cap: 8 KiB passes the cap (and the signature), a byte
     * more is refused before anything else. */
    char p[RC_JWT_MAX];
    size_t target = 0;
    for (size_t pad = 6200; pad > 5000; pad--) {
        snprintf(p, sizeof(p), "{\"x\":\"%0*d\"}", (int)pad, 0);
        make_jwt(HS256, p, SECRET, tok);
        if (strlen(tok) <= RC_JWT_MAX) {
            target = strlen(tok);
            break;
        }
    }
    CHECK(target > RC_JWT_MAX - 8 && target <= RC_JWT_MAX);
    CHECK_EQ(verify(tok, NOW), 0);
    snprintf(p, sizeof(p), "{\"x\":\"%0*d\"}", 6200, 0);
    make_jwt(HS256, p, SECRET, tok);
    CHECK(strlen(tok) > RC_JWT_MAX);
    CHECK_EQ(verify(tok, NOW), -EINVAL);
    CHECK(err_is("token longer than 8192 bytes"));

    /* err is optional. */
    struct rc_claims *c = (struct rc_claims *)1;
    CHECK_EQ(rc_jwt_verify(S("a.b"), S("k"), NOW, &c, NULL, 0), -EINVAL);
    CHECK(c == NULL);
}

int main(void)
{
    test_token_equal();
    test_token_set_add();
    test_token_set_list();
    test_token_set_file();
    test_token_set_file_too_big();
    test_glob();
    test_globs();
    test_jwt_python_vectors();
    test_jwt_valid();
    test_jwt_signature();
    test_jwt_alg();
    test_jwt_times();
    test_jwt_topics();
    test_jwt_malformed();
    RC_TEST_MAIN_END("test_auth");
}
