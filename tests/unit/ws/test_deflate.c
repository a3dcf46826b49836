/*
 * test_deflate.c — src/ws/deflate.c: permessage-deflate payloads.
 *
 * The reference receiver is plain zlib: inflateInit2(-window_bits), payload
 * + 00 00 FF FF, exactly what RFC 7692 §7.2.2 tells a receiver to do. A
 * zlib stream created with a window of 2^w rejects any reference further
 * back than 2^w ("invalid distance too far back"), so inflating our output
 * with it proves the window was honoured. When python3 / node are on PATH,
 * the same payloads also go through Python's zlib, Node's zlib and the
 * permessage-deflate code of Node's ws package (a real client library).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "rc_test.h"
#include "ringcast/pmd.h"

static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

/* ---- inputs ---------------------------------------------------------------- */

static uint64_t rng_state = 0x243F6A8885A308D3ULL;

static uint32_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

enum kind { KIND_JSON, KIND_RANDOM, KIND_ZEROS, KIND_FAR_REPEAT, NKINDS };

/* Market-data-like JSON, incompressible bytes, zeros, or 700 random bytes
 * repeated (matches at distance 700: beyond a 512-byte window). */
static void fill(uint8_t *p, size_t len, enum kind k)
{
    size_t i = 0;
    switch (k) {
    case KIND_JSON:
        while (i < len) {
            char rec[96];
            int n = snprintf(rec, sizeof rec, "{\"p\":%u.%02u,\"q\":0.%04u,\"side\":\"%s\"},",
                             64000 + rng() % 500, rng() % 100, rng() % 10000, rng() & 1 ? "buy" : "sell");
            for (int j = 0; j < n && i < len; j++)
                p[i++] = (uint8_t)rec[j];
        }
        break;
    case KIND_RANDOM:
        for (; i < len; i++)
            p[i] = (uint8_t)rng();
        break;
    case KIND_ZEROS:
        memset(p, 0, len);
        break;
    case KIND_FAR_REPEAT:
        for (; i < len; i++)
            p[i] = i < 700 ? (uint8_t)rng() : p[i - 700];
        break;
    case NKINDS:
        break;
    }
}

/* ---- the reference receiver ------------------------------------------------ */

/*
 * zlib inflate of payload + 00 00 FF FF with a 2^window_bits window into
 * out[0..cap). Returns the length, or -1 on any error (incl. too long).
 *
 * zlib checks a distance against what it can still see: its window plus the
 * output of the current call. With a large output buffer a 512-byte window
 * would never be exceeded, so for window_bits < 15 the output is taken one
 * byte per call: then every reference is served from the window, and one
 * further back than 2^window_bits is an error.
 */
static long ref_inflate(const uint8_t *payload, size_t plen, int window_bits, uint8_t *out, size_t cap)
{
    z_stream zs = {0};
    long ret = -1;
    int rc = Z_OK;
    bool strict = window_bits < 15;
    if (inflateInit2(&zs, -window_bits) != Z_OK)
        return -1;
    zs.next_out = out;
    zs.next_in = (Bytef *)(uintptr_t)payload;
    zs.avail_in = (uInt)plen;
    for (int part = 0; part < 2 && rc != Z_STREAM_END; part++) {
        if (part == 1) {
            zs.next_in = (Bytef *)(uintptr_t)tail;
            zs.avail_in = 4;
        }
        for (;;) {
            size_t room = cap - (size_t)(zs.next_out - out);
            zs.avail_out = (uInt)(strict && room > 1 ? 1 : room);
            uInt before = zs.avail_out;
            rc = inflate(&zs, Z_SYNC_FLUSH);
            if (rc != Z_OK || zs.avail_out == before || room == 0)
                break;
        }
        if (rc != Z_OK && rc != Z_STREAM_END && !(rc == Z_BUF_ERROR && zs.avail_in == 0))
            break;
    }
    size_t n = (size_t)(zs.next_out - out);
    if ((rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR) && n < cap)
        ret = (long)n;
    inflateEnd(&zs);
    return ret;
}

/* A zlib sender: raw deflate, Z_SYNC_FLUSH (tail removed) or Z_FINISH. */
static size_t zlib_deflate(const uint8_t *in, size_t len, uint8_t *out, size_t cap, int level, int wbits,
                           int flush, const uint8_t *dict, size_t dict_len)
{
    z_stream zs = {0};
    if (deflateInit2(&zs, level, Z_DEFLATED, -wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    if (dict && deflateSetDictionary(&zs, dict, (uInt)dict_len) != Z_OK)
        abort();
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, flush);
    if ((flush == Z_FINISH && rc != Z_STREAM_END) || (flush != Z_FINISH && rc != Z_OK) || zs.avail_in)
        abort();
    size_t n = cap - zs.avail_out;
    deflateEnd(&zs);
    if (flush == Z_SYNC_FLUSH) {
        if (n < 4 || memcmp(out + n - 4, tail, 4) != 0)
            abort();
        n -= 4;
    }
    return n;
}

/* ---- compression: round trips --------------------------------------------- */

static const int levels[] = {1, 2, 3, 4, 6, 9, 12};
#define NLEVELS (sizeof levels / sizeof levels[0])
static struct rc_deflater *deflaters[NLEVELS];
static struct rc_inflater *inflater;

static void check_round_trip(struct rc_deflater *d, const uint8_t *in, size_t len, unsigned wbits,
                             const char *what)
{
    size_t bound = rc_deflate_bound(len);
    uint8_t *payload = malloc(bound);
    uint8_t *back = malloc(len + 1);
    if (!payload || !back)
        abort();

    ssize_t n = rc_deflate_message(d, in, len, payload, bound, wbits);
    CHECK(n > 0 && (size_t)n <= bound);
    if (n > 0) {
        long r = ref_inflate(payload, (size_t)n, (int)wbits, back, len + 1);
        CHECK_EQ(r, (long)len);
        CHECK(r == (long)len && memcmp(back, in, len) == 0);
        ssize_t m = rc_inflate_message(inflater, payload, (size_t)n, back, len);
        CHECK_EQ(m, (ssize_t)len);
        CHECK(m == (ssize_t)len && memcmp(back, in, len) == 0);
        if (r != (long)len || m != (ssize_t)len)
            fprintf(stderr, "  (%s, %zu bytes, window %u: ref %ld, ours %zd)\n", what, len, wbits, r, m);
    }
    free(payload);
    free(back);
}

static void test_round_trips(void)
{
    static const size_t sizes[] = {0,    1,    2,     3,     100,   255,   256,   257,   511,  512,
                                   513,  1000, 4096,  16384, 32768, 32769, 65535, 65536, 65537, 100000};
    static const unsigned windows[] = {8, 9, 12, 15};
    static const char *kind_names[] = {"json", "random", "zeros", "far-repeat"};
    uint8_t *in = malloc(100000);
    if (!in)
        abort();
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int k = 0; k < NKINDS; k++) {
            fill(in, sizes[s], (enum kind)k);
            for (size_t l = 0; l < NLEVELS; l++)
                for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++)
                    check_round_trip(deflaters[l], in, sizes[s], windows[w], kind_names[k]);
        }
    free(in);

    /* 1 MiB, the two levels a deployment would use. */
    size_t big = 1 << 20;
    in = malloc(big);
    if (!in)
        abort();
    for (int k = 0; k < NKINDS; k++) {
        fill(in, big, (enum kind)k);
        for (unsigned w = 9; w <= 15; w += 6) {
            check_round_trip(deflaters[0], in, big, w, kind_names[k]); /* level 1: ISA-L */
            check_round_trip(deflaters[4], in, big, w, kind_names[k]); /* level 6: libdeflate */
        }
    }
    free(in);
}

/* The window test has teeth: with a 32 KiB window the far-repeat input is
 * compressed with references 700 bytes back, which a 512-byte zlib window
 * rejects; with window_bits 9 it is not. */
static void test_window_is_honoured(void)
{
    uint8_t in[4200], payload[8192], back[4300];
    fill(in, sizeof in, KIND_FAR_REPEAT);
    for (size_t l = 0; l < NLEVELS; l++) {
        ssize_t wide = rc_deflate_message(deflaters[l], in, sizeof in, payload, sizeof payload, 15);
        CHECK(wide > 0 && wide < 1500); /* the repeats were found */
        CHECK_EQ(ref_inflate(payload, (size_t)wide, 15, back, sizeof back), (long)sizeof in);
        CHECK_EQ(ref_inflate(payload, (size_t)wide, 9, back, sizeof back), -1);

        ssize_t narrow = rc_deflate_message(deflaters[l], in, sizeof in, payload, sizeof payload, 9);
        CHECK(narrow > wide);
        CHECK_EQ(ref_inflate(payload, (size_t)narrow, 9, back, sizeof back), (long)sizeof in);
        CHECK(memcmp(back, in, sizeof in) == 0);
        narrow = rc_deflate_message(deflaters[l], in, sizeof in, payload, sizeof payload, 8);
        CHECK_EQ(ref_inflate(payload, (size_t)narrow, 8, back, sizeof back), (long)sizeof in);
    }
    /* A message no longer than the window needs no special care. */
    ssize_t n = rc_deflate_message(deflaters[4], in, 512, payload, sizeof payload, 9);
    CHECK_EQ(ref_inflate(payload, (size_t)n, 9, back, sizeof back), 512);
}

static void test_framing(void)
{
    uint8_t out[256], back[256];
    const char *hello = "Hello";

    /* The empty message is the single byte 0x00 (§7.2.3.6). */
    for (size_t l = 0; l < NLEVELS; l++) {
        CHECK_EQ(rc_deflate_message(deflaters[l], "", 0, out, sizeof out, 15), 1);
        CHECK_EQ(out[0], 0x00);
    }
    CHECK_EQ(rc_deflate_message(deflaters[0], NULL, 0, out, 1, 15), 1);

    /* ISA-L levels end with a sync flush (tail removed): the last byte of a
     * non-empty payload is whatever precedes 00 00 FF FF. libdeflate levels
     * end with a BFINAL block plus 0x00: BFINAL (bit 0) is set in the first
     * byte of the one-block output for a short message. */
    uint8_t json[200];
    fill(json, sizeof json, KIND_JSON);
    ssize_t n = rc_deflate_message(deflaters[0], json, sizeof json, out, sizeof out, 15);
    CHECK(n > 0 && n < 150 && (out[0] & 1) == 0);
    n = rc_deflate_message(deflaters[4], json, sizeof json, out, sizeof out, 15);
    CHECK(n > 1 && n < 150 && (out[0] & 1) == 1 && out[n - 1] == 0x00);
    CHECK_EQ(ref_inflate(out, (size_t)n, 15, back, sizeof back), sizeof json);
    CHECK(memcmp(back, json, sizeof json) == 0);
    /* "Hello" compresses to no less than the 11 bytes of a stored block. */
    n = rc_deflate_message(deflaters[4], hello, 5, out, sizeof out, 15);
    CHECK_EQ(n, 11);
    CHECK_MEM(out, "\x00\x05\x00\xfa\xffHello\x00", 11);

    /* Never longer than the message in stored blocks. */
    CHECK_EQ(rc_deflate_bound(0), 1);
    CHECK_EQ(rc_deflate_bound(1), 7);
    CHECK_EQ(rc_deflate_bound(65535), 65535 + 6);
    CHECK_EQ(rc_deflate_bound(65536), 65536 + 11);
}

static void test_deflate_errors(void)
{
    uint8_t in[3000], out[4000];
    fill(in, sizeof in, KIND_RANDOM);
    struct rc_deflater *d = deflaters[0];

    CHECK_EQ(rc_deflate_message(d, in, 10, out, sizeof out, 7), -EINVAL);
    CHECK_EQ(rc_deflate_message(d, in, 10, out, sizeof out, 16), -EINVAL);
    CHECK_EQ(rc_deflate_message(NULL, in, 10, out, sizeof out, 15), -EINVAL);
    CHECK_EQ(rc_deflate_message(d, NULL, 10, out, sizeof out, 15), -EINVAL);
    CHECK_EQ(rc_deflate_message(d, in, 10, NULL, sizeof out, 15), -EINVAL);
    CHECK_EQ(rc_deflate_message(d, "", 0, out, 0, 15), -ENOSPC);

    /* Incompressible data needs the whole bound; one byte less fails. */
    for (size_t l = 0; l < NLEVELS; l++) {
        size_t bound = rc_deflate_bound(sizeof in);
        CHECK_EQ(rc_deflate_message(deflaters[l], in, sizeof in, out, bound - 1, 15), -ENOSPC);
        CHECK_EQ(rc_deflate_message(deflaters[l], in, sizeof in, out, bound, 15), (ssize_t)bound);
        CHECK_EQ(rc_deflate_message(deflaters[l], in, sizeof in, out, 0, 15), -ENOSPC);
    }
    /* Compressible data fits in less than the bound. */
    fill(in, sizeof in, KIND_JSON);
    ssize_t n = rc_deflate_message(deflaters[4], in, sizeof in, out, 1200, 15);
    CHECK(n > 0 && n < 1200);

    /* Levels out of range are clamped, not refused. */
    struct rc_deflater *low = rc_deflater_create(-5), *high = rc_deflater_create(99);
    CHECK(low != NULL && high != NULL);
    CHECK(rc_deflate_message(low, in, sizeof in, out, sizeof out, 15) > 0);
    CHECK(rc_deflate_message(high, in, sizeof in, out, sizeof out, 15) > 0);
    rc_deflater_destroy(low);
    rc_deflater_destroy(high);
    rc_deflater_destroy(NULL);
}

/* ---- inflation ---------------------------------------------------------------- */

static ssize_t inflate_hex(const char *hex, uint8_t *out, size_t cap)
{
    uint8_t buf[64];
    size_t n = 0;
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        if (sscanf(p, "%2x", &v) != 1)
            abort();
        buf[n++] = (uint8_t)v;
        p += 2;
    }
    return rc_inflate_message(inflater, buf, n, out, cap);
}

static void test_inflate_rfc_examples(void)
{
    uint8_t out[64];

    /* §7.2.3.1: a sync-flushed "Hello", tail removed. */
    CHECK_EQ(inflate_hex("f2 48 cd c9 c9 07 00", out, sizeof out), 5);
    CHECK_MEM(out, "Hello", 5);
    /* §7.2.3.2: the second "Hello" refers to the first message: without
     * context takeover that reference has nothing to point at. */
    CHECK_EQ(inflate_hex("f2 00 11 00 00", out, sizeof out), -EINVAL);
    /* §7.2.3.3: a stored block. */
    CHECK_EQ(inflate_hex("00 05 00 fa ff 48 65 6c 6c 6f 00", out, sizeof out), 5);
    CHECK_MEM(out, "Hello", 5);
    /* §7.2.3.4: a BFINAL block followed by 0x00. */
    CHECK_EQ(inflate_hex("f3 48 cd c9 c9 07 00 00", out, sizeof out), 5);
    CHECK_MEM(out, "Hello", 5);
    /* §7.2.3.5: two blocks, the first sync-flushed. */
    CHECK_EQ(inflate_hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00", out, sizeof out), 5);
    CHECK_MEM(out, "Hello", 5);
    /* §7.2.3.6: an empty message (or fragment). */
    CHECK_EQ(inflate_hex("00", out, sizeof out), 0);
}

static void test_inflate_endings(void)
{
    uint8_t out[64];

    /* BFINAL endings: bare, +0x00, an empty final stored block (its 00 00 FF
     * FF removed, or kept). */
    CHECK_EQ(inflate_hex("f3 48 cd c9 c9 07 00", out, sizeof out), 5);
    CHECK_EQ(inflate_hex("01", out, sizeof out), 0);
    CHECK_EQ(inflate_hex("01 00 00 ff ff", out, sizeof out), 0);
    CHECK_EQ(inflate_hex("03 00", out, sizeof out), 0); /* empty fixed final block */
    /* Anything else after the final block. */
    CHECK_EQ(inflate_hex("f3 48 cd c9 c9 07 00 00 00", out, sizeof out), -EINVAL);
    CHECK_EQ(inflate_hex("f3 48 cd c9 c9 07 00 01", out, sizeof out), -EINVAL);
    CHECK_EQ(inflate_hex("f3 48 cd c9 c9 07 00 ff", out, sizeof out), -EINVAL);
    CHECK_EQ(inflate_hex("f3 48 cd c9 c9 07 00 00 00 00 ff ff", out, sizeof out), -EINVAL);
    CHECK_EQ(inflate_hex("f3 48 cd c9 c9 07 00 f3 48 cd c9 c9 07 00", out, sizeof out), -EINVAL);
    /* A sync-flushed message whose 00 00 FF FF was not removed: the
     * appended tail then starts a block it cannot finish. */
    CHECK_EQ(inflate_hex("f2 48 cd c9 c9 07 00 00 00 ff ff", out, sizeof out), -EINVAL);
    /* Cut inside a block. */
    CHECK_EQ(inflate_hex("f2 48 cd c9", out, sizeof out), -EINVAL);
    CHECK_EQ(inflate_hex("f2 48 cd c9 c9 07", out, sizeof out), -EINVAL);
    CHECK_EQ(inflate_hex("00 05 00 fa ff 48 65", out, sizeof out), -EINVAL);
    /* Not DEFLATE: block type 3, bad stored length. */
    CHECK_EQ(inflate_hex("ff ff ff ff", out, sizeof out), -EINVAL);
    CHECK_EQ(inflate_hex("00 05 00 fa fe 48 65 6c 6c 6f 00", out, sizeof out), -EINVAL);
    /* A 0-byte payload is the empty message (as zlib receivers treat it). */
    CHECK_EQ(rc_inflate_message(inflater, NULL, 0, out, sizeof out), 0);
    CHECK_EQ(rc_inflate_message(inflater, "", 0, NULL, 0), 0);
    CHECK_EQ(rc_inflate_message(NULL, "\x00", 1, out, sizeof out), -EINVAL);
}

static void test_inflate_zlib_senders(void)
{
    size_t len = 200000;
    uint8_t *in = malloc(len), *payload = malloc(len + 1024), *out = malloc(len + 1);
    if (!in || !payload || !out)
        abort();
    fill(in, len, KIND_JSON);
    memcpy(in + 150000, in + 120000, 30000); /* references 30000 back: a 32 KiB window */

    for (int level = 1; level <= 9; level += 4) {
        size_t n = zlib_deflate(in, len, payload, len + 1024, level, 15, Z_SYNC_FLUSH, NULL, 0);
        CHECK_EQ(rc_inflate_message(inflater, payload, n, out, len), (ssize_t)len);
        CHECK(memcmp(out, in, len) == 0);
        n = zlib_deflate(in, len, payload, len + 1024, level, 15, Z_FINISH, NULL, 0);
        CHECK_EQ(rc_inflate_message(inflater, payload, n, out, len), (ssize_t)len);
        CHECK(memcmp(out, in, len) == 0);
        payload[n] = 0x00;
        CHECK_EQ(rc_inflate_message(inflater, payload, n + 1, out, len), (ssize_t)len);
        payload[n] = 0x01;
        CHECK_EQ(rc_inflate_message(inflater, payload, n + 1, out, len), -EINVAL);
    }

    /* A sender that (wrongly) kept its context: the message refers to a
     * dictionary the receiver never saw. */
    size_t n = zlib_deflate(in + 1000, 500, payload, 2048, 6, 15, Z_SYNC_FLUSH, in, 2000);
    CHECK_EQ(ref_inflate(payload, n, 15, out, 2048), -1);
    CHECK_EQ(rc_inflate_message(inflater, payload, n, out, len), -EINVAL);

    /* The cap: exactly the message fits, one byte less does not. */
    n = zlib_deflate(in, 5000, payload, 8192, 6, 15, Z_SYNC_FLUSH, NULL, 0);
    CHECK_EQ(rc_inflate_message(inflater, payload, n, out, 5000), 5000);
    CHECK_EQ(rc_inflate_message(inflater, payload, n, out, 4999), -E2BIG);
    CHECK_EQ(rc_inflate_message(inflater, payload, n, out, 0), -E2BIG);
    CHECK_EQ(inflate_hex("00", out, 0), 0);
    CHECK_EQ(inflate_hex("f3 48 cd c9 c9 07 00 00", out, 5), 5);
    CHECK_EQ(inflate_hex("f3 48 cd c9 c9 07 00 00", out, 4), -E2BIG);
    /* And the inflater is fine after errors. */
    CHECK_EQ(inflate_hex("f2 48 cd c9 c9 07 00", out, sizeof out), 5);

    free(in);
    free(payload);
    free(out);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_inflate_bomb(void)
{
    size_t len = 10u << 20, cap = 1u << 20;
    uint8_t *zeros = calloc(1, len), *payload = malloc(64 << 10), *out = malloc(cap);
    if (!zeros || !payload || !out)
        abort();
    size_t n = zlib_deflate(zeros, len, payload, 64 << 10, 9, 15, Z_SYNC_FLUSH, NULL, 0);
    CHECK(n < 12000); /* 10 MiB of zeros in ~10 KiB */

    double t0 = now_s();
    CHECK_EQ(rc_inflate_message(inflater, payload, n, out, cap), -E2BIG);
    double dt = now_s() - t0;
    CHECK(dt < 1.0);

    /* It stops early: garbage after the first 1/8 of the bomb is never
     * reached (inflating it all would end in -EINVAL, not -E2BIG). */
    memset(payload + n / 8, 0xff, n - n / 8);
    CHECK_EQ(rc_inflate_message(inflater, payload, n, out, cap), -E2BIG);
    /* The same truncated bomb with a cap it cannot reach is garbage. */
    uint8_t *all = malloc(len + 1);
    if (!all)
        abort();
    CHECK_EQ(rc_inflate_message(inflater, payload, n / 8 + 1, all, len + 1), -EINVAL);
    free(all);
    fprintf(stderr, "bomb: %zu bytes → -E2BIG at a cap of %zu in %.1f ms\n", n, cap, dt * 1e3);
    free(zeros);
    free(payload);
    free(out);
}

/* ---- other receivers: Python's zlib, Node's zlib and ws ------------------------ */

static bool have_program(const char *name)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static void write_hex(FILE *f, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
    if (n == 0)
        fputc('-', f);
}

static const char py_check[] =
    "import sys, zlib\n"
    "bad = 0\n"
    "for line in open(sys.argv[1]):\n"
    "    w, p, m = line.split()\n"
    "    p = b'' if p == '-' else bytes.fromhex(p)\n"
    "    m = b'' if m == '-' else bytes.fromhex(m)\n"
    "    d = zlib.decompressobj(-int(w))\n"
    "    if d.decompress(p + b'\\x00\\x00\\xff\\xff') != m:\n"
    "        bad += 1\n"
    "print('python zlib: %d bad' % bad)\n"
    "sys.exit(1 if bad else 0)\n";

/* Node's zlib as in the brief (inflateRawSync, finishFlush Z_SYNC_FLUSH),
 * then ws's PerMessageDeflate as a client that accepted our answer,
 * decoding every message in turn on one instance. */
static const char js_check[] =
    "const zlib = require('zlib'), fs = require('fs');\n"
    "const lines = fs.readFileSync(process.argv[2], 'utf8').trim().split('\\n').map(l => l.split(' '))\n"
    "  .map(([w, p, m]) => [+w, Buffer.from(p === '-' ? '' : p, 'hex'), Buffer.from(m === '-' ? '' : m, 'hex')]);\n"
    "let bad = 0;\n"
    "for (const [w, p, m] of lines) {\n"
    "  const out = zlib.inflateRawSync(Buffer.concat([p, Buffer.from([0, 0, 0xff, 0xff])]),\n"
    "    {windowBits: w, finishFlush: zlib.constants.Z_SYNC_FLUSH});\n"
    "  if (!out.equals(m)) bad++;\n"
    "}\n"
    "console.log('node zlib: ' + bad + ' bad');\n"
    "let PMD = null;\n"
    "for (const p of ['/usr/share/nodejs/ws/lib/permessage-deflate.js', '/usr/lib/node_modules/ws/lib/permessage-deflate.js'])\n"
    "  if (fs.existsSync(p)) { PMD = require(p); break; }\n"
    "if (!PMD) { console.log('node ws: not installed, skipped'); process.exit(bad ? 1 : 0); }\n"
    "(async () => {\n"
    "  let wsbad = 0;\n"
    "  for (const w of [9, 15]) {\n"
    "    const pmd = new PMD({}, false, 0);\n"
    "    const offer = {server_no_context_takeover: [true], client_no_context_takeover: [true]};\n"
    "    if (w < 15) offer.server_max_window_bits = [String(w)];\n"
    "    pmd.accept([offer]);\n"
    "    for (const [lw, p, m] of lines) {\n"
    "      if (lw !== w) continue;\n"
    "      const out = await new Promise((res, rej) => pmd.decompress(p, true, (e, d) => e ? rej(e) : res(d)));\n"
    "      if (!out.equals(m)) wsbad++;\n"
    "    }\n"
    "  }\n"
    "  console.log('node ws: ' + wsbad + ' bad');\n"
    "  process.exit(bad || wsbad ? 1 : 0);\n"
    "})().catch(e => { console.log('node ws: ' + e); process.exit(1); });\n";

static void test_other_receivers(void)
{
    bool py = have_program("python3"), js = have_program("node");
    if (!py && !js) {
        fprintf(stderr, "other receivers: python3 and node not found, skipped\n");
        return;
    }
    char dir[] = "/tmp/rc_test_deflate.XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    char data[64], pyf[64], jsf[64], cmd[256];
    snprintf(data, sizeof data, "%s/payloads", dir);
    snprintf(pyf, sizeof pyf, "%s/check.py", dir);
    snprintf(jsf, sizeof jsf, "%s/check.js", dir);
    FILE *f = fopen(pyf, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(py_check, f);
        fclose(f);
    }
    f = fopen(jsf, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(js_check, f);
        fclose(f);
    }

    /* Both framings (ISA-L sync flush, libdeflate BFINAL + 0x00), both
     * windows, sizes from empty to multi-block, in one stream per window. */
    static const size_t sizes[] = {0, 1, 300, 5000, 70000, 200000};
    static const int lv[] = {1, 3, 6, 12};
    size_t max = 200000;
    uint8_t *in = malloc(max), *payload = malloc(rc_deflate_bound(max));
    f = fopen(data, "w");
    if (!in || !payload || !f)
        abort();
    int lines = 0;
    for (unsigned w = 9; w <= 15; w += 6)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (size_t l = 0; l < sizeof lv / sizeof lv[0]; l++)
                for (int k = 0; k < NKINDS; k += 3) { /* json, far-repeat */
                    struct rc_deflater *d = rc_deflater_create(lv[l]);
                    fill(in, sizes[s], (enum kind)k);
                    ssize_t n = rc_deflate_message(d, in, sizes[s], payload, rc_deflate_bound(sizes[s]), w);
                    rc_deflater_destroy(d);
                    CHECK(n > 0);
                    fprintf(f, "%u ", w);
                    write_hex(f, payload, n > 0 ? (size_t)n : 0);
                    fputc(' ', f);
                    write_hex(f, in, sizes[s]);
                    fputc('\n', f);
                    lines++;
                }
    fclose(f);
    free(in);
    free(payload);

    if (py) {
        snprintf(cmd, sizeof cmd, "python3 %s %s 1>&2", pyf, data);
        CHECK_EQ(system(cmd), 0);
    } else {
        fprintf(stderr, "python3 not found, skipped\n");
    }
    if (js) {
        snprintf(cmd, sizeof cmd, "node %s %s 1>&2", jsf, data);
        CHECK_EQ(system(cmd), 0);
    } else {
        fprintf(stderr, "node not found, skipped\n");
    }
    fprintf(stderr, "other receivers: %d payloads\n", lines);
    unlink(data);
    unlink(pyf);
    unlink(jsf);
    rmdir(dir);
}

int main(void)
{
    for (size_t l = 0; l < NLEVELS; l++) {
        deflaters[l] = rc_deflater_create(levels[l]);
        CHECK(deflaters[l] != NULL);
    }
    inflater = rc_inflater_create();
    CHECK(inflater != NULL);
    if (rc_test_failures)
        RC_TEST_MAIN_END("test_deflate");

    test_framing();
    test_deflate_errors();
    test_window_is_honoured();
    test_round_trips();
    test_inflate_rfc_examples();
    test_inflate_endings();
    test_inflate_zlib_senders();
    test_inflate_bomb();
    test_other_receivers();

    for (size_t l = 0; l < NLEVELS; l++)
        rc_deflater_destroy(deflaters[l]);
    rc_inflater_destroy(inflater);
    rc_inflater_destroy(NULL);
    RC_TEST_MAIN_END("test_deflate");
}
