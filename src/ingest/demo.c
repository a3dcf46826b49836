/*
 * src/ingest/demo.c — the built-in synthetic market feed (--demo).
 *
 * Place in the data flow: a shard's timer calls rc_demo_next() for each of
 * its demo topics; the bytes it writes are published on "demo:<SYMBOL>"
 * exactly as if they had come from Redis or the HTTP publish endpoint, so
 * the demo exercises the same fan-out path as real data.
 *
 * Owns the topic array (allocated once in rc_demo_init, freed in
 * rc_demo_destroy); rc_demo_next writes into the caller's buffer and
 * allocates nothing. A feed belongs to one shard: only that shard's thread
 * may call it. Output depends only on the seed and the sequence of calls.
 *
 * Prices are generated as doubles but printed as fixed-point integers, so
 * formatting never meets NaN, inf or an exponent, and the book levels are
 * exact multiples of the spread (bids strictly descending, asks strictly
 * ascending). No libm.
 */
#include "ringcast/demo.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEMO_MAX_TOPICS 100000u
#define DEMO_BOOK_LEVELS 5

/* The first topics get real tickers with plausible start prices (roughly
 * mid-2024); topics beyond the list are "SYM<index>", so the first
 * synthetic one is SYM64, as the header's example says. */
static const struct {
    const char *symbol;
    double price;
} known_symbols[] = {
    {"BTC", 64000.0},   {"ETH", 3200.0},    {"SOL", 150.0},     {"XRP", 0.52},
    {"ADA", 0.45},      {"DOGE", 0.15},     {"AVAX", 35.0},     {"DOT", 7.2},
    {"LINK", 14.5},     {"MATIC", 0.70},    {"LTC", 82.0},      {"BCH", 460.0},
    {"ATOM", 8.5},      {"UNI", 9.8},       {"XLM", 0.11},      {"ETC", 27.0},
    {"FIL", 5.6},       {"APT", 8.9},       {"ARB", 1.05},      {"OP", 2.4},
    {"NEAR", 6.8},      {"ICP", 12.3},      {"HBAR", 0.085},    {"VET", 0.035},
    {"ALGO", 0.18},     {"BNB", 580.0},     {"TRX", 0.12},      {"SHIB", 0.000024},
    {"AAVE", 95.0},     {"AAPL", 190.0},    {"MSFT", 420.0},    {"NVDA", 120.0},
    {"AMZN", 185.0},    {"GOOGL", 175.0},   {"META", 500.0},    {"TSLA", 180.0},
    {"JPM", 200.0},     {"V", 275.0},       {"SPY", 540.0},     {"QQQ", 470.0},
    {"EURUSD", 1.085},  {"GBPUSD", 1.27},   {"USDJPY", 155.0},  {"XAUUSD", 2350.0},
    {"NFLX", 640.0},    {"AMD", 160.0},     {"INTC", 31.0},     {"ORCL", 125.0},
    {"CRM", 260.0},     {"ADBE", 520.0},    {"AVGO", 1400.0},   {"COST", 850.0},
    {"WMT", 68.0},      {"KO", 62.0},       {"PEP", 170.0},     {"DIS", 100.0},
    {"BAC", 39.0},      {"XOM", 115.0},     {"JNJ", 150.0},     {"UNH", 510.0},
    {"IWM", 205.0},     {"AUDUSD", 0.665},  {"USDCHF", 0.90},   {"XAGUSD", 29.5},
};
#define N_KNOWN (sizeof known_symbols / sizeof known_symbols[0])

/* Walk bounds in ticks. The tick is fixed at 1e-4 of the start price, so
 * the mid stays between 1 % and 100x of where it started. */
#define WALK_FLOOR_TICKS 100.0
#define WALK_CEIL_TICKS 1000000.0

static const uint64_t pow10_table[] = {
    1ull,         10ull,         100ull,         1000ull,         10000ull,
    100000ull,    1000000ull,    10000000ull,    100000000ull,    1000000000ull,
    10000000000ull, 100000000000ull, 1000000000000ull,
};
#define MAX_DECIMALS 12

/* Seeds the per-topic start prices and the walk's state; any input,
 * including 0, gives a well-mixed output. */
static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* xorshift64*: the low bits are its weakest, so callers take high bits. */
static uint64_t xorshift64s(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, 1) from the top 53 bits. */
static double unit_interval(uint64_t r)
{
    return (double)(r >> 11) * (1.0 / 9007199254740992.0);
}

int rc_demo_init(struct rc_demo *d, unsigned ntopics, size_t msg_size, uint64_t seed)
{
    if (d == NULL)
        return -EINVAL;
    memset(d, 0, sizeof *d);
    if (ntopics == 0 || ntopics > DEMO_MAX_TOPICS)
        return -EINVAL;

    struct rc_demo_topic *topics = calloc(ntopics, sizeof *topics);
    if (topics == NULL)
        return -ENOMEM;

    for (unsigned i = 0; i < ntopics; i++) {
        struct rc_demo_topic *t = &topics[i];
        uint64_t h = splitmix64(seed ^ ((uint64_t)(i + 1) * 0xD1B54A32D192ED03ull));
        double price;
        int n;
        if (i < N_KNOWN) {
            /* Within ±2 % of the listed price, so seeds differ a little. */
            price = known_symbols[i].price * (0.98 + 0.04 * unit_interval(h));
            n = snprintf(t->name, sizeof t->name, "demo:%s", known_symbols[i].symbol);
        } else {
            /* Mantissa 1..10 times a decade 0.1..1000: the spread of prices
             * (and so of decimals) that real lists have. */
            static const double decades[] = {0.1, 1.0, 10.0, 100.0, 1000.0};
            price = (1.0 + 9.0 * unit_interval(h)) * decades[(h & 0xff) % 5];
            n = snprintf(t->name, sizeof t->name, "demo:SYM%u", i);
        }
        t->name_len = (uint8_t)n;
        t->seq = 0;
        t->mid = price;
        t->tick = price * 1e-4;
    }

    d->topics = topics;
    d->ntopics = ntopics;
    d->msg_size = msg_size;
    d->rng = splitmix64(seed ^ 0x5DEECE66Dull);
    if (d->rng == 0) /* xorshift's one fixed point */
        d->rng = 0x9E3779B97F4A7C15ull;
    return 0;
}

void rc_demo_destroy(struct rc_demo *d)
{
    if (d == NULL)
        return;
    free(d->topics);
    memset(d, 0, sizeof *d);
}

/* Appends into out[0..cap), remembering overflow instead of failing at each
 * step, so the message reads straight through (as in src/http/response.c). */
struct writer {
    char *out;
    size_t cap;
    size_t len;
    bool overflow;
};

/* Reserves n bytes at the end of the output, or marks overflow and
 * returns NULL. Numbers are written in place through it, with no scratch
 * buffer to copy from (gcc turned those small copies into rep movs). */
static char *reserve(struct writer *w, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return NULL;
    }
    char *p = w->out + w->len;
    w->len += n;
    return p;
}

static void put(struct writer *w, const void *p, size_t n)
{
    char *dst = reserve(w, n);
    if (dst != NULL && n > 0)
        memcpy(dst, p, n);
}

#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)

static void put_fill(struct writer *w, char c, size_t n)
{
    char *dst = reserve(w, n);
    if (dst != NULL && n > 0)
        memset(dst, c, n);
}

static unsigned digit_count(uint64_t v)
{
    unsigned n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* The last n decimal digits of v (leading zeros included), ending at end. */
static void write_digits(char *end, uint64_t v, unsigned n)
{
    while (n-- > 0) {
        *--end = (char)('0' + v % 10);
        v /= 10;
    }
}

static void put_u64(struct writer *w, uint64_t v)
{
    unsigned n = digit_count(v);
    char *p = reserve(w, n);
    if (p != NULL)
        write_digits(p + n, v, n);
}

/* units / 10^decimals with exactly `decimals` digits after the point. */
static void put_fixed(struct writer *w, uint64_t units, unsigned decimals)
{
    uint64_t scale = pow10_table[decimals];
    uint64_t whole = units / scale;
    unsigned n = digit_count(whole);
    char *p = reserve(w, n + 1 + decimals);
    if (p == NULL)
        return;
    write_digits(p + n, whole, n);
    p[n] = '.';
    write_digits(p + n + 1 + decimals, units % scale, decimals);
}

/* The fewest decimals (at least 2) at which one tick moves the last digit:
 * BTC 64000.00, AAPL 190.00, KO 61.450, EURUSD 1.0850, XRP 0.52000,
 * SHIB 0.000024000. The tick is fixed per topic, so a topic never changes
 * its decimals, and a tick is always at least one unit of the last digit. */
static unsigned price_decimals(double tick)
{
    unsigned dec = 2;
    while (dec < MAX_DECIMALS && tick * (double)pow10_table[dec] < 1.0)
        dec++;
    return dec;
}

/* One step of the walk: -2..+2 ticks, reflected at the floor and ceiling.
 * The final clamp only matters if someone wrote a wild mid (or NaN) into
 * the public struct: a step of two ticks cannot overshoot by more than the
 * width of the band. */
static double walk(double mid, double tick, uint64_t *rng)
{
    double lo = tick * WALK_FLOOR_TICKS, hi = tick * WALK_CEIL_TICKS;
    int step = (int)((xorshift64s(rng) >> 32) % 5) - 2;
    mid += step * tick;
    if (mid < lo)
        mid = 2 * lo - mid;
    else if (mid > hi)
        mid = 2 * hi - mid;
    if (!(mid >= lo && mid <= hi))
        mid = lo * 2;
    return mid;
}

static void put_book_side(struct writer *w, unsigned levels, uint64_t best, uint64_t spread, bool descending,
                          unsigned decimals, uint64_t *rng)
{
    for (unsigned j = 0; j < levels; j++) {
        uint64_t price = descending ? best - j * spread : best + j * spread;
        uint64_t qty_milli = 1 + (xorshift64s(rng) >> 32) % 9999; /* 0.001..9.999 */
        if (j > 0)
            PUT_LIT(w, ",");
        PUT_LIT(w, "[");
        put_fixed(w, price, decimals);
        PUT_LIT(w, ",");
        put_fixed(w, qty_milli, 3);
        PUT_LIT(w, "]");
    }
}

/*
 * The natural size is the length of the message without "pad": the fixed
 * keys, the numbers as printed, and the full 5-level book on each side —
 * about 280 to 380 bytes, depending on the symbol, seq and ts. A smaller
 * msg_size (other than 0, which asks for no particular size) trims the
 * book a level at a time, down to none (~150-200 bytes), until the message
 * fits. Given a target above what is left, the gap is filled so that the
 * message is exactly msg_size bytes:
 *   gap >= 9 : ,"pad":"xxx…" before the closing brace (9 bytes of key and
 *              quotes, gap - 9 'x's; a gap of exactly 9 gives "pad":"");
 *   gap 1..8 : that many spaces before the closing brace. JSON allows
 *              whitespace there, the values are untouched, and every target
 *              size is reachable without changing the data.
 * The data of a message (everything before the pad or spaces) does not
 * depend on msg_size.
 *
 * State (seq, mid, rng) is committed only when the message fits, so a call
 * that returns 0 leaves no gap in seq and no trace in the random sequence.
 * An index past ntopics also returns 0.
 */
size_t rc_demo_next(struct rc_demo *d, unsigned i, uint64_t now_unix_us, char *out, size_t cap)
{
    if (d == NULL || d->topics == NULL || i >= d->ntopics)
        return 0;
    struct rc_demo_topic *t = &d->topics[i];
    uint64_t rng = d->rng;
    uint64_t seq = t->seq + 1;
    double mid = walk(t->mid, t->tick, &rng);

    /* Everything below is integers in units of 10^-decimals. The walk's
     * floor (100 ticks, and a tick is at least one unit) keeps the mid at
     * 99+ units and the spread at most a tick plus rounding, so the deepest
     * bid stays well above zero. */
    unsigned decimals = price_decimals(t->tick);
    double scale = (double)pow10_table[decimals];
    uint64_t mid_u = (uint64_t)(mid * scale + 0.5);
    uint64_t spread_u = (uint64_t)(t->tick * scale + 0.5);
    if (spread_u == 0)
        spread_u = 1;
    uint64_t bid_u = mid_u - spread_u / 2;
    uint64_t ask_u = bid_u + spread_u;
    uint64_t last_u = bid_u + (xorshift64s(&rng) >> 32) % (spread_u + 1);

    struct writer w = {out, cap, 0, false};
    PUT_LIT(&w, "{\"topic\":\"");
    put(&w, t->name, t->name_len);
    PUT_LIT(&w, "\",\"seq\":");
    put_u64(&w, seq);
    PUT_LIT(&w, ",\"ts\":");
    put_u64(&w, now_unix_us);
    PUT_LIT(&w, ",\"type\":\"quote\",\"symbol\":\"");
    put(&w, t->name + 5, (size_t)t->name_len - 5); /* after "demo:" */
    PUT_LIT(&w, "\",\"bid\":");
    put_fixed(&w, bid_u, decimals);
    PUT_LIT(&w, ",\"ask\":");
    put_fixed(&w, ask_u, decimals);
    PUT_LIT(&w, ",\"last\":");
    put_fixed(&w, last_u, decimals);
    PUT_LIT(&w, ",\"bids\":[");
    size_t head_len = w.len;
    uint64_t rng_book = rng;
    for (unsigned levels = DEMO_BOOK_LEVELS;; levels--) {
        w.len = head_len;
        rng = rng_book;
        put_book_side(&w, levels, bid_u, spread_u, true, decimals, &rng);
        PUT_LIT(&w, "],\"asks\":[");
        put_book_side(&w, levels, ask_u, spread_u, false, decimals, &rng);
        PUT_LIT(&w, "]");
        /* msg_size 0 asks for no particular size: the full book */
        if (levels == 0 || d->msg_size == 0 || w.len + 1 <= d->msg_size || w.overflow) break;
    }
    /* The random sequence advances as for a full book whatever was
     * trimmed, so later messages do not depend on msg_size. */
    rng = rng_book;
    for (unsigned k = 0; k < 2 * DEMO_BOOK_LEVELS; k++) xorshift64s(&rng);

    size_t natural = w.len + 1; /* the closing brace */
    size_t gap = d->msg_size > natural ? d->msg_size - natural : 0;
    if (w.overflow || natural > cap || gap > cap - natural)
        return 0;
    if (gap >= 9) {
        PUT_LIT(&w, ",\"pad\":\"");
        put_fill(&w, 'x', gap - 9);
        PUT_LIT(&w, "\"");
    } else {
        put_fill(&w, ' ', gap);
    }
    PUT_LIT(&w, "}");

    t->mid = mid;
    t->seq = seq;
    d->rng = rng;
    return w.len;
}
