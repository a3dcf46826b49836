/*
 * bench_deflate.c — one-shot permessage-deflate compression of market-data
 * JSON: libdeflate vs ISA-L vs zlib, the variants side by side in one run.
 *
 * Question it answers: which library and level should src/ws/deflate.c use
 * for "compress once per broadcast frame, send the same bytes to N
 * subscribers"? For each message size it prints the median time of one
 * rc_deflate_message-shaped call (context reset + compress + RFC 7692
 * framing) and the compressed/original ratio.
 *
 * Every variant produces a complete permessage-deflate payload: zlib and
 * ISA-L end with a sync flush whose 00 00 FF FF is removed; libdeflate ends
 * with a BFINAL block, to which the one byte 0x00 is appended (RFC 7692
 * §7.2.3.4, as uWebSockets does). Every output is checked once by inflating
 * it with zlib after appending 00 00 FF FF (the window of the inflater is
 * the variant's window, so hist_bits 9 output is proved to stay within 512
 * bytes); any mismatch aborts the run.
 *
 * Build: cc -O2 -std=c11 -D_GNU_SOURCE perf/bench_deflate.c -o perf/build/bench_deflate \
 *            -lisal -ldeflate -lz
 * Run:   perf/build/bench_deflate [runs]        (default 7 runs per cell)
 * Output: a markdown table on stdout (perf/bench_deflate.md keeps one).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <isa-l.h>
#include <libdeflate.h>
#include <zlib.h>

#define POOL 16          /* distinct messages per size, compressed in turn */
#define MIN_RUN_NS 20000000 /* one timed run lasts at least 20 ms */

static const size_t sizes[] = {256, 1024, 4096, 16384, 65536};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* ---- message generator ------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rng(void)
{
    /* xorshift64*: deterministic across runs and machines. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        fprintf(stderr, "bench_deflate: generator buffer too small\n");
        abort();
    }
    b->len += (size_t)n;
}

/*
 * One market-data update of about `target` bytes (never more): a quote for
 * a symbol, an order book of up to 20 levels a side, then as many recent
 * trades as fit. Prices follow a random walk around a base price, sizes
 * have 3-4 decimals, timestamps are milliseconds: what a crypto or equity
 * feed publishes.
 */
static size_t gen_message(char *out, size_t target, uint64_t seq)
{
    static const char *symbols[] = {"BTC", "ETH", "SOL", "AAPL", "EURUSD"};
    static const double bases[] = {64250.12, 3421.57, 148.203, 227.41, 1.08432};
    char tmp[256];
    struct sbuf b = {out, 0, target + 512};
    unsigned sym = (unsigned)(seq % 5);
    double mid = bases[sym] * (1.0 + ((double)(rng() % 2001) - 1000.0) / 100000.0);
    double tick = bases[sym] > 1000 ? 0.01 : bases[sym] > 10 ? 0.001 : 0.00001;
    long long ts = 1732212345123LL + (long long)seq * 7;

    sb_printf(&b,
              "{\"topic\":\"demo:%s\",\"seq\":%llu,\"ts\":%lld,\"bid\":%.5g,\"ask\":%.5g,"
              "\"last\":%.5g,\"vol24h\":%.3f,\"chg24h\":%.2f",
              symbols[sym], (unsigned long long)seq, ts, mid - tick, mid + tick, mid,
              (double)(rng() % 10000000) / 1000.0, ((double)(rng() % 2000) - 1000.0) / 100.0);

    /* Book: bids then asks, levels until 20 a side or out of room. The
     * closing needs at most 40 bytes ("]],\"asks\":[]...}" etc.). */
    const char *sides[2] = {"bids", "asks"};
    for (int s = 0; s < 2; s++) {
        size_t before = b.len;
        sb_printf(&b, ",\"%s\":[", sides[s]);
        int levels = 0;
        double px = s == 0 ? mid - tick : mid + tick;
        for (; levels < 20; levels++) {
            int n = snprintf(tmp, sizeof tmp, "%s[%.10g,%.4f]", levels ? "," : "", px,
                             (double)(rng() % 500000) / 10000.0);
            if (b.len + (size_t)n + 40 > target)
                break;
            sb_printf(&b, "%s", tmp);
            px += (s == 0 ? -1 : 1) * tick * (double)(1 + rng() % 5);
        }
        if (levels == 0) {
            b.len = before;
            out[b.len] = '\0';
            break;
        }
        sb_printf(&b, "]");
    }

    /* Trades, newest first, until the message is full. */
    size_t before = b.len;
    sb_printf(&b, ",\"trades\":[");
    int trades = 0;
    uint64_t id = 981234500ULL + seq * 1000;
    for (;; trades++) {
        double px = mid + tick * ((double)(rng() % 41) - 20.0);
        int n = snprintf(tmp, sizeof tmp, "%s{\"id\":%llu,\"p\":%.10g,\"q\":%.4f,\"side\":\"%s\",\"ts\":%lld}",
                         trades ? "," : "", (unsigned long long)(id - (uint64_t)trades), px,
                         (double)(rng() % 2000000) / 10000.0, rng() & 1 ? "buy" : "sell",
                         ts - (long long)(trades * (int)(1 + rng() % 40)));
        if (b.len + (size_t)n + 3 > target)
            break;
        sb_printf(&b, "%s", tmp);
    }
    if (trades == 0)
        b.len = before;
    else
        sb_printf(&b, "]");
    sb_printf(&b, "}");
    return b.len;
}

/* ---- variants ------------------------------------------------------------ */

enum lib { LIB_LIBDEFLATE, LIB_ISAL, LIB_ZLIB };

struct variant {
    const char *name;
    enum lib lib;
    int level;
    int window_bits; /* the window the output must fit in (hist_bits / windowBits) */
    int stateless;   /* ISA-L: isal_deflate_stateless with FULL_FLUSH */
    /* state, set up by variant_init */
    struct libdeflate_compressor *ld;
    struct isal_zstream isal;
    uint8_t *isal_level_buf;
    z_stream zs;
};

static struct variant variants[] = {
    {.name = "libdeflate-1", .lib = LIB_LIBDEFLATE, .level = 1, .window_bits = 15},
    {.name = "libdeflate-4", .lib = LIB_LIBDEFLATE, .level = 4, .window_bits = 15},
    {.name = "libdeflate-6", .lib = LIB_LIBDEFLATE, .level = 6, .window_bits = 15},
    {.name = "isal-0", .lib = LIB_ISAL, .level = 0, .window_bits = 15},
    {.name = "isal-1", .lib = LIB_ISAL, .level = 1, .window_bits = 15},
    {.name = "isal-2", .lib = LIB_ISAL, .level = 2, .window_bits = 15},
    {.name = "isal-3", .lib = LIB_ISAL, .level = 3, .window_bits = 15},
    {.name = "isal-1 w9", .lib = LIB_ISAL, .level = 1, .window_bits = 9},
    {.name = "isal-1 stateless", .lib = LIB_ISAL, .level = 1, .window_bits = 15, .stateless = 1},
    {.name = "isal-1 stateless w9", .lib = LIB_ISAL, .level = 1, .window_bits = 9, .stateless = 1},
    {.name = "zlib-1", .lib = LIB_ZLIB, .level = 1, .window_bits = 15},
    {.name = "zlib-6", .lib = LIB_ZLIB, .level = 6, .window_bits = 15},
};
#define NVARIANTS (sizeof variants / sizeof variants[0])

static size_t isal_level_buf_size(int level)
{
    switch (level) {
    case 1: return ISAL_DEF_LVL1_DEFAULT;
    case 2: return ISAL_DEF_LVL2_DEFAULT;
    case 3: return ISAL_DEF_LVL3_DEFAULT;
    default: return 0;
    }
}

static void variant_init(struct variant *v)
{
    switch (v->lib) {
    case LIB_LIBDEFLATE:
        v->ld = libdeflate_alloc_compressor(v->level);
        if (!v->ld)
            abort();
        break;
    case LIB_ISAL:
        isal_deflate_init(&v->isal);
        if (isal_level_buf_size(v->level)) {
            v->isal_level_buf = malloc(isal_level_buf_size(v->level));
            if (!v->isal_level_buf)
                abort();
        }
        break;
    case LIB_ZLIB:
        if (deflateInit2(&v->zs, v->level, Z_DEFLATED, -v->window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            abort();
        break;
    }
}

/* One permessage-deflate payload (framing included); returns its length. */
static size_t variant_compress(struct variant *v, const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    switch (v->lib) {
    case LIB_LIBDEFLATE: {
        size_t n = libdeflate_deflate_compress(v->ld, in, len, out, cap - 1);
        if (n == 0)
            abort();
        out[n] = 0x00; /* empty stored block header after the BFINAL block */
        return n + 1;
    }
    case LIB_ISAL: {
        struct isal_zstream *s = &v->isal;
        if (v->stateless)
            isal_deflate_stateless_init(s);
        else
            isal_deflate_reset(s);
        s->level = (uint32_t)v->level;
        s->level_buf = v->isal_level_buf;
        s->level_buf_size = (uint32_t)isal_level_buf_size(v->level);
        s->hist_bits = (uint16_t)v->window_bits;
        s->flush = v->stateless ? FULL_FLUSH : SYNC_FLUSH;
        s->end_of_stream = 0;
        s->gzip_flag = IGZIP_DEFLATE;
        s->next_in = (uint8_t *)in;
        s->avail_in = (uint32_t)len;
        s->next_out = out;
        s->avail_out = (uint32_t)cap;
        int rc = v->stateless ? isal_deflate_stateless(s) : isal_deflate(s);
        if (rc != COMP_OK || s->avail_in != 0 || s->avail_out == 0)
            abort();
        size_t n = cap - s->avail_out;
        if (n < 4 || memcmp(out + n - 4, "\x00\x00\xff\xff", 4) != 0)
            abort();
        return n - 4;
    }
    case LIB_ZLIB: {
        z_stream *s = &v->zs;
        deflateReset(s);
        s->next_in = (Bytef *)in;
        s->avail_in = (uInt)len;
        s->next_out = out;
        s->avail_out = (uInt)cap;
        if (deflate(s, Z_SYNC_FLUSH) != Z_OK || s->avail_in != 0 || s->avail_out == 0)
            abort();
        size_t n = cap - s->avail_out;
        if (n < 4 || memcmp(out + n - 4, "\x00\x00\xff\xff", 4) != 0)
            abort();
        return n - 4;
    }
    }
    abort();
}

/* zlib inflate of payload + 00 00 FF FF with a window of 2^window_bits must
 * give exactly in[0..len). */
static void verify(const struct variant *v, const uint8_t *payload, size_t plen, const uint8_t *in,
                   size_t len)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    uint8_t *got = malloc(len + 1);
    z_stream zs = {0};
    int rc = Z_OK;

    if (!got || inflateInit2(&zs, -v->window_bits) != Z_OK)
        abort();
    zs.next_out = got;
    zs.avail_out = (uInt)len + 1;
    zs.next_in = (Bytef *)payload;
    zs.avail_in = (uInt)plen;
    rc = inflate(&zs, Z_SYNC_FLUSH);
    if (rc == Z_OK || (rc == Z_BUF_ERROR && zs.avail_in == 0)) {
        zs.next_in = (Bytef *)tail;
        zs.avail_in = 4;
        rc = inflate(&zs, Z_SYNC_FLUSH);
    }
    size_t n = len + 1 - zs.avail_out;
    if ((rc != Z_OK && rc != Z_STREAM_END) || n != len || memcmp(got, in, len) != 0) {
        fprintf(stderr, "bench_deflate: %s output of %zu bytes does not round-trip (zlib rc %d, %s, got %zu bytes)\n",
                v->name, len, rc, zs.msg ? zs.msg : "-", n);
        abort();
    }
    inflateEnd(&zs);
    free(got);
}

/* ---- timing ---------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 7;
    if (runs < 1 || runs > 101) {
        fprintf(stderr, "usage: %s [runs 1..101]\n", argv[0]);
        return 2;
    }

    /* Messages: POOL per size, each compressed in turn by the timed loop. */
    uint8_t *msgs[NSIZES][POOL];
    size_t msg_len[NSIZES][POOL];
    size_t total_in[NSIZES] = {0};
    rng_state = 0x9E3779B97F4A7C15ULL;
    for (size_t s = 0; s < NSIZES; s++)
        for (int i = 0; i < POOL; i++) {
            msgs[s][i] = malloc(sizes[s] + 512);
            if (!msgs[s][i])
                abort();
            msg_len[s][i] = gen_message((char *)msgs[s][i], sizes[s], (uint64_t)(s * POOL + (size_t)i + 1));
            total_in[s] += msg_len[s][i];
        }
    size_t out_cap = sizes[NSIZES - 1] * 2 + 1024;
    uint8_t *out = malloc(out_cap);
    if (!out)
        abort();

    double us[NVARIANTS][NSIZES], ratio[NVARIANTS][NSIZES];
    for (size_t vi = 0; vi < NVARIANTS; vi++) {
        struct variant *v = &variants[vi];
        variant_init(v);
        for (size_t s = 0; s < NSIZES; s++) {
            /* Correctness first, and the ratio over the pool. */
            size_t total_out = 0;
            for (int i = 0; i < POOL; i++) {
                size_t n = variant_compress(v, msgs[s][i], msg_len[s][i], out, out_cap);
                verify(v, out, n, msgs[s][i], msg_len[s][i]);
                total_out += n;
            }
            ratio[vi][s] = (double)total_out / (double)total_in[s];

            /* Calibrate: calls per run so that a run lasts MIN_RUN_NS. */
            size_t calls = POOL;
            for (;;) {
                uint64_t t0 = now_ns();
                for (size_t c = 0; c < calls; c++)
                    variant_compress(v, msgs[s][c % POOL], msg_len[s][c % POOL], out, out_cap);
                if (now_ns() - t0 >= MIN_RUN_NS / 4)
                    break;
                calls *= 2;
            }
            calls *= 4;
            double per_call[101];
            for (int r = 0; r < runs; r++) {
                uint64_t t0 = now_ns();
                for (size_t c = 0; c < calls; c++)
                    variant_compress(v, msgs[s][c % POOL], msg_len[s][c % POOL], out, out_cap);
                per_call[r] = (double)(now_ns() - t0) / 1000.0 / (double)calls;
            }
            qsort(per_call, (size_t)runs, sizeof per_call[0], cmp_double);
            us[vi][s] = per_call[runs / 2];
        }
    }

    printf("µs per message (median of %d runs) / compressed÷original (over %d distinct messages per size);\n"
           "every output verified with zlib inflate (window = the variant's window).\n\n",
           runs, POOL);
    printf("| lib-level |");
    for (size_t s = 0; s < NSIZES; s++)
        printf(" %zu B |", total_in[s] / POOL);
    printf("\n|---|");
    for (size_t s = 0; s < NSIZES; s++)
        printf("---|");
    printf("\n");
    for (size_t vi = 0; vi < NVARIANTS; vi++) {
        printf("| %s |", variants[vi].name);
        for (size_t s = 0; s < NSIZES; s++)
            printf(" %.2f / %.3f |", us[vi][s], ratio[vi][s]);
        printf("\n");
    }

    /* Throughput view: MB/s of input, for the 16 KiB and 64 KiB columns. */
    printf("\nInput MB/s at %zu B and %zu B:", total_in[3] / POOL, total_in[4] / POOL);
    for (size_t vi = 0; vi < NVARIANTS; vi++)
        printf("%s %s %.0f/%.0f", vi ? "," : "", variants[vi].name,
               (double)(total_in[3] / POOL) / us[vi][3], (double)(total_in[4] / POOL) / us[vi][4]);
    printf("\n");
    return 0;
}
