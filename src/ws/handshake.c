/*
 * handshake.c — the server side of the RFC 6455 opening handshake (§4.2):
 * request validation, Sec-WebSocket-Accept, and the SHA-1 and base64 it
 * needs.
 *
 * Place in the data flow: the router in src/net parses a request head with
 * rc_http_parse_request(), asks rc_ws_handshake_check() whether it is a
 * valid upgrade, and answers 101 with rc_ws_accept_key() (or the negated
 * status returned).
 *
 * Owns nothing; struct rc_ws_handshake points into the request's buffer.
 * No allocation, no global state: any thread may call these functions.
 */
#include <string.h>

#include "ringcast/ws.h"

/* ---- SHA-1 (FIPS 180-4 §6.1) ---- */

struct sha1_ctx {
    uint32_t h[5];
    uint64_t total; /* bytes hashed so far */
    uint8_t block[64];
    size_t used; /* bytes pending in block */
};

static uint32_t rol32(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_compress(uint32_t h[5], const uint8_t block[64])
{
    uint32_t w[80];

    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)block[4 * t] << 24 | (uint32_t)block[4 * t + 1] << 16 |
               (uint32_t)block[4 * t + 2] << 8 | (uint32_t)block[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);

    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t tmp = rol32(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1_init(struct sha1_ctx *ctx)
{
    static const uint32_t iv[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};

    memcpy(ctx->h, iv, sizeof iv);
    ctx->total = 0;
    ctx->used = 0;
}

static void sha1_update(struct sha1_ctx *ctx, const void *data, size_t len)
{
    const uint8_t *p = data;

    ctx->total += len;
    while (len > 0) {
        size_t take = 64 - ctx->used < len ? 64 - ctx->used : len;
        memcpy(ctx->block + ctx->used, p, take);
        ctx->used += take;
        p += take;
        len -= take;
        if (ctx->used == 64) {
            sha1_compress(ctx->h, ctx->block);
            ctx->used = 0;
        }
    }
}

static void sha1_final(struct sha1_ctx *ctx, uint8_t out[20])
{
    uint64_t bits = ctx->total * 8;
    uint8_t pad[72] = {0x80};
    /* 0x80, zeros up to 56 mod 64, then the 64-bit big-endian bit count. */
    size_t pad_len = ctx->used < 56 ? 56 - ctx->used : 120 - ctx->used;

    for (size_t i = 0; i < 8; i++)
        pad[pad_len + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_update(ctx, pad, pad_len + 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(ctx->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(ctx->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(ctx->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)ctx->h[i];
    }
}

void rc_sha1(const void *data, size_t len, uint8_t out[20])
{
    struct sha1_ctx ctx;

    sha1_init(&ctx);
    sha1_update(&ctx, data, len);
    sha1_final(&ctx, out);
}

/* ---- base64 (RFC 4648 §4) ---- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t rc_base64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t o = 0, i = 0;

    for (; len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    return o;
}

/* Value of one alphabet character, or -1. */
static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/*
 * Strict: whole quanta only, '=' only as the last one or two characters of
 * the input, no whitespace, and the bits a padded quantum leaves unused must
 * be zero (RFC 4648 §3.5), so every byte string has exactly one accepted
 * encoding.
 */
ssize_t rc_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    size_t o = 0;

    if (len % 4 != 0)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        size_t pad = 0;
        if (last && in[i + 3] == '=')
            pad = in[i + 2] == '=' ? 2 : 1;

        int v[4] = {0, 0, 0, 0};
        for (size_t k = 0; k < 4 - pad; k++) {
            v[k] = b64_value(in[i + k]);
            if (v[k] < 0)
                return -1;
        }
        uint32_t bits = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                        (uint32_t)v[3];
        if ((pad == 1 && (bits & 0xFF)) || (pad == 2 && (bits & 0xFFFF)))
            return -1;

        size_t n = 3 - pad;
        if (cap - o < n)
            return -1;
        out[o++] = (uint8_t)(bits >> 16);
        if (n > 1)
            out[o++] = (uint8_t)(bits >> 8);
        if (n > 2)
            out[o++] = (uint8_t)bits;
    }
    return (ssize_t)o;
}

/* ---- the handshake ---- */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void rc_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    struct sha1_ctx ctx;
    uint8_t digest[20];

    sha1_init(&ctx);
    sha1_update(&ctx, key, key_len);
    sha1_update(&ctx, WS_GUID, sizeof WS_GUID - 1);
    sha1_final(&ctx, digest);
    out[rc_base64_encode(digest, sizeof digest, out)] = '\0';
}

static bool name_eq(const struct rc_http_header *h, const char *name)
{
    size_t n = strlen(name);

    if (h->name_len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)h->name[i], b = (unsigned char)name[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

int rc_ws_handshake_check(const struct rc_http_request *req, struct rc_ws_handshake *hs)
{
    if (!rc_http_slice_eq(req->method, req->method_len, "GET"))
        return -405;
    if (req->minor_version < 1)
        return -400;
    if (!rc_http_find_header(req, "Host"))
        return -400;
    if (!rc_http_header_has_token(req, "Upgrade", "websocket"))
        return -426;
    if (!rc_http_header_has_token(req, "Connection", "upgrade"))
        return -400;

    /* Every Sec-WebSocket-Version header must say 13 (a client offering
     * several versions in one request is not speaking RFC 6455). */
    bool have_version = false;
    const struct rc_http_header *key = NULL;
    size_t key_count = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct rc_http_header *h = &req->headers[i];
        if (name_eq(h, "Sec-WebSocket-Version")) {
            if (!rc_http_slice_eq(h->value, h->value_len, "13"))
                return -426;
            have_version = true;
        } else if (name_eq(h, "Sec-WebSocket-Key")) {
            key = h;
            key_count++;
        }
    }
    if (!have_version)
        return -426;

    uint8_t nonce[16];
    if (key_count != 1 || rc_base64_decode(key->value, key->value_len, nonce, sizeof nonce) != 16)
        return -400;
    if (req->content_length > 0 || req->chunked)
        return -400;

    hs->key = key->value;
    hs->key_len = key->value_len;
    return 0;
}
