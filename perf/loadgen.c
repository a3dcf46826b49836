/*
 * perf/loadgen.c — WebSocket subscriber load generator for ringcast's benchmarks.
 *
 * Opens --conns client connections (at --connect-rate per second), upgrades
 * each one to WebSocket, subscribes it to some demo topics and then reads
 * frames until the end of the run. Every message that starts with
 * {"topic":"…","seq":N,"ts":T is a delivery: per (connection, topic) the seq
 * must grow by exactly one (a jump counts the missing ones as lost, a repeat
 * or step back counts as duplicated) and now − ts goes into a latency
 * histogram. Counting happens only inside the measured window (after
 * --warmup, for --duration seconds); seq tracking runs all the time.
 *
 * Build: cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Iinclude -o perf/build/loadgen perf/loadgen.c
 *        src/ws/handshake.c src/http/parser.c -lm -lz -lwolfssl   (the handshake code is the server's)
 *
 * Threads: the main thread parses options, starts --threads workers and
 * keeps the timeline (ramp, warmup, window, end). Each worker owns its
 * connections (connection i belongs to worker i % threads) and its own
 * epoll set and counters; the only shared state is a few atomics (phase
 * flags and progress counters). Counters are summed after the workers
 * are joined.
 *
 * stderr carries progress and two markers for scripts that sample the
 * server while the window is open: a line "WINDOW START" when counting
 * begins and "WINDOW END" when it stops. stdout carries the JSON result
 * (also written to --json PATH).
 *
 * Decode path: bytes → frame decoder (streaming, any split across reads,
 * any number of frames per read) → msg_payload() → msg_complete().
 *
 * permessage-deflate (--deflate, RFC 7692): the handshake offers
 * "permessage-deflate; client_max_window_bits"; a connection whose 101
 * accepts it (with server_no_context_takeover, which ringcast always sends)
 * has every RSV1 message inflated by its worker's zlib stream (raw, window
 * bits -15, inflateReset per message, 00 00 FF FF appended) before the same
 * prefix parsing. A compressed message that arrives whole in one read is
 * inflated straight from the read buffer; one split across frames or reads
 * is collected in the connection's zbuf first. RSV1 on a connection that
 * did not negotiate is an error (rsv1_frames), as without --deflate.
 *
 * Inflate cache: ringcast sends the same compressed bytes to every
 * subscriber of a frame, and with no context takeover the inflated result
 * depends on those bytes alone. So each worker keeps a hash table of the
 * compressed payloads it inflated and, when a message is byte-for-byte
 * identical to one of them (hash, length, memcmp), reuses its result
 * instead of running zlib; the JSON reports zlib runs (inflated_messages)
 * beside compressed_messages. --no-inflate-cache runs zlib on every
 * message. Without --deflate none of this code runs.
 *
 * TLS (--tls, wss://): each connection gets a wolfSSL client (Debian's
 * libwolfssl-dev) with SNI --tls-sni (default localhost); --tls-ca FILE
 * verifies the server's chain and that its certificate names the SNI host,
 * --tls-insecure skips verification. The TLS handshake runs as soon as the
 * TCP connect completes; the HTTP upgrade request waits in wbuf until it is
 * done and then goes out through wolfSSL_write. wolfSSL never touches the
 * socket for reading: the worker recv()s up to RBUF_SIZE ciphertext bytes
 * per ready socket exactly as in plain mode and hands them to wolfSSL
 * through a custom receive callback (one recv per event instead of two per
 * record, which would double the client's syscalls at 1M records/s); the
 * send callback send()s straight to the non-blocking socket. wolfSSL_read's
 * plaintext then takes the plain path (upgrade response, frame decoder).
 * A wolfSSL_write that would block is retried on EPOLLOUT with the same
 * bytes (wolfSSL keeps the encrypted record). wire_bytes counts ciphertext.
 *
 * Connect-phase figures (all modes; added fields only): handshakes_per_s =
 * handshakes completed during the ramp ÷ connect_s, where a handshake is
 * the TLS handshake with --tls and the WebSocket upgrade (101) without;
 * ramp_client_cpu_s is this process's CPU time during the ramp. Measuring
 * handshake capacity needs a ramp the client does not pace: a high
 * --connect-rate with --max-pending N (at most N connections between
 * connect() and the 101 at once, so a slow server is not buried under
 * SYNs and handshake timeouts).
 */
#include <wolfssl/options.h> /* first: wolfSSL's build configuration */
#include <wolfssl/ssl.h>
#include <wolfssl/wolfio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "ringcast/ws.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define HEAD_CAP 192u         /* bytes of each message kept for parsing the prefix */
#define CTRL_CAP 125          /* largest control-frame payload (RFC 6455 5.5) */
#define HS_CAP 4096           /* largest HTTP response head we accept */
#ifndef RBUF_SIZE /* -DRBUF_SIZE=7 splits every frame across reads (a decoder test) */
#define RBUF_SIZE (256 * 1024) /* one recv() per ready socket, per worker buffer */
#endif
#define MAX_EVENTS 512
#define TLS_PLAIN_CAP (16 * 1024) /* --tls: plaintext per wolfSSL_read (one record at most) */
#define ZOUT_INIT (64 * 1024)        /* inflate output buffer per worker, grows by doubling */
#define PMD_MAX (64u * 1024 * 1024)  /* largest compressed or inflated message accepted */
#define PMD_CACHE_SETS 8192          /* inflate cache per worker: sets (a power of two) … */
#define PMD_CACHE_WAYS 2             /* … of this many entries */

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

struct options {
    const char *host;
    int port;
    const char *path;
    int conns;
    double connect_rate;
    double connect_timeout_s;
    int threads;
    struct sockaddr_in *src;
    int nsrc;
    const char *src_addrs_str;
    const char *topics_str;
    const char *topic_list_path;
    int topic_count;    /* M: how many topics are in play (0 = all listed) */
    int topics_per_conn; /* k (0 = all M) */
    double warmup_s;
    double duration_s; /* 0 = until SIGINT */
    const char *json_path;
    int min_open; /* -1 = conns */
    bool deflate;       /* offer permessage-deflate (on some connections) */
    int deflate_every;  /* offer it on connections i with i % deflate_every == 0 (0 = none) */
    bool inflate_cache; /* reuse earlier inflates of identical compressed bytes */
    int max_pending;    /* most connections between connect() and the 101 at once (0 = no limit) */
    bool tls;           /* wss://: a wolfSSL client per connection */
    const char *tls_ca; /* verify the server against this CA file */
    bool tls_insecure;  /* no verification */
    const char *tls_sni;
    const char *tls_ciphers; /* wolfSSL cipher list (NULL = wolfSSL's default) */
    const char *tls_version; /* "1.2", "1.3" or NULL (highest both sides have) */
    bool rx_timestamps;      /* SO_TIMESTAMPNS: also measure to the kernel's receive time */
};

static struct options opt = {
    .host = "127.0.0.1",
    .port = 8080,
    .path = "/ws",
    .conns = 1,
    .connect_rate = 2000,
    .connect_timeout_s = 10,
    .threads = 1,
    .warmup_s = 2,
    .duration_s = 10,
    .min_open = -1,
    .inflate_cache = true,
    .tls_sni = "localhost",
};

static WOLFSSL_CTX *g_tls_ctx;

static struct sockaddr_in g_dst;

static bool pmd_offered(uint32_t gidx) { return opt.deflate_every > 0 && gidx % (uint32_t)opt.deflate_every == 0; }

/* Topics in play: names[0..ntopics), with a hash index name → position. */
static char **g_topics;
static uint32_t g_ntopics;
static uint32_t *g_topic_hash; /* position + 1, 0 = empty */
static uint32_t g_topic_hash_mask;

/* The server's demo symbols, in its order (src/ingest/demo.c): topic i is
 * "demo:<known[i]>", and "demo:SYM<i>" past the end of the list. */
static const char *const demo_symbols[] = {
    "BTC",  "ETH",    "SOL",    "XRP",    "ADA",    "DOGE", "AVAX", "DOT",  "LINK", "MATIC",  "LTC",
    "BCH",  "ATOM",   "UNI",    "XLM",    "ETC",    "FIL",  "APT",  "ARB",  "OP",   "NEAR",   "ICP",
    "HBAR", "VET",    "ALGO",   "BNB",    "TRX",    "SHIB", "AAVE", "AAPL", "MSFT", "NVDA",   "AMZN",
    "GOOGL", "META",  "TSLA",   "JPM",    "V",      "SPY",  "QQQ",  "EURUSD", "GBPUSD", "USDJPY",
    "XAUUSD", "NFLX", "AMD",    "INTC",   "ORCL",   "CRM",  "ADBE", "AVGO", "COST", "WMT",    "KO",
    "PEP",  "DIS",    "BAC",    "XOM",    "JNJ",    "UNH",  "IWM",  "AUDUSD", "USDCHF", "XAGUSD",
};
#define N_DEMO_SYMBOLS (sizeof demo_symbols / sizeof demo_symbols[0])

/* ------------------------------------------------------------------ */
/* Shared timeline state                                              */
/* ------------------------------------------------------------------ */

static atomic_int g_stop;      /* workers leave their loop */
static atomic_int g_measuring; /* counters count */
static volatile sig_atomic_t g_sigint;
static struct timespec g_ramp_start; /* CLOCK_MONOTONIC, set before workers start */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        die("out of memory");
    return p;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double since_ramp_start(void)
{
    return mono_s() - ((double)g_ramp_start.tv_sec + g_ramp_start.tv_nsec * 1e-9);
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sec-WebSocket-Accept and the key: the server's own rc_ws_accept_key and
 * rc_base64_encode (src/ws/handshake.c, linked in by the build), so client
 * and server can never disagree on the handshake arithmetic. */
static void ws_accept_for_key(const char *key, char out[29]) { rc_ws_accept_key(key, strlen(key), out); }

static size_t base64(const uint8_t *in, size_t n, char *out)
{
    size_t len = rc_base64_encode(in, n, out);
    out[len] = 0;
    return len;
}

/* ------------------------------------------------------------------ */
/* Latency histogram: log-linear, 1 µs .. 60 s                         */
/* ------------------------------------------------------------------ */

/*
 * Values below 128 µs have a bucket each. Above, every power-of-two range
 * [2^k, 2^(k+1)) is cut into 128 equal buckets, and a bucket reports its
 * midpoint: the error is at most half a bucket, 1/256 of the value (0.4 %).
 * 60 s < 2^26 µs, so 19 ranges above 2^7 and 20 * 128 buckets in all.
 */
#define HIST_SUB 128
#define HIST_SUB_BITS 7
#define HIST_MAX_US 60000000ull
#define HIST_BUCKETS (20 * HIST_SUB)

static unsigned hist_index(uint64_t v)
{
    if (v > HIST_MAX_US)
        v = HIST_MAX_US;
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned k = 63u - (unsigned)__builtin_clzll(v); /* >= 7 */
    unsigned shift = k - HIST_SUB_BITS;
    return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

static uint64_t hist_value(unsigned idx)
{
    if (idx < HIST_SUB)
        return idx;
    unsigned shift = idx / HIST_SUB - 1;
    uint64_t lower = (uint64_t)(idx % HIST_SUB + HIST_SUB) << shift;
    return lower + (((uint64_t)1 << shift) >> 1);
}

/* ------------------------------------------------------------------ */
/* Connections and workers                                            */
/* ------------------------------------------------------------------ */

/* C_TLS: TCP connected, TLS handshake under way (--tls only); C_HANDSHAKE: HTTP upgrade. */
enum conn_state { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED, C_TLS };

struct sub {
    uint32_t topic; /* position in g_topics */
    uint32_t seen;  /* 0 until the first message sets the baseline */
    uint64_t last;  /* highest seq seen */
};

struct conn {
    int fd;
    uint8_t state;
    uint8_t out_armed; /* EPOLLOUT in the interest set */
    uint8_t acked;     /* the "subscribed" reply arrived */
    /* frame decoder */
    uint8_t in_frame;    /* header complete, payload pending */
    uint8_t hdr_have, hdr_need;
    uint8_t frame_op, frame_fin;
    uint8_t msg_active;     /* inside a data message (between first frame and FIN) */
    uint8_t msg_compressed; /* RSV1 on its first frame: 1 = not negotiated (skipped), 2 = inflate */
    uint8_t msg_binary;
    uint8_t pmd;            /* permessage-deflate negotiated */
    uint8_t zdone;          /* current compressed message: 1 = inflated, 2 = failed */
    uint8_t ctrl_len;
    uint8_t hdr[14];
    uint16_t head_len;
    uint16_t hs_len;
    uint32_t gidx; /* global connection number */
    uint64_t remaining; /* payload bytes left in the current frame */
    uint64_t msg_len;
    double t_start; /* since ramp start, for the handshake timeout */
    char head[HEAD_CAP];
    uint8_t ctrl[CTRL_CAP];
    char accept[29];
    char *hs; /* HTTP response head while in C_HANDSHAKE */
    char *wbuf;
    uint32_t wlen, woff, wcap;
    struct sub *subs;
    uint32_t nsubs;
    uint8_t *zbuf; /* a compressed message that did not arrive in one piece */
    uint32_t zlen, zcap;
    /* --tls */
    WOLFSSL *ssl;
    const uint8_t *tin; /* ciphertext of this recv() not yet handed to wolfSSL */
    size_t tin_len;
};

/* A latency distribution, µs. */
struct lat {
    uint64_t count, sum, max, negative;
    uint64_t hist[HIST_BUCKETS];
};

struct stats {
    uint64_t deliveries, bytes, lost, dup;
    struct lat lat;  /* receive (after this process read and decoded the message) − the message's ts */
    struct lat klat; /* --rx-timestamps: the kernel's receive timestamp of the read − ts */
    /* errors, whole run (not only the window) */
    uint64_t server_closes, socket_errors, protocol_errors, rsv1_frames, parse_errors, unexpected_topic,
        error_messages;
    uint64_t other_messages, pings;
    /* permessage-deflate: connections (whole run), messages and bytes (window) */
    uint64_t deflate_negotiated, deflate_declined, inflate_errors;
    uint64_t compressed_messages, inflated_messages, payload_bytes;
    /* --tls: errors after the handshake (whole run), handshake times */
    uint64_t tls_errors;
    uint64_t tls_handshakes, tls_hs_us_sum, tls_hs_us_max;
};

/* A compressed payload this worker inflated, and the result's head and length. */
struct pmd_cache_entry {
    uint64_t hash;
    uint8_t *in;
    uint32_t len, cap; /* len 0 = unused (an empty payload is never cached) */
    uint64_t out_len;
    uint16_t head_len;
    char head[HEAD_CAP];
};

struct worker {
    int id;
    pthread_t thread;
    int ep;
    struct conn *conns;
    uint32_t nconns;
    uint32_t next_start; /* conns[0..next_start) have been started */
    double rate;         /* this worker's share of --connect-rate */
    uint64_t rng;
    uint8_t *rbuf;
    int64_t rx_us; /* --rx-timestamps: kernel receive time (µs, wall) of the read being decoded; -1 = none */
    uint8_t *pbuf; /* --tls: plaintext out of wolfSSL_read */
    double last_timeout_scan;
    /* --deflate only */
    z_stream zs;
    uint8_t *zout;
    size_t zout_cap;
    struct pmd_cache_entry *cache; /* PMD_CACHE_SETS × PMD_CACHE_WAYS, see pmd_finish() */
    uint8_t *cache_mru;            /* per set: the way used last */
    struct stats st;
    /* read by the main thread while running */
    _Atomic uint32_t n_open, n_established, n_failed, n_subscribed;
    _Atomic uint32_t n_tls_done; /* TLS handshakes completed */
    char tls_version[16], tls_cipher[64], tls_group[32]; /* of this worker's first TLS connection */
    char pad[64];
};

static struct worker *g_workers;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static bool measuring(void) { return atomic_load_explicit(&g_measuring, memory_order_relaxed) != 0; }

/* --- write side ------------------------------------------------------ */

static void wbuf_append(struct conn *c, const void *p, size_t n)
{
    if (c->woff > 0 && c->woff == c->wlen)
        c->woff = c->wlen = 0;
    if (c->wlen + n > c->wcap) {
        if (c->woff > 0) { /* compact first */
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        if (c->wlen + n > c->wcap) {
            uint32_t cap = c->wcap ? c->wcap : 256;
            while (cap < c->wlen + n)
                cap *= 2;
            char *nb = realloc(c->wbuf, cap);
            if (nb == NULL)
                die("out of memory");
            c->wbuf = nb;
            c->wcap = cap;
        }
    }
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += (uint32_t)n;
}

/* Queues one masked client frame (RFC 6455 5.3: clients always mask). */
static void queue_frame(struct worker *w, struct conn *c, uint8_t opcode, const void *payload, size_t len)
{
    uint8_t hdr[14];
    size_t h = 0;
    hdr[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        hdr[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (uint8_t)(len >> 8);
        hdr[h++] = (uint8_t)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t mask32 = (uint32_t)(rng_next(&w->rng) >> 32);
    uint8_t mask[4];
    memcpy(mask, &mask32, 4);
    memcpy(hdr + h, mask, 4);
    h += 4;
    wbuf_append(c, hdr, h);
    uint32_t at = c->wlen;
    wbuf_append(c, payload, len);
    uint8_t *p = (uint8_t *)c->wbuf + at;
    for (size_t i = 0; i < len; i++)
        p[i] ^= mask[i & 3];
}

static void set_out_interest(struct worker *w, struct conn *c, bool want)
{
    if (c->out_armed == want)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->out_armed = want;
}

/* --- TLS (--tls) ----------------------------------------------------- */

/* wolfSSL's view of the socket. Receive: the ciphertext of the current
 * recv() (c->tin), then WANT_READ; wolfSSL keeps a partial record itself. */
static int tls_recv_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct conn *c = ctx;
    if (c->tin_len == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = (size_t)sz < c->tin_len ? (size_t)sz : c->tin_len;
    memcpy(buf, c->tin, n);
    c->tin += n;
    c->tin_len -= n;
    return (int)n;
}

static int tls_send_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct conn *c = ctx;
    for (;;) {
        ssize_t n = send(c->fd, buf, (size_t)sz, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return WOLFSSL_CBIO_ERR_WANT_WRITE;
        if (errno == ECONNRESET)
            return WOLFSSL_CBIO_ERR_CONN_RST;
        if (errno == EPIPE)
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
}

static const char *tls_error_string(WOLFSSL *ssl, int ret, char *buf, size_t cap)
{
    int err = wolfSSL_get_error(ssl, ret);
    char es[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)err, es, sizeof es);
    snprintf(buf, cap, "TLS: %s (%d)", es, err);
    return buf;
}

/* Sends what is queued through wolfSSL (only once the handshake is done:
 * until then the upgrade request waits). A write that would block keeps
 * woff where it is and is retried with the same bytes (and maybe more) on
 * EPOLLOUT, as wolfSSL_write requires. Returns 0 or -errno. */
static int tls_flush(struct worker *w, struct conn *c)
{
    if (c->state == C_TLS || c->state == C_CONNECTING)
        return 0;
    if (c->woff < c->wlen) {
        int len = (int)(c->wlen - c->woff);
        int r = wolfSSL_write(c->ssl, c->wbuf + c->woff, len);
        if (r != len) {
            int err = wolfSSL_get_error(c->ssl, r);
            if (err == WOLFSSL_ERROR_WANT_WRITE) {
                set_out_interest(w, c, true);
                return 0;
            }
            if (err == WOLFSSL_ERROR_WANT_READ)
                return 0; /* retried after the next read */
            w->st.tls_errors++;
            return -EPIPE;
        }
    }
    c->woff = c->wlen = 0;
    set_out_interest(w, c, false);
    return 0;
}

/* Sends what is queued; returns 0, or -errno on a socket error. */
static int conn_flush(struct worker *w, struct conn *c)
{
    if (c->ssl != NULL)
        return tls_flush(w, c);
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n > 0) {
            c->woff += (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out_interest(w, c, true);
            return 0;
        }
        return n < 0 ? -errno : -EPIPE;
    }
    c->woff = c->wlen = 0;
    set_out_interest(w, c, false);
    return 0;
}

/* --- connection life cycle ------------------------------------------- */

static void conn_close(struct worker *w, struct conn *c)
{
    if (c->state == C_CLOSED || c->state == C_IDLE)
        return;
    if (c->state == C_OPEN)
        atomic_fetch_sub_explicit(&w->n_open, 1, memory_order_relaxed);
    if (c->ssl != NULL) {
        wolfSSL_free(c->ssl); /* no close_notify: like the plain mode, the socket just closes */
        c->ssl = NULL;
        c->tin = NULL;
        c->tin_len = 0;
    }
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    c->state = C_CLOSED;
    free(c->hs);
    c->hs = NULL;
    free(c->wbuf);
    c->wbuf = NULL;
    c->wlen = c->woff = c->wcap = 0;
    free(c->zbuf);
    c->zbuf = NULL;
    c->zlen = c->zcap = 0;
}

/* Before the 101: counts a handshake failure. */
static void conn_fail(struct worker *w, struct conn *c, const char *why)
{
    if (c->state == C_CLOSED)
        return;
    uint32_t nf = atomic_fetch_add_explicit(&w->n_failed, 1, memory_order_relaxed);
    if (nf < 3 && w->id == 0)
        fprintf(stderr, "loadgen: connection %u failed: %s\n", c->gidx, why);
    conn_close(w, c);
}

static void conn_start(struct worker *w, struct conn *c)
{
    c->t_start = since_ramp_start();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        uint32_t nf = atomic_fetch_add_explicit(&w->n_failed, 1, memory_order_relaxed);
        if (nf < 3)
            fprintf(stderr, "loadgen: socket: %s%s\n", strerror(errno),
                    errno == EMFILE ? " (raise RLIMIT_NOFILE)" : "");
        c->state = C_CLOSED;
        return;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.rx_timestamps && setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
        fprintf(stderr, "loadgen: SO_TIMESTAMPNS: %s\n", strerror(errno));
    if (opt.nsrc > 0) {
        /* The port is picked at connect() time for the full 4-tuple, so each
         * source address adds its own ~28K ephemeral ports per destination. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        const struct sockaddr_in *src = &opt.src[c->gidx % (uint32_t)opt.nsrc];
        if (bind(fd, (const struct sockaddr *)src, sizeof *src) < 0) {
            conn_fail(w, c, strerror(errno));
            return;
        }
    }

    /* Random 16-byte key, and the accept value the server must return. */
    uint8_t raw[16];
    uint64_t r1 = rng_next(&w->rng), r2 = rng_next(&w->rng);
    memcpy(raw, &r1, 8);
    memcpy(raw + 8, &r2, 8);
    char key[25];
    base64(raw, 16, key);
    ws_accept_for_key(key, c->accept);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%sUser-Agent: ringcast-loadgen\r\n\r\n",
                     opt.path, opt.host, opt.port, key,
                     pmd_offered(c->gidx) ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                                          : "");
    wbuf_append(c, req, (size_t)n);

    if (opt.tls) {
        c->ssl = wolfSSL_new(g_tls_ctx);
        if (c->ssl == NULL) {
            conn_fail(w, c, "wolfSSL_new failed");
            return;
        }
        wolfSSL_SetIOReadCtx(c->ssl, c);
        wolfSSL_SetIOWriteCtx(c->ssl, c);
        if (wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, opt.tls_sni, (unsigned short)strlen(opt.tls_sni)) !=
            WOLFSSL_SUCCESS) {
            conn_fail(w, c, "wolfSSL_UseSNI failed");
            return;
        }
        if (opt.tls_ca != NULL && wolfSSL_check_domain_name(c->ssl, opt.tls_sni) != WOLFSSL_SUCCESS) {
            conn_fail(w, c, "wolfSSL_check_domain_name failed");
            return;
        }
    }

    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        conn_fail(w, c, strerror(errno));
        return;
    }
    c->out_armed = 1;
    if (connect(fd, (const struct sockaddr *)&g_dst, sizeof g_dst) < 0 && errno != EINPROGRESS) {
        conn_fail(w, c, strerror(errno));
        return;
    }
    /* Completion (or failure) of the connect shows up as EPOLLOUT/EPOLLERR. */
}

/* Once the 101 is checked: queue the subscribe message. */
static void conn_opened(struct worker *w, struct conn *c)
{
    c->state = C_OPEN;
    if (c->pmd)
        w->st.deflate_negotiated++;
    else if (pmd_offered(c->gidx))
        w->st.deflate_declined++;
    free(c->hs);
    c->hs = NULL;
    atomic_fetch_add_explicit(&w->n_open, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->n_established, 1, memory_order_relaxed);

    size_t cap = 64;
    for (uint32_t i = 0; i < c->nsubs; i++)
        cap += strlen(g_topics[c->subs[i].topic]) + 3;
    char *msg = xcalloc(1, cap);
    size_t n = (size_t)snprintf(msg, cap, "{\"type\":\"subscribe\",\"topics\":[");
    for (uint32_t i = 0; i < c->nsubs; i++)
        n += (size_t)snprintf(msg + n, cap - n, "%s\"%s\"", i ? "," : "", g_topics[c->subs[i].topic]);
    n += (size_t)snprintf(msg + n, cap - n, "]}");
    queue_frame(w, c, 0x1, msg, n);
    free(msg);
}

/* --- HTTP upgrade response ------------------------------------------- */

static bool token_ieq(const char *p, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n == m && strncasecmp(p, lit, m) == 0;
}

/* The value v[0..n) of the Sec-WebSocket-Extensions response header, when we
 * offered "permessage-deflate; client_max_window_bits": NULL if it accepts
 * the offer in a way this client handles, else what is wrong. */
static const char *check_pmd_response(const char *v, size_t n)
{
    const char *end = v + n, *p = v;
    if (memchr(v, ',', n) != NULL)
        return "more than one extension in the response";
    unsigned seen = 0;
    for (int i = 0; p <= end; i++) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *e = semi ? semi : end;
        const char *a = p, *b = e;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        const char *eq = memchr(a, '=', (size_t)(b - a));
        const char *ne = eq ? eq : b, *va = eq ? eq + 1 : b, *vb = b;
        while (ne > a && (ne[-1] == ' ' || ne[-1] == '\t'))
            ne--;
        while (va < vb && (*va == ' ' || *va == '\t'))
            va++;
        if (vb - va >= 2 && *va == '"' && vb[-1] == '"') {
            va++;
            vb--;
        }
        size_t nl = (size_t)(ne - a);
        if (i == 0) {
            if (eq || !token_ieq(a, nl, "permessage-deflate"))
                return "extension negotiated that we did not offer";
        } else {
            unsigned bit;
            bool valued;
            if (token_ieq(a, nl, "server_no_context_takeover"))
                bit = 1, valued = false;
            else if (token_ieq(a, nl, "client_no_context_takeover"))
                bit = 2, valued = false;
            else if (token_ieq(a, nl, "server_max_window_bits"))
                bit = 4, valued = true;
            else if (token_ieq(a, nl, "client_max_window_bits"))
                bit = 8, valued = true;
            else
                return "unknown permessage-deflate parameter in the response";
            if (seen & bit)
                return "permessage-deflate parameter twice in the response";
            seen |= bit;
            if (valued != (eq != NULL))
                return "permessage-deflate parameter with a wrong value";
            if (valued) {
                int bits = 0;
                for (const char *q = va; q < vb; q++) {
                    if (*q < '0' || *q > '9' || bits > 15)
                        return "bad permessage-deflate window bits";
                    bits = bits * 10 + (*q - '0');
                }
                if (vb - va > 2 || va == vb || *va == '0' || bits < 8 || bits > 15)
                    return "bad permessage-deflate window bits";
            }
        }
        if (semi == NULL)
            break;
        p = semi + 1;
    }
    /* Our inflater is reset before every message: without this the server
     * could refer to earlier messages. */
    if (!(seen & 1))
        return "permessage-deflate without server_no_context_takeover (loadgen inflates each message alone)";
    return NULL;
}

/* head[0..len) ends with the blank line. Returns NULL if it is a valid
 * 101 upgrade for our key, else what is wrong; *pmd = 1 when it accepts
 * our permessage-deflate offer. */
static const char *check_upgrade_response(const struct conn *c, const char *head, size_t len, uint8_t *pmd)
{
    *pmd = 0;
    if (len < 12 || memcmp(head, "HTTP/1.1 101", 12) != 0)
        return "status is not HTTP/1.1 101";
    bool upgrade = false, connection = false, accept = false;
    const char *p = memchr(head, '\n', len);
    const char *end = head + len;
    if (p == NULL)
        return "malformed head";
    p++;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            break;
        const char *line_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (line_end == p)
            break; /* blank line */
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon == NULL)
            return "header line without colon";
        const char *v = colon + 1, *ve = line_end;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t nl = (size_t)(colon - p), vl = (size_t)(ve - v);
        if (token_ieq(p, nl, "upgrade")) {
            upgrade = token_ieq(v, vl, "websocket");
        } else if (token_ieq(p, nl, "connection")) {
            for (const char *q = v; q + 7 <= ve; q++)
                if (strncasecmp(q, "upgrade", 7) == 0)
                    connection = true;
        } else if (token_ieq(p, nl, "sec-websocket-accept")) {
            accept = vl == 28 && memcmp(v, c->accept, 28) == 0;
            if (!accept)
                return "wrong Sec-WebSocket-Accept";
        } else if (token_ieq(p, nl, "sec-websocket-extensions")) {
            if (!pmd_offered(c->gidx))
                return "extension negotiated that we did not offer";
            if (*pmd)
                return "Sec-WebSocket-Extensions twice";
            const char *why = check_pmd_response(v, vl);
            if (why != NULL)
                return why;
            *pmd = 1;
        }
        p = eol + 1;
    }
    if (!upgrade)
        return "missing Upgrade: websocket";
    if (!connection)
        return "missing Connection: upgrade";
    if (!accept)
        return "missing Sec-WebSocket-Accept";
    return NULL;
}

/* --- messages -------------------------------------------------------- */

static uint32_t topic_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* Position of the topic named s[0..n), or -1. */
static int64_t topic_lookup(const char *s, size_t n)
{
    for (uint32_t i = topic_hash(s, n) & g_topic_hash_mask;; i = (i + 1) & g_topic_hash_mask) {
        uint32_t v = g_topic_hash[i];
        if (v == 0)
            return -1;
        const char *t = g_topics[v - 1];
        if (strncmp(t, s, n) == 0 && t[n] == 0)
            return v - 1;
    }
}

static struct sub *find_sub(struct conn *c, uint32_t topic)
{
    /* subs are sorted by topic */
    uint32_t lo = 0, hi = c->nsubs;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (c->subs[mid].topic < topic)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->nsubs && c->subs[lo].topic == topic ? &c->subs[lo] : NULL;
}

/* Reads decimal digits at *p (after optional spaces); false if none. */
static bool parse_u64(const char **p, const char *end, uint64_t *out)
{
    const char *q = *p;
    while (q < end && *q == ' ')
        q++;
    if (q >= end || *q < '0' || *q > '9')
        return false;
    uint64_t v = 0;
    while (q < end && *q >= '0' && *q <= '9')
        v = v * 10 + (uint64_t)(*q++ - '0');
    *p = q;
    *out = v;
    return true;
}

static void record_latency(struct lat *l, int64_t us)
{
    if (us < 0) {
        l->negative++;
        us = 0;
    }
    l->hist[hist_index((uint64_t)us)]++;
    l->count++;
    l->sum += (uint64_t)us;
    if ((uint64_t)us > l->max)
        l->max = (uint64_t)us;
}

static void lat_add(struct lat *to, const struct lat *from)
{
    to->count += from->count;
    to->sum += from->sum;
    if (from->max > to->max)
        to->max = from->max;
    to->negative += from->negative;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        to->hist[i] += from->hist[i];
}

/* True if head[0..len) has "type" : "<value>" (any spaces around the colon). */
static bool json_type_is(const char *head, size_t len, const char *value)
{
    const char *end = head + len, *p = head;
    size_t vl = strlen(value);
    while ((p = memmem(p, (size_t)(end - p), "\"type\"", 6)) != NULL) {
        p += 6;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p >= end || *p != ':')
            continue;
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if ((size_t)(end - p) >= vl + 2 && p[0] == '"' && memcmp(p + 1, value, vl) == 0 && p[vl + 1] == '"')
            return true;
    }
    return false;
}

static void pmd_finish(struct worker *w, struct conn *c, const uint8_t *in, size_t n);

static void msg_complete(struct worker *w, struct conn *c, int64_t now_us)
{
    struct stats *st = &w->st;
    if (c->msg_compressed) {
        if (c->msg_compressed == 1)
            return; /* RSV1 without negotiation: counted in rsv1_frames */
        if (c->zdone == 0)
            pmd_finish(w, c, c->zbuf, c->zlen);
        if (c->zdone != 1)
            return; /* counted in inflate_errors */
        if (measuring())
            st->compressed_messages++;
    }
    const char *h = c->head, *end = c->head + c->head_len;
    static const char topic_prefix[] = "{\"topic\":\"";
    if (!c->msg_binary && c->head_len >= sizeof topic_prefix - 1 &&
        memcmp(h, topic_prefix, sizeof topic_prefix - 1) == 0) {
        const char *name = h + sizeof topic_prefix - 1;
        const char *q = memchr(name, '"', (size_t)(end - name));
        uint64_t seq, ts;
        const char *s;
        if (q == NULL || (s = memmem(q, (size_t)(end - q), "\"seq\":", 6)) == NULL) {
            st->parse_errors++;
            return;
        }
        s += 6;
        if (!parse_u64(&s, end, &seq)) {
            st->parse_errors++;
            return;
        }
        const char *t = memmem(s, (size_t)(end - s), "\"ts\":", 5);
        if (t == NULL) {
            st->parse_errors++;
            return;
        }
        t += 5;
        if (!parse_u64(&t, end, &ts)) {
            st->parse_errors++;
            return;
        }
        int64_t topic = topic_lookup(name, (size_t)(q - name));
        struct sub *sb = topic < 0 ? NULL : find_sub(c, (uint32_t)topic);
        if (sb == NULL) {
            st->unexpected_topic++;
            return;
        }
        bool meas = measuring();
        if (!sb->seen) {
            /* The subscription began mid-stream: this sets the baseline. */
            sb->seen = 1;
            sb->last = seq;
        } else if (seq == sb->last + 1) {
            sb->last = seq;
        } else if (seq > sb->last + 1) {
            if (meas)
                st->lost += seq - sb->last - 1;
            sb->last = seq;
        } else if (meas) {
            st->dup++;
        }
        if (meas) {
            st->deliveries++;
            st->payload_bytes += c->msg_len;
            record_latency(&st->lat, now_us - (int64_t)ts);
            if (w->rx_us >= 0)
                record_latency(&st->klat, w->rx_us - (int64_t)ts);
        }
        return;
    }
    if (!c->acked && json_type_is(h, c->head_len, "subscribed")) {
        c->acked = 1;
        atomic_fetch_add_explicit(&w->n_subscribed, 1, memory_order_relaxed);
        return;
    }
    if (json_type_is(h, c->head_len, "error"))
        st->error_messages++;
    else
        st->other_messages++;
}

/* --- permessage-deflate ---------------------------------------------- */

/* Inflates one permessage-deflate payload in[0..n), with the 00 00 FF FF
 * tail appended, into w->zout (grown as needed). Returns the inflated
 * length, or -1 if it is not DEFLATE data that ends at a block boundary
 * (a truncated message) or inflates to more than PMD_MAX. */
static int64_t pmd_inflate(struct worker *w, const uint8_t *in, size_t n)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    z_stream *zs = &w->zs;
    if (n > PMD_MAX || inflateReset(zs) != Z_OK)
        return -1;
    const uint8_t *part[2] = {in, tail};
    size_t part_len[2] = {n, sizeof tail};
    size_t out = 0;
    w->st.inflated_messages += measuring();
    for (int k = 0; k < 2; k++) {
        zs->next_in = (Bytef *)part[k];
        zs->avail_in = (uInt)part_len[k];
        for (;;) {
            if (out == w->zout_cap) {
                if (w->zout_cap >= PMD_MAX)
                    return -1;
                uint8_t *nb = realloc(w->zout, w->zout_cap * 2);
                if (nb == NULL)
                    die("out of memory");
                w->zout = nb;
                w->zout_cap *= 2;
            }
            zs->next_out = w->zout + out;
            zs->avail_out = (uInt)(w->zout_cap - out);
            int rc = inflate(zs, Z_SYNC_FLUSH);
            out = (size_t)(zs->next_out - w->zout);
            if (rc == Z_STREAM_END)
                return (int64_t)out; /* a BFINAL block: what follows (the tail) is padding */
            if (rc != Z_OK && rc != Z_BUF_ERROR)
                return -1;
            if (zs->avail_out == 0)
                continue; /* maybe more to come: grow */
            if (zs->avail_in == 0)
                break;
            if (rc == Z_BUF_ERROR)
                return -1; /* no progress */
        }
    }
    /* After the tail's empty stored block the decoder waits for a block
     * header (data_type bit 128); anywhere else the message was cut short. */
    return (zs->data_type & 128) ? (int64_t)out : -1;
}

/* 64-bit hash of p[0..n), a word at a time (the cache key; memcmp decides). */
static uint64_t pmd_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    uint64_t v = 0;
    memcpy(&v, p + i, n - i);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

/* The whole compressed payload of the current message is in[0..n): inflate
 * it (or reuse the result of an earlier inflate of identical bytes) and set
 * head / msg_len as an uncompressed message would have. The cache is a
 * 2-way set-associative table indexed by a hash of the payload, 16K entries:
 * a client that falls behind reads its connections at very different points
 * of the stream (up to hundreds of messages apart); a small cache then
 * misses more and more, the client falls further behind and never recovers. */
static void pmd_finish(struct worker *w, struct conn *c, const uint8_t *in, size_t n)
{
    struct pmd_cache_entry *e = NULL;
    uint64_t hash = 0;
    if (opt.inflate_cache && n > 0) {
        hash = pmd_hash(in, n);
        size_t set = (size_t)(hash & (PMD_CACHE_SETS - 1));
        struct pmd_cache_entry *ways = &w->cache[set * PMD_CACHE_WAYS];
        for (unsigned k = 0; k < PMD_CACHE_WAYS; k++) {
            const struct pmd_cache_entry *x = &ways[k];
            if (x->hash == hash && x->len == n && memcmp(in, x->in, n) == 0) {
                memcpy(c->head, x->head, x->head_len);
                c->head_len = x->head_len;
                c->msg_len = x->out_len;
                c->zdone = 1;
                w->cache_mru[set] = (uint8_t)k;
                return;
            }
        }
        unsigned victim = (w->cache_mru[set] + 1) % PMD_CACHE_WAYS; /* not the one used last */
        e = &ways[victim];
        w->cache_mru[set] = (uint8_t)victim;
    }
    int64_t out = pmd_inflate(w, in, n);
    if (out < 0) {
        w->st.inflate_errors++;
        c->zdone = 2;
        return;
    }
    size_t h = (size_t)out < HEAD_CAP ? (size_t)out : HEAD_CAP;
    memcpy(c->head, w->zout, h);
    c->head_len = (uint16_t)h;
    c->msg_len = (uint64_t)out;
    c->zdone = 1;
    if (e != NULL) {
        if (n > e->cap) {
            free(e->in);
            e->cap = (uint32_t)((n + 63) & ~(size_t)63);
            e->in = malloc(e->cap);
            if (e->in == NULL)
                die("out of memory");
        }
        memcpy(e->in, in, n);
        e->hash = hash;
        e->len = (uint32_t)n;
        memcpy(e->head, c->head, h);
        e->head_len = (uint16_t)h;
        e->out_len = (uint64_t)out;
    }
}

/* A piece of a compressed message's payload (before c->remaining counts it). */
static void pmd_piece(struct worker *w, struct conn *c, const uint8_t *p, size_t n)
{
    if (c->zdone)
        return; /* failed already (too large) */
    if (c->zlen == 0 && n == c->remaining && c->frame_fin) {
        pmd_finish(w, c, p, n); /* the whole message in one piece: no copy */
        return;
    }
    if ((uint64_t)c->zlen + n > PMD_MAX) {
        w->st.inflate_errors++;
        c->zdone = 2;
        return;
    }
    if (c->zlen + n > c->zcap) {
        uint32_t cap = c->zcap ? c->zcap : 1024;
        while (cap < c->zlen + n)
            cap *= 2;
        uint8_t *nb = realloc(c->zbuf, cap);
        if (nb == NULL)
            die("out of memory");
        c->zbuf = nb;
        c->zcap = cap;
    }
    memcpy(c->zbuf + c->zlen, p, n);
    c->zlen += (uint32_t)n;
}

/*
 * A piece of the current data message's payload, in order. Only the first
 * HEAD_CAP bytes are kept: the prefix is all we parse. A compressed message
 * goes to pmd_piece() instead, which fills the head from the inflated bytes.
 */
static void msg_payload(struct worker *w, struct conn *c, const uint8_t *p, size_t n)
{
    c->msg_len += n;
    if (c->msg_compressed) {
        if (c->msg_compressed == 2)
            pmd_piece(w, c, p, n);
        return;
    }
    if (c->head_len < HEAD_CAP) {
        size_t take = HEAD_CAP - c->head_len < n ? HEAD_CAP - c->head_len : n;
        memcpy(c->head + c->head_len, p, take);
        c->head_len = (uint16_t)(c->head_len + take);
    }
}

/* --- frame decoder --------------------------------------------------- */

/* Header complete in c->hdr[0..hdr_need). Returns 0 or -1 (protocol error). */
static int frame_begin(struct worker *w, struct conn *c)
{
    const uint8_t *b = c->hdr;
    uint8_t fin = b[0] >> 7, rsv = (b[0] >> 4) & 7, op = b[0] & 15;
    if (b[1] & 0x80)
        return -1; /* servers never mask */
    if (rsv & 3)
        return -1; /* RSV2/RSV3: no extension defines them */
    uint64_t len = b[1] & 127;
    if (len == 126) {
        len = (uint64_t)b[2] << 8 | b[3];
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | b[2 + i];
        if (len >> 63)
            return -1;
    }
    if (op >= 8) {
        if (!fin || len > CTRL_CAP || rsv || (op != 8 && op != 9 && op != 10))
            return -1;
        c->ctrl_len = 0;
    } else if (op == 0) {
        if (!c->msg_active || rsv)
            return -1; /* RSV1 belongs on the first frame only */
    } else if (op == 1 || op == 2) {
        if (c->msg_active)
            return -1; /* a new message inside a fragmented one */
        c->msg_active = 1;
        c->msg_binary = op == 2;
        c->msg_compressed = (rsv & 4) != 0;
        c->msg_len = 0;
        c->head_len = 0;
        if (c->msg_compressed) {
            if (c->pmd) {
                c->msg_compressed = 2;
                c->zlen = 0;
                c->zdone = 0;
            } else {
                w->st.rsv1_frames++;
            }
        }
    } else {
        return -1;
    }
    c->frame_op = op;
    c->frame_fin = fin;
    c->remaining = len;
    return 0;
}

/* Current frame's payload fully read. Returns 0, or -1 to close. */
static int frame_end(struct worker *w, struct conn *c, int64_t now_us)
{
    switch (c->frame_op) {
    case 0:
    case 1:
    case 2:
        if (c->frame_fin) {
            msg_complete(w, c, now_us);
            c->msg_active = 0;
        }
        return 0;
    case 9: /* ping → pong with the same payload */
        w->st.pings++;
        queue_frame(w, c, 0xA, c->ctrl, c->ctrl_len);
        return 0;
    case 10:
        return 0;
    default: /* close */
        w->st.server_closes++;
        return -1;
    }
}

/* Feeds received bytes. Returns 0, or -1 when the connection must close
 * (the reason is already counted). */
static int ws_feed(struct worker *w, struct conn *c, const uint8_t *p, size_t n, int64_t now_us)
{
    while (n > 0) {
        if (!c->in_frame) {
            if (c->hdr_have < 2) {
                c->hdr[c->hdr_have++] = *p++;
                n--;
                if (c->hdr_have < 2)
                    continue;
                uint8_t l7 = c->hdr[1] & 127;
                c->hdr_need = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((c->hdr[1] & 0x80) ? 4 : 0));
            }
            while (c->hdr_have < c->hdr_need && n > 0) {
                c->hdr[c->hdr_have++] = *p++;
                n--;
            }
            if (c->hdr_have < c->hdr_need)
                return 0;
            c->hdr_have = 0;
            if (frame_begin(w, c) < 0) {
                w->st.protocol_errors++;
                return -1;
            }
            c->in_frame = 1;
        }
        size_t take = c->remaining < n ? (size_t)c->remaining : n;
        if (take > 0) {
            if (c->frame_op >= 8) {
                memcpy(c->ctrl + c->ctrl_len, p, take);
                c->ctrl_len = (uint8_t)(c->ctrl_len + take);
            } else {
                msg_payload(w, c, p, take);
            }
            p += take;
            n -= take;
            c->remaining -= take;
        }
        if (c->remaining == 0) {
            c->in_frame = 0;
            if (frame_end(w, c, now_us) < 0)
                return -1;
        }
    }
    return 0;
}

/* --- event handling -------------------------------------------------- */

/* Handshake bytes: collects the response head; the rest goes to ws_feed. */
static void handshake_input(struct worker *w, struct conn *c, const uint8_t *p, size_t n, int64_t now_us)
{
    if (c->hs == NULL)
        c->hs = xcalloc(1, HS_CAP);
    size_t old = c->hs_len;
    size_t copy = HS_CAP - old < n ? HS_CAP - old : n;
    memcpy(c->hs + old, p, copy);
    c->hs_len = (uint16_t)(old + copy);
    size_t from = old >= 3 ? old - 3 : 0;
    char *e = memmem(c->hs + from, c->hs_len - from, "\r\n\r\n", 4);
    if (e == NULL) {
        if (c->hs_len == HS_CAP)
            conn_fail(w, c, "response head too large");
        return;
    }
    size_t head_len = (size_t)(e + 4 - c->hs);
    const char *why = check_upgrade_response(c, c->hs, head_len, &c->pmd);
    if (why != NULL) {
        conn_fail(w, c, why);
        return;
    }
    conn_opened(w, c);
    size_t used = head_len - old; /* bytes of p that were head */
    if (n > used && ws_feed(w, c, p + used, n - used, now_us) < 0) {
        conn_close(w, c);
        return;
    }
    int rc = conn_flush(w, c);
    if (rc < 0) {
        w->st.socket_errors++;
        conn_close(w, c);
    }
}

/* Drives the TLS handshake (C_TLS); on success the upgrade request goes
 * out. Returns 0 (done or waiting), -1 if the connection failed. */
static int tls_handshake_step(struct worker *w, struct conn *c)
{
    int r = wolfSSL_connect(c->ssl);
    if (r != WOLFSSL_SUCCESS) {
        int err = wolfSSL_get_error(c->ssl, r);
        if (err == WOLFSSL_ERROR_WANT_READ) {
            set_out_interest(w, c, false);
            return 0;
        }
        if (err == WOLFSSL_ERROR_WANT_WRITE) {
            set_out_interest(w, c, true);
            return 0;
        }
        char why[WOLFSSL_MAX_ERROR_SZ + 32];
        conn_fail(w, c, tls_error_string(c->ssl, r, why, sizeof why));
        return -1;
    }
    uint64_t us = (uint64_t)((since_ramp_start() - c->t_start) * 1e6);
    w->st.tls_handshakes++;
    w->st.tls_hs_us_sum += us;
    if (us > w->st.tls_hs_us_max)
        w->st.tls_hs_us_max = us;
    if (w->tls_version[0] == 0) { /* read by the main thread after the join */
        snprintf(w->tls_version, sizeof w->tls_version, "%s", wolfSSL_get_version(c->ssl));
        const char *cn = wolfSSL_get_cipher_name(c->ssl);
        snprintf(w->tls_cipher, sizeof w->tls_cipher, "%s", cn ? cn : "?");
        const char *g = wolfSSL_get_curve_name(c->ssl);
        snprintf(w->tls_group, sizeof w->tls_group, "%s", g ? g : "");
    }
    atomic_fetch_add_explicit(&w->n_tls_done, 1, memory_order_relaxed);
    c->state = C_HANDSHAKE;
    if (tls_flush(w, c) < 0) {
        conn_fail(w, c, "sending the upgrade request over TLS failed");
        return -1;
    }
    return 0;
}

/* Bytes from the server, decrypted with --tls: the upgrade response, then frames. */
static void plain_input(struct worker *w, struct conn *c, const uint8_t *p, size_t n, int64_t now_us)
{
    if (c->state == C_HANDSHAKE || c->state == C_CONNECTING) {
        c->state = C_HANDSHAKE;
        handshake_input(w, c, p, n, now_us);
        return;
    }
    if (ws_feed(w, c, p, n, now_us) < 0) {
        conn_close(w, c);
        return;
    }
    if (c->woff < c->wlen && !c->out_armed && conn_flush(w, c) < 0) {
        w->st.socket_errors++;
        conn_close(w, c);
    }
}

/* Ciphertext p[0..n) from one recv(): handshake first, then every whole
 * record's plaintext into plain_input. */
static void tls_input(struct worker *w, struct conn *c, const uint8_t *p, size_t n, int64_t now_us)
{
    c->tin = p;
    c->tin_len = n;
    if (c->state == C_TLS && (tls_handshake_step(w, c) < 0 || c->state == C_TLS))
        goto out;
    while (c->state == C_HANDSHAKE || c->state == C_OPEN) {
        int r = wolfSSL_read(c->ssl, w->pbuf, TLS_PLAIN_CAP);
        if (r > 0) {
            plain_input(w, c, w->pbuf, (size_t)r, now_us);
            continue;
        }
        int err = wolfSSL_get_error(c->ssl, r);
        if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
            break;
        if (c->state == C_OPEN) {
            if (err == WOLFSSL_ERROR_ZERO_RETURN)
                w->st.server_closes++; /* close_notify */
            else
                w->st.tls_errors++;
            conn_close(w, c);
        } else {
            char why[WOLFSSL_MAX_ERROR_SZ + 32];
            conn_fail(w, c, tls_error_string(c->ssl, r, why, sizeof why));
        }
        break;
    }
out:
    if (c->state != C_CLOSED && c->tin_len > 0) {
        /* wolfSSL stopped (WANT_WRITE while reading) before taking all of
         * this recv's bytes: they would be lost, so the stream is broken */
        w->st.tls_errors++;
        if (c->state == C_OPEN)
            conn_close(w, c);
        else
            conn_fail(w, c, "TLS: input left over");
    }
    if (c->state != C_CLOSED) {
        c->tin = NULL;
        c->tin_len = 0;
    }
}

static void on_readable(struct worker *w, struct conn *c)
{
    /* With --rx-timestamps, SCM_TIMESTAMPNS on TCP: when the last skb this
     * read consumed arrived, so every message completed by this read was in
     * this process's socket by then (an upper bound on its arrival). */
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = w->rbuf, .iov_len = RBUF_SIZE};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = opt.rx_timestamps ? ctl.buf : NULL,
                        .msg_controllen = opt.rx_timestamps ? sizeof ctl.buf : 0};
    ssize_t n = recvmsg(c->fd, &mh, 0);
    w->rx_us = -1;
    for (struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            w->rx_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        }
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        if (c->state == C_OPEN) {
            w->st.socket_errors++;
            conn_close(w, c);
        } else {
            conn_fail(w, c, strerror(errno));
        }
        return;
    }
    if (n == 0) {
        if (c->state == C_OPEN) {
            w->st.server_closes++;
            conn_close(w, c);
        } else {
            conn_fail(w, c, "closed by server during the handshake");
        }
        return;
    }
    int64_t now_us = wall_us();
    if (measuring())
        w->st.bytes += (uint64_t)n;
    if (c->ssl != NULL)
        tls_input(w, c, w->rbuf, (size_t)n, now_us);
    else
        plain_input(w, c, w->rbuf, (size_t)n, now_us);
}

static void on_event(struct worker *w, struct conn *c, uint32_t events)
{
    if (c->state == C_CLOSED)
        return;
    if (c->state == C_CONNECTING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            conn_fail(w, c, strerror(err));
            return;
        }
        c->state = c->ssl != NULL ? C_TLS : C_HANDSHAKE;
    }
    if (c->state == C_TLS && (events & EPOLLOUT)) {
        /* the ClientHello, or a handshake flight that would have blocked */
        if (tls_handshake_step(w, c) < 0)
            return;
        events &= ~(uint32_t)EPOLLOUT;
    }
    if (events & EPOLLOUT) {
        if (conn_flush(w, c) < 0) {
            if (c->state == C_OPEN) {
                w->st.socket_errors++;
                conn_close(w, c);
            } else {
                conn_fail(w, c, "send failed");
            }
            return;
        }
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(w, c);
}

/* Starts the connections that are due by now at this worker's rate. */
static void ramp(struct worker *w)
{
    if (w->next_start >= w->nconns)
        return;
    double t = since_ramp_start();
    uint64_t due = (uint64_t)(t * w->rate) + 1;
    if (due > w->nconns)
        due = w->nconns;
    if (opt.max_pending > 0) {
        /* this worker's share of --max-pending (at least 1) */
        uint32_t cap = (uint32_t)((opt.max_pending + opt.threads - 1 - w->id) / opt.threads);
        uint32_t settled = atomic_load_explicit(&w->n_established, memory_order_relaxed) +
                           atomic_load_explicit(&w->n_failed, memory_order_relaxed);
        uint32_t pending = w->next_start - settled;
        if (cap == 0)
            cap = 1;
        if (pending >= cap)
            return;
        if (due > w->next_start + (cap - pending))
            due = w->next_start + (cap - pending);
    }
    while (w->next_start < due && !atomic_load(&g_stop))
        conn_start(w, &w->conns[w->next_start++]);
}

static void scan_handshake_timeouts(struct worker *w)
{
    double t = since_ramp_start();
    for (uint32_t i = 0; i < w->next_start; i++) {
        struct conn *c = &w->conns[i];
        if ((c->state == C_CONNECTING || c->state == C_HANDSHAKE || c->state == C_TLS) &&
            t - c->t_start > opt.connect_timeout_s)
            conn_fail(w, c, "handshake timeout");
    }
}

static bool ramp_pending(struct worker *w)
{
    uint32_t settled = atomic_load_explicit(&w->n_established, memory_order_relaxed) +
                       atomic_load_explicit(&w->n_failed, memory_order_relaxed);
    return settled < w->nconns;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    while (!atomic_load(&g_stop)) {
        bool ramping = ramp_pending(w);
        if (ramping)
            ramp(w);
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, ramping ? 1 : 50);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++)
            on_event(w, evs[i].data.ptr, evs[i].events);
        if (ramping) {
            double t = since_ramp_start();
            if (t - w->last_timeout_scan > 0.1) {
                w->last_timeout_scan = t;
                scan_handshake_timeouts(w);
            }
        }
    }
    for (uint32_t i = 0; i < w->nconns; i++)
        conn_close(w, &w->conns[i]);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Set-up, timeline, results                                          */
/* ------------------------------------------------------------------ */

static void add_topic(uint32_t *cap, const char *name, size_t len)
{
    if (len == 0)
        return;
    if (g_ntopics == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        g_topics = realloc(g_topics, *cap * sizeof *g_topics);
        if (g_topics == NULL)
            die("out of memory");
    }
    g_topics[g_ntopics++] = strndup(name, len);
}

static void build_topics(void)
{
    uint32_t cap = 0;
    if (opt.topics_str != NULL) {
        const char *s = opt.topics_str;
        while (*s) {
            const char *comma = strchr(s, ',');
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            add_topic(&cap, s, len);
            s += len + (comma ? 1 : 0);
        }
    } else if (opt.topic_list_path != NULL) {
        FILE *f = fopen(opt.topic_list_path, "r");
        if (f == NULL)
            die("--topic-list %s: %s", opt.topic_list_path, strerror(errno));
        char line[512];
        while (fgets(line, sizeof line, f)) {
            size_t len = strcspn(line, "\r\n");
            while (len > 0 && line[len - 1] == ' ')
                len--;
            if (len > 0 && line[0] != '#')
                add_topic(&cap, line, len);
        }
        fclose(f);
    } else {
        int m = opt.topic_count > 0 ? opt.topic_count : 1;
        for (int i = 0; i < m; i++) {
            char name[64];
            int len = (size_t)i < N_DEMO_SYMBOLS ? snprintf(name, sizeof name, "demo:%s", demo_symbols[i])
                                                 : snprintf(name, sizeof name, "demo:SYM%d", i);
            add_topic(&cap, name, (size_t)len);
        }
    }
    if (g_ntopics == 0)
        die("no topics");
    if (opt.topic_count > 0) {
        if ((uint32_t)opt.topic_count > g_ntopics)
            die("--topic-count %d but only %u topics listed", opt.topic_count, g_ntopics);
        g_ntopics = (uint32_t)opt.topic_count;
    }
    for (uint32_t i = 0; i < g_ntopics; i++) {
        size_t len = strlen(g_topics[i]);
        if (len > 100 || memchr(g_topics[i], '"', len) || memchr(g_topics[i], '\\', len))
            die("topic name too long or needs JSON escaping: %s", g_topics[i]);
    }
    if (opt.topics_per_conn <= 0)
        opt.topics_per_conn = (int)g_ntopics;
    if ((uint32_t)opt.topics_per_conn > g_ntopics)
        die("--topics-per-conn %d is more than the %u topics", opt.topics_per_conn, g_ntopics);

    uint32_t size = 16;
    while (size < 2 * g_ntopics)
        size *= 2;
    g_topic_hash = xcalloc(size, sizeof *g_topic_hash);
    g_topic_hash_mask = size - 1;
    for (uint32_t t = 0; t < g_ntopics; t++) {
        const char *name = g_topics[t];
        if (topic_lookup(name, strlen(name)) >= 0)
            die("topic listed twice: %s", name);
        uint32_t i = topic_hash(name, strlen(name)) & g_topic_hash_mask;
        while (g_topic_hash[i] != 0)
            i = (i + 1) & g_topic_hash_mask;
        g_topic_hash[i] = t + 1;
    }
}

static int cmp_sub(const void *a, const void *b)
{
    uint32_t x = ((const struct sub *)a)->topic, y = ((const struct sub *)b)->topic;
    return x < y ? -1 : x > y;
}

static void parse_src_addrs(const char *s)
{
    opt.src_addrs_str = s;
    int cap = 1;
    for (const char *q = s; *q; q++)
        cap += *q == ',';
    opt.src = xcalloc((size_t)cap, sizeof *opt.src);
    char *copy = strdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        struct sockaddr_in *a = &opt.src[opt.nsrc];
        a->sin_family = AF_INET;
        a->sin_port = 0;
        if (inet_pton(AF_INET, tok, &a->sin_addr) != 1)
            die("--src-addrs: not an IPv4 address: %s", tok);
        opt.nsrc++;
    }
    free(copy);
}

static void resolve_dst(void)
{
    memset(&g_dst, 0, sizeof g_dst);
    g_dst.sin_family = AF_INET;
    g_dst.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &g_dst.sin_addr) == 1)
        return;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(opt.host, NULL, &hints, &res);
    if (rc != 0)
        die("--host %s: %s", opt.host, gai_strerror(rc));
    g_dst.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
}

static void usage(FILE *f)
{
    fputs("usage: loadgen [options]\n"
          "  --host H              server address (default 127.0.0.1)\n"
          "  --port N              server port (default 8080)\n"
          "  --path P              WebSocket path (default /ws)\n"
          "  --conns N             connections to open (default 1)\n"
          "  --connect-rate N      new connections per second during the ramp (default 2000)\n"
          "  --connect-timeout S   seconds a connection may take to reach 101 (default 10)\n"
          "  --threads N           worker threads, each owning conns i %% N (default 1)\n"
          "  --src-addrs A,B,...   bind source addresses round-robin (e.g. 127.0.0.1,127.0.0.2)\n"
          "  --topics T1,T2,...    topics in play (default: generated demo:<SYM> names)\n"
          "  --topic-list FILE     topics in play, one per line\n"
          "  --topic-count M       use the first M topics (generated as demo:<SYM> by index if none listed)\n"
          "  --topics-per-conn K   each connection subscribes K of the M topics, round-robin (default M)\n"
          "  --warmup S            seconds after the ramp before counting starts (default 2)\n"
          "  --duration S          seconds of counting; 0 = until SIGINT (default 10)\n"
          "  --min-open N          exit 1 if fewer connections were established (default --conns)\n"
          "  --deflate             offer permessage-deflate and inflate compressed (RSV1) messages\n"
          "  --deflate-every N     offer it only on connections i with i %% N == 0 (2 = half; implies --deflate)\n"
          "  --no-inflate-cache    with --deflate: run zlib on every compressed message, even when its\n"
          "                        bytes equal the previous one's (default: reuse that result)\n"
          "  --max-pending N       at most N connections between connect() and the 101 at once (0: no limit)\n"
          "                        (default: no limit; with a high --connect-rate: handshake capacity)\n"
          "  --tls                 wss://: TLS (wolfSSL) on every connection; needs --tls-ca or --tls-insecure\n"
          "  --tls-ca FILE         verify the server's certificate chain against this CA (PEM) and its name\n"
          "  --tls-insecure        do not verify the server's certificate\n"
          "  --tls-sni NAME        SNI host name, also the name checked with --tls-ca (default localhost)\n"
          "  --tls-ciphers LIST    wolfSSL cipher list the client offers (default: wolfSSL's)\n"
          "  --tls-version V       1.2 or 1.3 only (default: the highest both sides have)\n"
          "  --rx-timestamps       also measure publish → the kernel's receive time (SO_TIMESTAMPNS): the\n"
          "                        server's share of the latency, without this process's own queueing\n"
          "  --json PATH           also write the JSON result there\n",
          f);
}

static double parse_num(const char *name, const char *v, double lo)
{
    char *end;
    double d = strtod(v, &end);
    if (*v == 0 || *end != 0 || !(d >= lo))
        die("%s: bad value '%s'", name, v);
    return d;
}

static void parse_options(int argc, char **argv)
{
    enum {
        OPT_HOST = 1000, OPT_PORT, OPT_PATH, OPT_CONNS, OPT_RATE, OPT_CTIMEOUT, OPT_THREADS, OPT_SRC, OPT_TOPICS, OPT_TOPIC_LIST,
        OPT_TOPIC_COUNT, OPT_TPC, OPT_WARMUP, OPT_DURATION, OPT_MIN_OPEN, OPT_JSON, OPT_DEFLATE, OPT_DEFLATE_EVERY, OPT_NO_INFLATE_CACHE,
        OPT_MAX_PENDING, OPT_TLS, OPT_TLS_CA, OPT_TLS_INSECURE, OPT_TLS_SNI, OPT_TLS_CIPHERS, OPT_TLS_VERSION, OPT_RX_TS, OPT_HELP
    };
    static const struct option longopts[] = {
        {"host", required_argument, 0, OPT_HOST},
        {"port", required_argument, 0, OPT_PORT},
        {"path", required_argument, 0, OPT_PATH},
        {"conns", required_argument, 0, OPT_CONNS},
        {"connect-rate", required_argument, 0, OPT_RATE},
        {"connect-timeout", required_argument, 0, OPT_CTIMEOUT},
        {"threads", required_argument, 0, OPT_THREADS},
        {"src-addrs", required_argument, 0, OPT_SRC},
        {"topics", required_argument, 0, OPT_TOPICS},
        {"topic-list", required_argument, 0, OPT_TOPIC_LIST},
        {"topic-count", required_argument, 0, OPT_TOPIC_COUNT},
        {"topics-per-conn", required_argument, 0, OPT_TPC},
        {"warmup", required_argument, 0, OPT_WARMUP},
        {"duration", required_argument, 0, OPT_DURATION},
        {"min-open", required_argument, 0, OPT_MIN_OPEN},
        {"json", required_argument, 0, OPT_JSON},
        {"deflate", no_argument, 0, OPT_DEFLATE},
        {"deflate-every", required_argument, 0, OPT_DEFLATE_EVERY},
        {"no-inflate-cache", no_argument, 0, OPT_NO_INFLATE_CACHE},
        {"max-pending", required_argument, 0, OPT_MAX_PENDING},
        {"tls", no_argument, 0, OPT_TLS},
        {"tls-ca", required_argument, 0, OPT_TLS_CA},
        {"tls-insecure", no_argument, 0, OPT_TLS_INSECURE},
        {"tls-sni", required_argument, 0, OPT_TLS_SNI},
        {"tls-ciphers", required_argument, 0, OPT_TLS_CIPHERS},
        {"tls-version", required_argument, 0, OPT_TLS_VERSION},
        {"rx-timestamps", no_argument, 0, OPT_RX_TS},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_HOST: opt.host = optarg; break;
        case OPT_PORT: opt.port = (int)parse_num("--port", optarg, 1); break;
        case OPT_PATH: opt.path = optarg; break;
        case OPT_CONNS: opt.conns = (int)parse_num("--conns", optarg, 1); break;
        case OPT_RATE: opt.connect_rate = parse_num("--connect-rate", optarg, 1); break;
        case OPT_CTIMEOUT: opt.connect_timeout_s = parse_num("--connect-timeout", optarg, 0.001); break;
        case OPT_THREADS: opt.threads = (int)parse_num("--threads", optarg, 1); break;
        case OPT_SRC: parse_src_addrs(optarg); break;
        case OPT_TOPICS: opt.topics_str = optarg; break;
        case OPT_TOPIC_LIST: opt.topic_list_path = optarg; break;
        case OPT_TOPIC_COUNT: opt.topic_count = (int)parse_num("--topic-count", optarg, 1); break;
        case OPT_TPC: opt.topics_per_conn = (int)parse_num("--topics-per-conn", optarg, 1); break;
        case OPT_WARMUP: opt.warmup_s = parse_num("--warmup", optarg, 0); break;
        case OPT_DURATION: opt.duration_s = parse_num("--duration", optarg, 0); break;
        case OPT_MIN_OPEN: opt.min_open = (int)parse_num("--min-open", optarg, 0); break;
        case OPT_JSON: opt.json_path = optarg; break;
        case OPT_DEFLATE: opt.deflate = true; break;
        case OPT_DEFLATE_EVERY: opt.deflate_every = (int)parse_num("--deflate-every", optarg, 1); break;
        case OPT_NO_INFLATE_CACHE: opt.inflate_cache = false; break;
        case OPT_MAX_PENDING: opt.max_pending = (int)parse_num("--max-pending", optarg, 0); break;
        case OPT_TLS: opt.tls = true; break;
        case OPT_TLS_CA: opt.tls_ca = optarg; break;
        case OPT_TLS_INSECURE: opt.tls_insecure = true; break;
        case OPT_TLS_SNI: opt.tls_sni = optarg; break;
        case OPT_TLS_CIPHERS: opt.tls_ciphers = optarg; break;
        case OPT_TLS_VERSION: opt.tls_version = optarg; break;
        case OPT_RX_TS: opt.rx_timestamps = true; break;
        case OPT_HELP: usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc)
        die("unexpected argument: %s", argv[optind]);
    if (opt.port > 65535)
        die("--port out of range");
    if (opt.min_open < 0)
        opt.min_open = opt.conns;
    if (opt.threads > opt.conns)
        opt.threads = opt.conns;
    if (opt.topics_str != NULL && opt.topic_list_path != NULL)
        die("give --topics or --topic-list, not both");
    if (opt.deflate_every > 0)
        opt.deflate = true;
    else if (opt.deflate)
        opt.deflate_every = 1;
    if ((opt.tls_ca || opt.tls_insecure || opt.tls_ciphers || opt.tls_version) && !opt.tls)
        die("--tls-ca, --tls-insecure, --tls-ciphers and --tls-version need --tls");
    if (opt.tls && !opt.tls_ca && !opt.tls_insecure)
        die("--tls needs --tls-ca FILE or --tls-insecure");
    if (opt.tls_ca && opt.tls_insecure)
        die("give --tls-ca or --tls-insecure, not both");
    if (opt.tls_version && strcmp(opt.tls_version, "1.2") != 0 && strcmp(opt.tls_version, "1.3") != 0)
        die("--tls-version: 1.2 or 1.3");
}

/* The one client context all connections share (wolfSSL_new takes a reference). */
static void tls_setup(void)
{
    if (wolfSSL_Init() != WOLFSSL_SUCCESS)
        die("wolfSSL_Init failed");
    WOLFSSL_METHOD *m = opt.tls_version == NULL             ? wolfSSLv23_client_method()
                        : strcmp(opt.tls_version, "1.3") == 0 ? wolfTLSv1_3_client_method()
                                                              : wolfTLSv1_2_client_method();
    g_tls_ctx = wolfSSL_CTX_new(m);
    if (g_tls_ctx == NULL)
        die("wolfSSL_CTX_new failed");
    if (opt.tls_ca != NULL) {
        int r = wolfSSL_CTX_load_verify_locations(g_tls_ctx, opt.tls_ca, NULL);
        if (r != WOLFSSL_SUCCESS) {
            char es[WOLFSSL_MAX_ERROR_SZ];
            wolfSSL_ERR_error_string_n((unsigned long)r, es, sizeof es);
            die("--tls-ca %s: %s (%d)", opt.tls_ca, es, r);
        }
        wolfSSL_CTX_set_verify(g_tls_ctx, WOLFSSL_VERIFY_PEER, NULL);
    } else {
        wolfSSL_CTX_set_verify(g_tls_ctx, WOLFSSL_VERIFY_NONE, NULL);
    }
    if (opt.tls_ciphers != NULL && wolfSSL_CTX_set_cipher_list(g_tls_ctx, opt.tls_ciphers) != WOLFSSL_SUCCESS)
        die("--tls-ciphers %s: not accepted by wolfSSL", opt.tls_ciphers);
    wolfSSL_CTX_SetIORecv(g_tls_ctx, tls_recv_cb);
    wolfSSL_CTX_SetIOSend(g_tls_ctx, tls_send_cb);
}

static void on_signal(int sig)
{
    (void)sig;
    g_sigint = 1;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)opt.conns + 16 + (rlim_t)opt.threads > rl.rlim_cur)
        fprintf(stderr, "loadgen: warning: RLIMIT_NOFILE is %llu, too low for %d connections\n",
                (unsigned long long)rl.rlim_cur, opt.conns);
}

/* Sleeps up to s seconds in small steps; false if interrupted by SIGINT. */
static bool sleep_interruptible(double s)
{
    double end = mono_s() + s;
    while (!g_sigint) {
        double left = end - mono_s();
        if (left <= 0)
            return true;
        double step = left < 0.02 ? left : 0.02;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(step * 1e9)};
        nanosleep(&ts, NULL);
    }
    return false;
}

struct totals {
    uint32_t open, established, failed, subscribed;
};

static struct totals sum_progress(void)
{
    struct totals t = {0};
    for (int i = 0; i < opt.threads; i++) {
        t.open += atomic_load(&g_workers[i].n_open);
        t.established += atomic_load(&g_workers[i].n_established);
        t.failed += atomic_load(&g_workers[i].n_failed);
        t.subscribed += atomic_load(&g_workers[i].n_subscribed);
    }
    return t;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static uint64_t percentile(const uint64_t *hist, uint64_t count, uint64_t max, double p)
{
    if (count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(p * (double)count);
    if (rank < 1)
        rank = 1;
    uint64_t cum = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        cum += hist[i];
        if (cum >= rank) {
            uint64_t v = hist_value(i);
            return v > max ? max : v;
        }
    }
    return max;
}

/* "<name>_us": {percentiles…}, and "<name>_hist": [[bucket value µs,
 * count], …] over the non-empty buckets, so runs over several loadgen
 * processes can be merged into exact percentiles and plotted. */
static void write_lat(FILE *f, const char *name, const struct lat *l)
{
    fprintf(f,
            "  \"%s_us\": {\"p50\": %" PRIu64 ", \"p90\": %" PRIu64 ", \"p99\": %" PRIu64 ", \"p999\": %" PRIu64
            ", \"max\": %" PRIu64 ", \"mean\": %.1f, \"count\": %" PRIu64 ", \"negative\": %" PRIu64 "},\n",
            name, percentile(l->hist, l->count, l->max, 0.50), percentile(l->hist, l->count, l->max, 0.90),
            percentile(l->hist, l->count, l->max, 0.99), percentile(l->hist, l->count, l->max, 0.999), l->max,
            l->count ? (double)l->sum / (double)l->count : 0.0, l->count, l->negative);
    fprintf(f, "  \"%s_hist\": [", name);
    for (unsigned i = 0, first = 1; i < HIST_BUCKETS; i++) {
        if (!l->hist[i]) continue;
        fprintf(f, "%s[%" PRIu64 ", %" PRIu64 "]", first ? "" : ", ", hist_value(i), l->hist[i]);
        first = 0;
    }
    fprintf(f, "],\n");
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* Connect-phase figures, set when the ramp ends. */
static struct {
    uint32_t handshakes; /* TLS handshakes (--tls) or WebSocket upgrades completed in the ramp */
    double client_cpu_s;
    char tls_version[16], tls_cipher[64], tls_group[32];
} g_ramp;

static void write_json(FILE *f, const struct stats *st, const struct totals *tot, uint32_t open_at_end,
                       double window_s, double connect_s, double client_cpu_s)
{
    uint64_t errors = st->server_closes + st->socket_errors + st->protocol_errors + st->rsv1_frames +
                      st->parse_errors + st->unexpected_topic + st->error_messages + st->inflate_errors +
                      st->tls_errors;
    fprintf(f, "{\n");
    fprintf(f, "  \"conns_requested\": %d,\n", opt.conns);
    fprintf(f, "  \"conns_open\": %u,\n", open_at_end);
    fprintf(f, "  \"conns_established\": %u,\n", tot->established);
    fprintf(f, "  \"conns_subscribed\": %u,\n", tot->subscribed);
    fprintf(f, "  \"handshake_failures\": %u,\n", tot->failed);
    fprintf(f, "  \"errors\": %" PRIu64 ",\n", errors);
    fprintf(f,
            "  \"error_detail\": {\"server_closes\": %" PRIu64 ", \"socket_errors\": %" PRIu64
            ", \"protocol_errors\": %" PRIu64 ", \"rsv1_frames\": %" PRIu64 ", \"parse_errors\": %" PRIu64
            ", \"unexpected_topic\": %" PRIu64 ", \"error_messages\": %" PRIu64 ", \"inflate_errors\": %" PRIu64
            ", \"tls_errors\": %" PRIu64 "},\n",
            st->server_closes, st->socket_errors, st->protocol_errors, st->rsv1_frames, st->parse_errors,
            st->unexpected_topic, st->error_messages, st->inflate_errors, st->tls_errors);
    fprintf(f, "  \"deliveries\": %" PRIu64 ",\n", st->deliveries);
    fprintf(f, "  \"deliveries_per_s\": %.1f,\n", window_s > 0 ? (double)st->deliveries / window_s : 0.0);
    fprintf(f, "  \"bytes\": %" PRIu64 ",\n", st->bytes);
    fprintf(f, "  \"wire_bytes\": %" PRIu64 ",\n", st->bytes);
    fprintf(f, "  \"payload_bytes\": %" PRIu64 ",\n", st->payload_bytes);
    fprintf(f, "  \"deflate_offered\": %d,\n",
            opt.deflate_every > 0 ? (opt.conns + opt.deflate_every - 1) / opt.deflate_every : 0);
    fprintf(f, "  \"deflate_negotiated\": %" PRIu64 ",\n", st->deflate_negotiated);
    fprintf(f, "  \"deflate_declined\": %" PRIu64 ",\n", st->deflate_declined);
    fprintf(f, "  \"compressed_messages\": %" PRIu64 ",\n", st->compressed_messages);
    fprintf(f, "  \"inflated_messages\": %" PRIu64 ",\n", st->inflated_messages);
    fprintf(f, "  \"window_s\": %.4f,\n", window_s);
    fprintf(f, "  \"lost\": %" PRIu64 ",\n", st->lost);
    fprintf(f, "  \"duplicated\": %" PRIu64 ",\n", st->dup);
    write_lat(f, "latency", &st->lat);
    if (opt.rx_timestamps)
        write_lat(f, "kernel_latency", &st->klat);
    fprintf(f, "  \"connect_s\": %.3f,\n", connect_s);
    fprintf(f, "  \"other_messages\": %" PRIu64 ",\n", st->other_messages);
    fprintf(f, "  \"pings\": %" PRIu64 ",\n", st->pings);
    fprintf(f, "  \"client_cpu_s\": %.3f,\n", client_cpu_s);
    fprintf(f, "  \"handshakes_in_ramp\": %u,\n", g_ramp.handshakes);
    fprintf(f, "  \"handshakes_per_s\": %.1f,\n",
            connect_s > 0 ? (double)g_ramp.handshakes / connect_s : 0.0);
    fprintf(f, "  \"ramp_client_cpu_s\": %.3f,\n", g_ramp.client_cpu_s);
    fprintf(f, "  \"tls\": %s,\n", opt.tls ? "true" : "false");
    fprintf(f, "  \"tls_handshakes\": %" PRIu64 ",\n", st->tls_handshakes);
    fprintf(f, "  \"tls_handshake_ms\": {\"mean\": %.3f, \"max\": %.3f},\n",
            st->tls_handshakes ? (double)st->tls_hs_us_sum / (double)st->tls_handshakes / 1000.0 : 0.0,
            (double)st->tls_hs_us_max / 1000.0);
    fprintf(f, "  \"tls_version\": ");
    json_str(f, g_ramp.tls_version);
    fprintf(f, ",\n  \"tls_cipher\": ");
    json_str(f, g_ramp.tls_cipher);
    fprintf(f, ",\n  \"tls_group\": ");
    json_str(f, g_ramp.tls_group);
    fprintf(f, ",\n");
    fprintf(f, "  \"options\": {\"host\": ");
    json_str(f, opt.host);
    fprintf(f, ", \"port\": %d, \"path\": ", opt.port);
    json_str(f, opt.path);
    fprintf(f, ", \"conns\": %d, \"connect_rate\": %g, \"threads\": %d, \"src_addrs\": ", opt.conns,
            opt.connect_rate, opt.threads);
    json_str(f, opt.src_addrs_str ? opt.src_addrs_str : "");
    fprintf(f, ", \"topic_count\": %u, \"topics_per_conn\": %d, \"first_topic\": ", g_ntopics, opt.topics_per_conn);
    json_str(f, g_topics[0]);
    fprintf(f, ", \"warmup_s\": %g, \"duration_s\": %g, \"min_open\": %d, \"deflate\": %s, \"deflate_every\": %d, \"inflate_cache\": %s",
            opt.warmup_s, opt.duration_s, opt.min_open, opt.deflate ? "true" : "false", opt.deflate_every,
            opt.inflate_cache ? "true" : "false");
    fprintf(f, ", \"max_pending\": %d, \"tls\": %s, \"tls_verify\": %s, \"tls_sni\": ", opt.max_pending,
            opt.tls ? "true" : "false", opt.tls && opt.tls_ca ? "true" : "false");
    json_str(f, opt.tls ? opt.tls_sni : "");
    fprintf(f, ", \"tls_ciphers\": ");
    json_str(f, opt.tls_ciphers ? opt.tls_ciphers : "");
    fprintf(f, ", \"tls_version\": ");
    json_str(f, opt.tls_version ? opt.tls_version : "");
    fprintf(f, ", \"rx_timestamps\": %s}\n", opt.rx_timestamps ? "true" : "false");
    fprintf(f, "}\n");
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    build_topics();
    resolve_dst();
    raise_nofile();
    if (opt.tls)
        tls_setup();

    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
        seed = (uint64_t)wall_us() ^ (uint64_t)getpid() << 32;

    int T = opt.threads;
    uint32_t k = (uint32_t)opt.topics_per_conn;
    g_workers = xcalloc((size_t)T, sizeof *g_workers);
    for (int t = 0; t < T; t++) {
        struct worker *w = &g_workers[t];
        w->id = t;
        w->nconns = (uint32_t)((opt.conns - t + T - 1) / T);
        w->conns = xcalloc(w->nconns, sizeof *w->conns);
        struct sub *subs = xcalloc((size_t)w->nconns * k, sizeof *subs);
        for (uint32_t j = 0; j < w->nconns; j++) {
            struct conn *c = &w->conns[j];
            c->fd = -1;
            c->gidx = (uint32_t)t + j * (uint32_t)T;
            c->subs = subs + (size_t)j * k;
            c->nsubs = k;
            for (uint32_t s = 0; s < k; s++)
                c->subs[s].topic = (uint32_t)(((uint64_t)c->gidx * k + s) % g_ntopics);
            qsort(c->subs, k, sizeof *c->subs, cmp_sub);
        }
        w->rate = opt.connect_rate / T;
        w->rng = seed ^ ((uint64_t)(t + 1) * 0x9E3779B97F4A7C15ull);
        if (w->rng == 0)
            w->rng = 1;
        w->rbuf = xcalloc(1, RBUF_SIZE);
        w->rx_us = -1;
        if (opt.tls)
            w->pbuf = xcalloc(1, TLS_PLAIN_CAP);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (w->ep < 0)
            die("epoll_create1: %s", strerror(errno));
        if (opt.deflate) {
            if (inflateInit2(&w->zs, -15) != Z_OK)
                die("inflateInit2 failed");
            w->zout_cap = ZOUT_INIT;
            w->zout = xcalloc(1, w->zout_cap);
            w->cache = xcalloc((size_t)PMD_CACHE_SETS * PMD_CACHE_WAYS, sizeof *w->cache);
            w->cache_mru = xcalloc(PMD_CACHE_SETS, 1);
        }
    }

    fprintf(stderr, "loadgen: %d connections to %s:%d%s, %u topic(s) in play, %u per connection, %d thread(s)%s%s\n",
            opt.conns, opt.host, opt.port, opt.path, g_ntopics, k, T,
            opt.deflate ? (opt.inflate_cache ? ", permessage-deflate offered" : ", permessage-deflate offered, no inflate cache") : "",
            !opt.tls ? "" : opt.tls_ca ? ", TLS (verified)" : ", TLS (not verified)");
    double ramp_cpu0 = cpu_s();
    clock_gettime(CLOCK_MONOTONIC, &g_ramp_start);
    for (int t = 0; t < T; t++)
        if (pthread_create(&g_workers[t].thread, NULL, worker_main, &g_workers[t]) != 0)
            die("pthread_create failed");

    /* Ramp: until every connection is established or failed. */
    double next_print = 1.0;
    struct totals tot;
    for (;;) {
        tot = sum_progress();
        if (tot.established + tot.failed >= (uint32_t)opt.conns || g_sigint)
            break;
        if (since_ramp_start() >= next_print) {
            fprintf(stderr, "loadgen: connected %u/%d (failed %u, subscribed %u)\n", tot.established, opt.conns,
                    tot.failed, tot.subscribed);
            next_print += 1.0;
        }
        sleep_interruptible(0.01);
    }
    double connect_s = since_ramp_start();
    g_ramp.client_cpu_s = cpu_s() - ramp_cpu0;
    g_ramp.handshakes = tot.established;
    if (opt.tls) {
        g_ramp.handshakes = 0;
        for (int t = 0; t < T; t++)
            g_ramp.handshakes += atomic_load(&g_workers[t].n_tls_done);
    }
    fprintf(stderr, "loadgen: ramp done in %.2f s: %u established, %u failed\n", connect_s, tot.established,
            tot.failed);

    double window_s = 0, client_cpu = 0;
    uint32_t open_at_end = tot.open;
    if (!g_sigint && sleep_interruptible(opt.warmup_s)) {
        tot = sum_progress();
        fprintf(stderr, "loadgen: warmup done: %u open, %u subscribed\n", tot.open, tot.subscribed);
        double cpu0 = cpu_s();
        double t0 = mono_s();
        atomic_store(&g_measuring, 1);
        fprintf(stderr, "WINDOW START\n");
        fflush(stderr);
        if (opt.duration_s > 0)
            sleep_interruptible(opt.duration_s);
        else
            while (!g_sigint)
                sleep_interruptible(1.0);
        atomic_store(&g_measuring, 0);
        window_s = mono_s() - t0;
        client_cpu = cpu_s() - cpu0;
        fprintf(stderr, "WINDOW END\n");
        fflush(stderr);
    }
    tot = sum_progress();
    open_at_end = tot.open;
    atomic_store(&g_stop, 1);
    for (int t = 0; t < T; t++)
        pthread_join(g_workers[t].thread, NULL);

    for (int t = 0; t < T && opt.tls; t++) {
        if (g_workers[t].tls_version[0] != 0) {
            memcpy(g_ramp.tls_version, g_workers[t].tls_version, sizeof g_ramp.tls_version);
            memcpy(g_ramp.tls_cipher, g_workers[t].tls_cipher, sizeof g_ramp.tls_cipher);
            memcpy(g_ramp.tls_group, g_workers[t].tls_group, sizeof g_ramp.tls_group);
            break;
        }
    }

    struct stats sum;
    memset(&sum, 0, sizeof sum);
    for (int t = 0; t < T; t++) {
        const struct stats *s = &g_workers[t].st;
        sum.deliveries += s->deliveries;
        sum.bytes += s->bytes;
        sum.lost += s->lost;
        sum.dup += s->dup;
        lat_add(&sum.lat, &s->lat);
        lat_add(&sum.klat, &s->klat);
        sum.server_closes += s->server_closes;
        sum.socket_errors += s->socket_errors;
        sum.protocol_errors += s->protocol_errors;
        sum.rsv1_frames += s->rsv1_frames;
        sum.parse_errors += s->parse_errors;
        sum.unexpected_topic += s->unexpected_topic;
        sum.error_messages += s->error_messages;
        sum.other_messages += s->other_messages;
        sum.pings += s->pings;
        sum.deflate_negotiated += s->deflate_negotiated;
        sum.deflate_declined += s->deflate_declined;
        sum.inflate_errors += s->inflate_errors;
        sum.compressed_messages += s->compressed_messages;
        sum.inflated_messages += s->inflated_messages;
        sum.payload_bytes += s->payload_bytes;
        sum.tls_errors += s->tls_errors;
        sum.tls_handshakes += s->tls_handshakes;
        sum.tls_hs_us_sum += s->tls_hs_us_sum;
        if (s->tls_hs_us_max > sum.tls_hs_us_max)
            sum.tls_hs_us_max = s->tls_hs_us_max;
    }

    write_json(stdout, &sum, &tot, open_at_end, window_s, connect_s, client_cpu);
    fflush(stdout);
    if (opt.json_path != NULL) {
        FILE *f = fopen(opt.json_path, "w");
        if (f == NULL)
            die("--json %s: %s", opt.json_path, strerror(errno));
        write_json(f, &sum, &tot, open_at_end, window_s, connect_s, client_cpu);
        fclose(f);
    }
    if (tot.established < (uint32_t)opt.min_open) {
        fprintf(stderr, "loadgen: only %u of %d connections established (--min-open %d)\n", tot.established,
                opt.conns, opt.min_open);
        return 1;
    }
    return 0;
}
