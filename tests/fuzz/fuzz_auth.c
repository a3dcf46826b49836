/*
 * tests/fuzz/fuzz_auth.c — libFuzzer driver for the client-token path
 * (src/auth/auth.c): what a WebSocket upgrade's ?token= hands the server.
 * Each input is used three ways; abort()s on any broken promise:
 *   raw:    the bytes as a token: rc_jwt_verify never succeeds without
 *           the right signature (the secret is not in the input's reach),
 *           and its reason is short printable ASCII (it goes to the client
 *           in a 401 body);
 *   signed: the input split at its first NUL into a header and a payload,
 *           base64url-encoded and signed with the secret, so the JSON and
 *           claims checks are reached: success only with "HS256" in the
 *           header, and claims that can be asked and freed;
 *   glob:   the input split at its first NUL into a glob and a string:
 *           rc_glob_match agrees with a naive recursive matcher on short
 *           inputs; a token set holding the first part matches the second
 *           exactly when the two are equal.
 * ASan/UBSan catch reads past the input and LeakSanitizer any leak.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "ringcast/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                  \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_auth: %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static const char secret[] = "fuzz-secret";

static size_t b64url(const uint8_t *in, size_t n, char *out) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[k++] = a[v >> 18 & 63];
        out[k++] = a[v >> 12 & 63];
        if (i + 1 < n) out[k++] = a[v >> 6 & 63];
        if (i + 2 < n) out[k++] = a[v & 63];
    }
    return k;
}

static void reason_ok(const char *err) {
    size_t n = strlen(err);
    REQUIRE(n > 0 && n < 120);
    for (size_t i = 0; i < n; i++) REQUIRE(err[i] >= 0x20 && err[i] < 0x7f);
}

static int naive(const char *p, size_t pl, const char *s, size_t sl) {
    if (!pl) return !sl;
    if (*p == '*') return naive(p + 1, pl - 1, s, sl) || (sl && naive(p, pl, s + 1, sl - 1));
    return sl && *p == *s && naive(p + 1, pl - 1, s + 1, sl - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[128];
    struct rc_claims *cl = NULL;

    /* raw */
    err[0] = 0;
    int r = rc_jwt_verify((const char *)data, size, secret, sizeof secret - 1, 1700000000, &cl, err, sizeof err);
    REQUIRE(r < 0 && cl == NULL);
    reason_ok(err);

    const uint8_t *nul = memchr(data, 0, size);
    size_t a = nul ? (size_t)(nul - data) : size, b = nul ? size - a - 1 : 0;
    const uint8_t *second = nul ? nul + 1 : data + size;

    /* glob */
    if (a <= 12 && b <= 12)
        REQUIRE(rc_glob_match((const char *)data, a, (const char *)second, b) ==
                naive((const char *)data, a, (const char *)second, b));
    struct rc_token_set *ts = rc_token_set_new();
    if (ts && rc_token_set_add(ts, (const char *)data, a) == 0) {
        REQUIRE(rc_token_set_match(ts, (const char *)data, a));
        bool same = a == b && !memcmp(data, second, a);
        REQUIRE(rc_token_set_match(ts, (const char *)second, b) == same);
    }
    rc_token_set_free(ts);

    /* signed */
    if (size > 4096) return 0;
    char *tok = malloc(2 * size + 64);
    if (!tok) return 0;
    size_t k = b64url(data, a, tok);
    tok[k++] = '.';
    k += b64url(second, b, tok + k);
    Hmac h;
    uint8_t mac[32];
    REQUIRE(wc_HmacInit(&h, NULL, INVALID_DEVID) == 0);
    REQUIRE(wc_HmacSetKey(&h, WC_SHA256, (const uint8_t *)secret, sizeof secret - 1) == 0);
    REQUIRE(wc_HmacUpdate(&h, (const uint8_t *)tok, (word32)k) == 0);
    REQUIRE(wc_HmacFinal(&h, mac) == 0);
    wc_HmacFree(&h);
    tok[k++] = '.';
    k += b64url(mac, sizeof mac, tok + k);
    err[0] = 0;
    r = rc_jwt_verify(tok, k, secret, sizeof secret - 1, 1700000000, &cl, err, sizeof err);
    if (r == 0) {
        REQUIRE(cl != NULL);
        REQUIRE(memmem(data, a, "HS256", 5) != NULL);
        size_t tl = b < 8 ? b : 8;
        (void)rc_claims_cover(cl, (const char *)second, tl);
        (void)rc_claims_exp(cl);
        rc_claims_free(cl);
    } else {
        REQUIRE(cl == NULL);
        reason_ok(err);
    }
    free(tok);
    return 0;
}
