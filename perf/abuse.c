/*
 * perf/abuse.c — hostile clients for ringcast's abuse benchmark (perf/bench_abuse.py).
 *
 * Opens --conns connections to one server and keeps them misbehaving until
 * --duration ends (or SIGINT/SIGTERM): one epoll loop, one thread, so it
 * takes little CPU from the server it shares the machine with. Connection i
 * gets kind i mod 5 (or --mix noread=N,slowloris=N,…); each time a
 * connection is closed it is reopened --reconnect-ms later (±50 % jitter) as
 * the next variant of its kind (--variant kind=V pins one). Kinds and variants:
 *
 *   noread     never reads a byte. Sends the /ws upgrade and
 *              {"type":"subscribe_all"} in one write, without waiting for
 *              the 101, then
 *                0 ping flood: every --ping-interval-ms, --ping-burst WebSocket
 *                  pings (125-byte payload) and as many {"type":"ping"}
 *                  messages, each one asking the server for an answer;
 *                1 firehose: one {"type":"ping"} a second.
 *              A burst the socket does not take is skipped, never queued here.
 *   slowloris  sends one byte every --dribble-ms:
 *                0 an HTTP request head (GET /ws … then X-Slow headers, never ending);
 *                1 /ws: after the 101, a 1,000-byte text frame, payload one byte at a time;
 *                2 /echo: the same, binary.
 *   pipeline   never reads; writes pipelined requests as fast as the socket
 *              takes them: 0 GET /healthz, 1 GET /metrics, 2 both alternating
 *              (to --port, the client port, where a hostile client is: since
 *              /metrics moved to the admin listener it is answered 404 there).
 *   partial    after the 101, a message announced large and left unfinished:
 *                0 /echo: one binary frame announcing L bytes (uniform in
 *                  --partial-min..--partial-max), L−1 of them sent;
 *                1 /echo: 64 KiB non-final fragments up to L bytes, never the last one;
 *                2 /ws: a 60,000-byte text frame (under the /ws message
 *                  limit), 59,999 bytes sent;
 *                3 /ws: a text frame announcing 8 MiB (over the /ws limit), sent
 *                  until the server stops it.
 *   bomb       offers permessage-deflate and, after the 101, sends every
 *              --bomb-interval-ms a compressed message (RSV1) that inflates
 *              to --bomb-bytes spaces (raw DEFLATE, window bits −15, the
 *              trailing 00 00 FF FF stripped as RFC 7692 says: ~1,000:1):
 *              0 /ws, 1 /echo, 2 /ws in two fragments, 3 /echo in two fragments.
 *
 * Every client frame is masked (with a zero key, so payloads go out as
 * they are). Kinds that read (slowloris, partial, bomb) parse what comes
 * back: the HTTP status, and WebSocket close frames (code and reason);
 * noread and pipeline read only once the server has closed (FIN), to
 * learn why. Each close is counted per kind as "<code> <reason>",
 * "http <status>", "eof" (no close frame or status), "reset" or
 * "connect error".
 *
 * --sndbuf/--rcvbuf set SO_SNDBUF/SO_RCVBUF on every socket (default 64 KiB:
 * on loopback the clients' own kernel buffers count in the machine's TCP
 * memory beside the server's; 0 = kernel autotuning).
 *
 * stderr: once a second a line "STAT {json}" (connections open per kind,
 * totals so far); stdout and --json PATH: the final counts as JSON.
 *
 * Build: cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -o perf/build/abuse perf/abuse.c -lz
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { K_NOREAD, K_SLOWLORIS, K_PIPELINE, K_PARTIAL, K_BOMB, NKINDS };
static const char *kind_name[NKINDS] = {"noread", "slowloris", "pipeline", "partial", "bomb"};
static const int kind_variants[NKINDS] = {2, 3, 3, 4, 4};
static const char *variant_name[NKINDS][4] = {
    {"ping flood", "firehose, 1 ping/s"},
    {"HTTP head 1 B/s", "/ws frame 1 B/s", "/echo frame 1 B/s"},
    {"GET /healthz", "GET /metrics", "/healthz + /metrics"},
    {"/echo frame L-1 of L", "/echo fragments, no final", "/ws 59,999 of 60,000", "/ws 8 MiB announced"},
    {"/ws", "/echo", "/ws 2 fragments", "/echo 2 fragments"},
};

enum { S_IDLE, S_CONNECTING, S_HANDSHAKE, S_OPEN };

struct seg {
    const uint8_t *p;
    size_t n;
};

struct conn {
    int fd;
    uint8_t kind, variant, st;
    bool reads;    /* EPOLLIN wanted: parse what the server sends */
    bool upgraded; /* saw the 101 */
    bool counted;  /* this connection's close was counted */
    uint32_t round; /* connection attempts so far (picks the variant) */
    double next_at; /* S_IDLE: reconnect time; S_OPEN: next timed action */
    double t_open;
    /* write plan: segments sent in order; refill() makes the next plan */
    struct seg seg[4];
    uint8_t nseg, iseg;
    size_t segoff;
    uint8_t own[64]; /* frame headers, dribbled bytes */
    /* message generation */
    uint64_t msg_len;   /* partial: announced total L */
    uint64_t msg_sent;  /* payload bytes sent so far in the message */
    uint64_t frame_left; /* payload bytes left in the current frame */
    uint64_t dribble;   /* slowloris: bytes dribbled */
    double tokens;      /* --flood-bytes-per-s budget */
    /* response parsing */
    char head[256];
    uint16_t hlen;
    int http_status;
    uint8_t fh[14];
    uint8_t fhlen, fhneed;
    uint64_t fpay;
    uint8_t fop;
    bool in_frame;
    uint8_t cbuf[64];
    uint8_t clen;
    bool close_seen;
};

struct kstats {
    int slots;
    uint64_t connects, connect_errors, upgrades, closes, bytes_sent, bytes_read;
    uint64_t pings, bursts_skipped, dribbled, bombs, partial_msgs, deflate_accepted, deflate_declined;
    double life_s;
    struct {
        char key[56];
        uint64_t n;
    } reasons[40];
    int nreasons;
};

static struct {
    const char *host;
    int port;
    int conns;
    int mix[NKINDS];
    bool mix_set;
    int fixed_variant[NKINDS]; /* --variant kind=v: always that variant (-1: rotate) */
    bool no_echo;              /* --no-echo: skip the variants aimed at /echo (a server without --echo) */
    double duration;
    double ramp_rate;
    double reconnect_ms;
    double ping_interval_ms;
    int ping_burst;
    double dribble_ms;
    double bomb_interval_ms;
    uint64_t bomb_bytes;
    uint64_t partial_min, partial_max;
    double flood_bps;
    int sndbuf, rcvbuf;
    const char *json_path;
    struct in_addr src[64];
    int nsrc;
} opt = {
    .host = "127.0.0.1",
    .port = 8080,
    .conns = 1000,
    .ramp_rate = 1000,
    .reconnect_ms = 1000,
    .ping_interval_ms = 100,
    .ping_burst = 10,
    .dribble_ms = 1000,
    .bomb_interval_ms = 1000,
    .bomb_bytes = (16u << 20) + (64u << 10),
    .partial_min = 1u << 20,
    .partial_max = 15u << 20,
    .sndbuf = 65536,
    .rcvbuf = 65536,
    .fixed_variant = {-1, -1, -1, -1, -1},
};

static struct conn *conns;
static struct kstats ks[NKINDS];
static int ep;
static struct sockaddr_in dst;
static volatile sig_atomic_t stop_flag;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* static payloads */
static uint8_t *req_ws_sub, *req_ws, *req_echo, *req_ws_defl, *req_echo_defl;
static size_t req_ws_sub_n, req_ws_n, req_echo_n, req_ws_defl_n, req_echo_defl_n;
static uint8_t *ping_burst_buf, *text_ping;
static size_t ping_burst_n, text_ping_n;
static uint8_t *pipe_buf[3];
static size_t pipe_n[3], pipe_req_n[3];
static uint8_t *fill_buf; /* 1 MiB of 'a' */
#define FILL_N (1u << 20)
static uint8_t *bomb;
static size_t bomb_n;
static uint8_t rbuf[1 << 16];

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("abuse: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double jitter(void) { return 0.5 + (double)(rnd() % 1000) / 1000.0; }

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        die("out of memory");
    return p;
}

/* A masked (zero key) client frame header; returns its length. */
static size_t frame_header(uint8_t *h, bool fin, bool rsv1, int op, uint64_t len)
{
    size_t n = 0;
    h[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | op);
    if (len < 126) {
        h[n++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        h[n++] = 0x80 | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)(len >> (8 * i));
    }
    memset(h + n, 0, 4); /* mask key 0: the payload goes out unchanged */
    return n + 4;
}

static uint8_t *make_request(const char *path, const char *extra, const char *tail, size_t tail_n, size_t *out_n)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     path, opt.host, opt.port, extra);
    uint8_t *b = xmalloc((size_t)n + tail_n);
    memcpy(b, head, (size_t)n);
    if (tail_n)
        memcpy(b + n, tail, tail_n);
    *out_n = (size_t)n + tail_n;
    return b;
}

static size_t text_frame(uint8_t *out, const char *s)
{
    size_t len = strlen(s);
    size_t h = frame_header(out, true, false, 0x1, len);
    memcpy(out + h, s, len);
    return h + len;
}

static void build_payloads(void)
{
    uint8_t fr[256];
    size_t n = text_frame(fr, "{\"type\":\"subscribe_all\"}");
    req_ws_sub = make_request("/ws", "", (const char *)fr, n, &req_ws_sub_n);
    req_ws = make_request("/ws", "", NULL, 0, &req_ws_n);
    req_echo = make_request("/echo", "", NULL, 0, &req_echo_n);
    const char *ext = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    req_ws_defl = make_request("/ws", ext, NULL, 0, &req_ws_defl_n);
    req_echo_defl = make_request("/echo", ext, NULL, 0, &req_echo_defl_n);

    text_ping = xmalloc(64);
    text_ping_n = text_frame(text_ping, "{\"type\":\"ping\"}");
    ping_burst_buf = xmalloc((size_t)opt.ping_burst * (131 + 64) + 1);
    ping_burst_n = 0;
    for (int i = 0; i < opt.ping_burst; i++) {
        size_t h = frame_header(ping_burst_buf + ping_burst_n, true, false, 0x9, 125);
        memset(ping_burst_buf + ping_burst_n + h, 'p', 125);
        ping_burst_n += h + 125;
        memcpy(ping_burst_buf + ping_burst_n, text_ping, text_ping_n);
        ping_burst_n += text_ping_n;
    }

    const char *rq[2] = {"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"};
    for (int v = 0; v < 3; v++) {
        size_t cap = 65536, len = 0, k = 0;
        pipe_buf[v] = xmalloc(cap);
        for (;;) {
            const char *r = v < 2 ? rq[v] : rq[k % 2];
            size_t rl = strlen(r);
            if (len + rl > cap)
                break;
            memcpy(pipe_buf[v] + len, r, rl);
            len += rl;
            k++;
        }
        pipe_n[v] = len;
        pipe_req_n[v] = k;
    }

    fill_buf = xmalloc(FILL_N);
    memset(fill_buf, 'a', FILL_N);

    /* The bomb: raw DEFLATE of bomb_bytes spaces, sync-flushed, 00 00 FF FF stripped. */
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2");
    size_t cap = opt.bomb_bytes / 500 + 4096;
    bomb = xmalloc(cap);
    uint8_t *spaces = xmalloc(FILL_N);
    memset(spaces, ' ', FILL_N);
    z.next_out = bomb;
    z.avail_out = (uInt)cap;
    for (uint64_t left = opt.bomb_bytes; left > 0;) {
        uInt chunk = left > FILL_N ? FILL_N : (uInt)left;
        z.next_in = spaces;
        z.avail_in = chunk;
        if (deflate(&z, Z_NO_FLUSH) != Z_OK || z.avail_in != 0)
            die("deflate");
        left -= chunk;
    }
    if (deflate(&z, Z_SYNC_FLUSH) != Z_OK)
        die("deflate flush");
    bomb_n = cap - z.avail_out;
    deflateEnd(&z);
    free(spaces);
    if (bomb_n < 4 || memcmp(bomb + bomb_n - 4, "\x00\x00\xff\xff", 4) != 0)
        die("sync flush did not end in 00 00 ff ff");
    bomb_n -= 4;
}

/* ---- counting ---- */

static void count_reason(int k, const char *key)
{
    struct kstats *s = &ks[k];
    for (int i = 0; i < s->nreasons; i++)
        if (strcmp(s->reasons[i].key, key) == 0) {
            s->reasons[i].n++;
            return;
        }
    if (s->nreasons == 40) { /* full: the last slot becomes "other" */
        snprintf(s->reasons[39].key, sizeof s->reasons[39].key, "other");
        s->reasons[39].n++;
        return;
    }
    snprintf(s->reasons[s->nreasons].key, sizeof s->reasons[0].key, "%s", key);
    s->reasons[s->nreasons++].n = 1;
}

/* ---- connections ---- */

static void conn_close(struct conn *c, const char *why, bool abortive, double now)
{
    if (c->fd >= 0) {
        if (abortive) {
            struct linger l = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(c->fd);
        c->fd = -1;
    }
    if (!c->counted && why != NULL) {
        struct kstats *s = &ks[c->kind];
        char key[56];
        if (c->close_seen) {
            int code = c->clen >= 2 ? (c->cbuf[0] << 8 | c->cbuf[1]) : 1005;
            int rl = c->clen > 2 ? c->clen - 2 : 0;
            if (rl > 40)
                rl = 40;
            for (int i = 0; i < rl; i++)
                if (c->cbuf[2 + i] < 0x20 || c->cbuf[2 + i] > 0x7e || c->cbuf[2 + i] == '"' || c->cbuf[2 + i] == '\\')
                    c->cbuf[2 + i] = '?';
            snprintf(key, sizeof key, "%d %.*s", code, rl, (const char *)c->cbuf + 2);
            if (rl == 0)
                key[strlen(key) - 1] = 0;
        } else if (c->http_status > 0 && c->http_status != 101) {
            snprintf(key, sizeof key, "http %d", c->http_status);
        } else {
            snprintf(key, sizeof key, "%s", why);
        }
        count_reason(c->kind, key);
        s->closes++;
        s->life_s += now - c->t_open;
        c->counted = true;
    }
    c->st = S_IDLE;
    c->next_at = now + opt.reconnect_ms / 1000.0 * jitter();
}

/* The variants that talk to /echo (see the kinds at the top). */
static bool aims_at_echo(int kind, int variant)
{
    return (kind == K_SLOWLORIS && variant == 2) || (kind == K_PARTIAL && variant <= 1) ||
           (kind == K_BOMB && (variant == 1 || variant == 3));
}

static void conn_start(struct conn *c, int idx, double now)
{
    struct kstats *s = &ks[c->kind];
    memset(&c->seg, 0, sizeof *c - offsetof(struct conn, seg));
    c->nseg = c->iseg = 0;
    do
        c->variant = opt.fixed_variant[c->kind] >= 0 ? (uint8_t)opt.fixed_variant[c->kind]
                                                     : (uint8_t)(c->round++ % (uint32_t)kind_variants[c->kind]);
    while (opt.no_echo && opt.fixed_variant[c->kind] < 0 && aims_at_echo(c->kind, c->variant));
    c->upgraded = false;
    c->counted = false;
    c->t_open = now;
    c->reads = !(c->kind == K_NOREAD || c->kind == K_PIPELINE);
    s->connects++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->counted = false;
        s->connect_errors++;
        count_reason(c->kind, "socket error");
        c->st = S_IDLE;
        c->next_at = now + 1;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opt.sndbuf, sizeof opt.sndbuf);
    if (opt.rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opt.rcvbuf, sizeof opt.rcvbuf);
    if (opt.nsrc > 0) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = opt.src[idx % opt.nsrc]};
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            close(fd);
            s->connect_errors++;
            count_reason(c->kind, "bind error");
            c->st = S_IDLE;
            c->next_at = now + 1;
            return;
        }
    }
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) {
        close(fd);
        s->connect_errors++;
        count_reason(c->kind, "connect error");
        c->st = S_IDLE;
        c->next_at = now + opt.reconnect_ms / 1000.0 * jitter();
        return;
    }
    c->fd = fd;
    c->st = S_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLRDHUP | EPOLLET | (c->reads ? EPOLLIN : 0),
                             .data.u32 = (uint32_t)idx};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
}

static void plan(struct conn *c, const uint8_t *p, size_t n)
{
    if (c->nseg < 4) {
        c->seg[c->nseg].p = p;
        c->seg[c->nseg].n = n;
        c->nseg++;
    }
}

static bool plan_empty(const struct conn *c) { return c->iseg >= c->nseg; }

/* The next part of a continuous stream (pipeline, partial), or false when there is nothing to send now. */
static bool refill(struct conn *c)
{
    c->nseg = c->iseg = 0;
    c->segoff = 0;
    if (c->st != S_OPEN)
        return false;
    if (c->kind == K_PIPELINE) {
        plan(c, pipe_buf[c->variant], pipe_n[c->variant]);
        return true;
    }
    if (c->kind != K_PARTIAL)
        return false;
    if (c->frame_left > 0) {
        uint64_t n = c->frame_left;
        /* L−1 of L: hold back the last byte of the last frame */
        bool last_frame = (c->variant == 0 || c->variant >= 2);
        if (last_frame && c->msg_sent + n >= c->msg_len)
            n = c->msg_len - 1 - c->msg_sent;
        if (n > FILL_N)
            n = FILL_N;
        if (n == 0)
            return false;
        plan(c, fill_buf, (size_t)n);
        c->frame_left -= n;
        c->msg_sent += n;
        return true;
    }
    if (c->variant == 1 && c->msg_sent < c->msg_len) { /* next non-final fragment */
        uint64_t n = 65536;
        size_t h = frame_header(c->own, false, false, c->msg_sent == 0 ? 0x2 : 0x0, n);
        plan(c, c->own, h);
        c->frame_left = n;
        return true;
    }
    return false;
}

static void sent_bytes(struct conn *c, size_t n) { ks[c->kind].bytes_sent += n; }

/* Writes the plan (and refills) until the socket is full or nothing is left. */
static void pump(struct conn *c, double now)
{
    while (c->fd >= 0 && (c->st == S_OPEN || c->st == S_HANDSHAKE)) {
        if (plan_empty(c)) {
            bool flood = c->kind == K_PIPELINE || c->kind == K_PARTIAL;
            if (flood && opt.flood_bps > 0 && c->tokens <= 0)
                return;
            if (!refill(c))
                return;
            if (flood && opt.flood_bps > 0) {
                size_t total = 0;
                for (int i = 0; i < c->nseg; i++)
                    total += c->seg[i].n;
                c->tokens -= (double)total;
            }
        }
        struct seg *s = &c->seg[c->iseg];
        ssize_t n = send(c->fd, s->p + c->segoff, s->n - c->segoff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR)
                continue;
            conn_close(c, "reset", false, now);
            return;
        }
        sent_bytes(c, (size_t)n);
        c->segoff += (size_t)n;
        if (c->segoff == s->n) {
            c->iseg++;
            c->segoff = 0;
        }
    }
}

/* Called when the WebSocket is open (after the 101 for the kinds that wait for it). */
static void on_open(struct conn *c, double now)
{
    c->st = S_OPEN;
    c->nseg = c->iseg = 0;
    c->segoff = 0;
    switch (c->kind) {
    case K_NOREAD:
        c->next_at = now + (c->variant == 0 ? opt.ping_interval_ms : 1000) / 1000.0;
        break;
    case K_SLOWLORIS: { /* variants 1, 2: a 1,000-byte frame's header now, its payload dribbled */
        size_t h = frame_header(c->own, true, false, c->variant == 1 ? 0x1 : 0x2, 1000);
        plan(c, c->own, h);
        c->next_at = now + opt.dribble_ms / 1000.0;
        break;
    }
    case K_PIPELINE:
        c->tokens = opt.flood_bps > 0 ? opt.flood_bps / 10 : 0;
        break;
    case K_PARTIAL: {
        c->tokens = opt.flood_bps > 0 ? opt.flood_bps / 10 : 0;
        c->msg_sent = 0;
        ks[K_PARTIAL].partial_msgs++;
        if (c->variant == 0 || c->variant == 1) {
            uint64_t span = opt.partial_max > opt.partial_min ? opt.partial_max - opt.partial_min : 0;
            c->msg_len = opt.partial_min + (span ? rnd() % (span + 1) : 0);
            if (c->variant == 0) {
                size_t h = frame_header(c->own, true, false, 0x2, c->msg_len);
                plan(c, c->own, h);
                c->frame_left = c->msg_len;
            }
        } else {
            c->msg_len = c->variant == 2 ? 60000 : (8u << 20);
            size_t h = frame_header(c->own, true, false, 0x1, c->msg_len);
            plan(c, c->own, h);
            c->frame_left = c->msg_len;
        }
        break;
    }
    case K_BOMB:
        c->next_at = now; /* first bomb right away */
        break;
    }
    pump(c, now);
}

static void timed(struct conn *c, double now)
{
    switch (c->kind) {
    case K_NOREAD:
        if (plan_empty(c)) {
            if (c->variant == 0) {
                plan(c, ping_burst_buf, ping_burst_n);
                ks[K_NOREAD].pings += 2 * (uint64_t)opt.ping_burst;
            } else {
                plan(c, text_ping, text_ping_n);
                ks[K_NOREAD].pings++;
            }
            pump(c, now);
        } else {
            ks[K_NOREAD].bursts_skipped++;
        }
        c->next_at = now + (c->variant == 0 ? opt.ping_interval_ms : 1000) / 1000.0;
        break;
    case K_SLOWLORIS:
        if (plan_empty(c)) {
            if (c->variant == 0) {
                static const char prefix[] = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                                             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                             "Sec-WebSocket-Version: 13\r\n";
                static const char more[] = "X-Slow: aaaaaaaa\r\n";
                uint64_t i = c->dribble;
                c->own[0] = (uint8_t)(i < sizeof prefix - 1 ? prefix[i] : more[(i - (sizeof prefix - 1)) % (sizeof more - 1)]);
                plan(c, c->own, 1);
            } else if (c->dribble < 1000) {
                c->own[20] = 'a';
                plan(c, c->own + 20, 1);
            }
            if (!plan_empty(c)) {
                c->dribble++;
                ks[K_SLOWLORIS].dribbled++;
                pump(c, now);
            }
        }
        c->next_at = now + opt.dribble_ms / 1000.0;
        break;
    case K_BOMB:
        if (plan_empty(c)) {
            bool ws = c->variant == 0 || c->variant == 2;
            int op = ws ? 0x1 : 0x2;
            c->nseg = c->iseg = 0;
            c->segoff = 0;
            if (c->variant < 2) {
                size_t h = frame_header(c->own, true, true, op, bomb_n);
                plan(c, c->own, h);
                plan(c, bomb, bomb_n);
            } else {
                size_t half = bomb_n / 2;
                size_t h1 = frame_header(c->own, false, true, op, half);
                size_t h2 = frame_header(c->own + 32, true, false, 0x0, bomb_n - half);
                plan(c, c->own, h1);
                plan(c, bomb, half);
                plan(c, c->own + 32, h2);
                plan(c, bomb + half, bomb_n - half);
            }
            ks[K_BOMB].bombs++;
            pump(c, now);
        }
        c->next_at = now + opt.bomb_interval_ms / 1000.0;
        break;
    default:
        c->next_at = now + 3600;
        break;
    }
}

/* ---- reading ---- */

static void feed_frames(struct conn *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (!c->in_frame) {
            if (c->fhlen < 2) {
                c->fh[c->fhlen++] = *p++;
                n--;
                if (c->fhlen == 2) {
                    uint8_t l7 = c->fh[1] & 0x7f;
                    c->fhneed = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((c->fh[1] & 0x80) ? 4 : 0));
                }
                if (c->fhlen < 2)
                    continue;
            } else {
                c->fh[c->fhlen++] = *p++;
                n--;
            }
            if (c->fhlen < c->fhneed)
                continue;
            uint8_t l7 = c->fh[1] & 0x7f;
            uint64_t len = l7;
            if (l7 == 126)
                len = (uint64_t)c->fh[2] << 8 | c->fh[3];
            else if (l7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++)
                    len = len << 8 | c->fh[2 + i];
            }
            c->fop = c->fh[0] & 0x0f;
            c->fpay = len;
            c->fhlen = 0;
            c->in_frame = true;
            if (c->fop == 0x8) {
                c->close_seen = true;
                c->clen = 0;
            }
            if (len == 0)
                c->in_frame = false;
            continue;
        }
        size_t take = n < c->fpay ? n : (size_t)c->fpay;
        if (c->fop == 0x8) {
            for (size_t i = 0; i < take && c->clen < sizeof c->cbuf; i++)
                c->cbuf[c->clen++] = p[i];
        }
        p += take;
        n -= take;
        c->fpay -= take;
        if (c->fpay == 0)
            c->in_frame = false;
    }
}

static void feed(struct conn *c, const uint8_t *p, size_t n, double now)
{
    ks[c->kind].bytes_read += n;
    if (c->kind == K_PIPELINE) { /* responses: keep the first status line only */
        if (c->http_status == 0 && n >= 12 && memcmp(p, "HTTP/1.1 ", 9) == 0)
            c->http_status = atoi((const char *)p + 9) == 200 ? -1 : atoi((const char *)p + 9);
        return;
    }
    if (!c->upgraded) {
        while (n > 0) {
            char ch = (char)*p++;
            n--;
            if (c->hlen < sizeof c->head - 1)
                c->head[c->hlen++] = ch;
            else { /* keep the tail for the terminator search */
                memmove(c->head + 128, c->head + c->hlen - 64, 64);
                c->hlen = 192;
                c->head[c->hlen++] = ch;
            }
            if (c->hlen >= 4 && memcmp(c->head + c->hlen - 4, "\r\n\r\n", 4) == 0) {
                c->head[c->hlen] = 0;
                int status = 0;
                if (strncmp(c->head, "HTTP/1.1 ", 9) == 0)
                    status = atoi(c->head + 9);
                c->http_status = status;
                if (status == 101) {
                    c->upgraded = true;
                    ks[c->kind].upgrades++;
                    if (c->kind == K_BOMB) {
                        if (strcasestr(c->head, "permessage-deflate"))
                            ks[K_BOMB].deflate_accepted++;
                        else
                            ks[K_BOMB].deflate_declined++;
                    }
                    if (c->st == S_HANDSHAKE)
                        on_open(c, now);
                    break;
                }
                c->hlen = 0; /* an error response: its body follows; read on until EOF */
                if (c->kind != K_NOREAD)
                    c->upgraded = false;
                return;
            }
        }
        if (!c->upgraded)
            return;
    }
    feed_frames(c, p, n);
}

static void do_read(struct conn *c, double now)
{
    for (;;) {
        ssize_t n = recv(c->fd, rbuf, sizeof rbuf, MSG_DONTWAIT);
        if (n > 0) {
            feed(c, rbuf, (size_t)n, now);
            if (c->fd < 0)
                return;
            continue;
        }
        if (n == 0) {
            conn_close(c, "eof", false, now);
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (errno == EINTR)
            continue;
        conn_close(c, "reset", false, now);
        return;
    }
}

static void on_event(struct conn *c, uint32_t ev, double now)
{
    if (c->st == S_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
            ks[c->kind].connect_errors++;
            conn_close(c, "connect error", true, now);
            return;
        }
        switch (c->kind) {
        case K_NOREAD: /* the subscribe goes with the upgrade request; nobody reads the 101 */
            c->st = S_OPEN;
            c->next_at = now + (c->variant == 0 ? opt.ping_interval_ms : 1000) / 1000.0;
            plan(c, req_ws_sub, req_ws_sub_n);
            pump(c, now);
            return;
        case K_PIPELINE:
            on_open(c, now);
            return;
        case K_SLOWLORIS:
            if (c->variant == 0) {
                c->st = S_HANDSHAKE;
                c->next_at = now;
                timed(c, now);
                return;
            }
            c->st = S_HANDSHAKE;
            plan(c, c->variant == 1 ? req_ws : req_echo, c->variant == 1 ? req_ws_n : req_echo_n);
            pump(c, now);
            return;
        case K_PARTIAL:
            c->st = S_HANDSHAKE;
            plan(c, c->variant >= 2 ? req_ws : req_echo, c->variant >= 2 ? req_ws_n : req_echo_n);
            pump(c, now);
            return;
        case K_BOMB: {
            bool ws = c->variant == 0 || c->variant == 2;
            c->st = S_HANDSHAKE;
            plan(c, ws ? req_ws_defl : req_echo_defl, ws ? req_ws_defl_n : req_echo_defl_n);
            pump(c, now);
            return;
        }
        }
        return;
    }
    if (c->fd < 0)
        return;
    if (c->reads && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        do_read(c, now);
        if (c->fd < 0)
            return;
    } else if (!c->reads && (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        /* The server has closed: only now read what it sent, to learn why. */
        c->reads = true;
        if (c->kind == K_NOREAD) {
            c->hlen = 0;
        }
        do_read(c, now);
        if (c->fd >= 0 && (ev & (EPOLLHUP | EPOLLERR)))
            conn_close(c, "reset", false, now);
        return;
    }
    if (ev & EPOLLOUT)
        pump(c, now);
}

/* ---- output ---- */

static void print_stats(FILE *f, double t, bool final)
{
    int open[NKINDS] = {0}, up[NKINDS] = {0};
    for (int i = 0; i < opt.conns; i++) {
        struct conn *c = &conns[i];
        if (c->st != S_IDLE) {
            open[c->kind]++;
            if (c->upgraded || c->kind == K_NOREAD || c->kind == K_PIPELINE)
                up[c->kind]++;
        }
    }
    fprintf(f, "{\"t\":%.3f,", t);
    if (final) {
        fprintf(f, "\"options\":{\"host\":\"%s\",\"port\":%d,\"conns\":%d,\"reconnect_ms\":%g,\"ping_interval_ms\":%g,"
                   "\"ping_burst\":%d,\"dribble_ms\":%g,\"bomb_interval_ms\":%g,\"bomb_bytes\":%llu,\"bomb_wire_bytes\":%zu,"
                   "\"partial_min\":%llu,\"partial_max\":%llu,\"flood_bytes_per_s\":%g,\"sndbuf\":%d,\"rcvbuf\":%d},",
                opt.host, opt.port, opt.conns, opt.reconnect_ms, opt.ping_interval_ms, opt.ping_burst, opt.dribble_ms,
                opt.bomb_interval_ms, (unsigned long long)opt.bomb_bytes, bomb_n, (unsigned long long)opt.partial_min,
                (unsigned long long)opt.partial_max, opt.flood_bps, opt.sndbuf, opt.rcvbuf);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        fprintf(f, "\"cpu_s\":%.3f,", ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                                          ru.ru_stime.tv_usec / 1e6);
    }
    int total_open = 0;
    for (int k = 0; k < NKINDS; k++)
        total_open += open[k];
    fprintf(f, "\"open\":%d,\"kinds\":{", total_open);
    for (int k = 0; k < NKINDS; k++) {
        struct kstats *s = &ks[k];
        fprintf(f, "%s\"%s\":{\"slots\":%d,\"open\":%d,\"upgraded\":%d,\"connects\":%llu,\"closes\":%llu,"
                   "\"bytes_sent\":%llu,\"bytes_read\":%llu",
                k ? "," : "", kind_name[k], s->slots, open[k], up[k], (unsigned long long)s->connects,
                (unsigned long long)s->closes, (unsigned long long)s->bytes_sent, (unsigned long long)s->bytes_read);
        if (final) {
            fprintf(f, ",\"connect_errors\":%llu,\"upgrades\":%llu,\"mean_life_s\":%.3f",
                    (unsigned long long)s->connect_errors, (unsigned long long)s->upgrades,
                    s->closes ? s->life_s / (double)s->closes : 0.0);
            switch (k) {
            case K_NOREAD:
                fprintf(f, ",\"pings\":%llu,\"bursts_skipped\":%llu", (unsigned long long)s->pings,
                        (unsigned long long)s->bursts_skipped);
                break;
            case K_SLOWLORIS:
                fprintf(f, ",\"dribbled_bytes\":%llu", (unsigned long long)s->dribbled);
                break;
            case K_PIPELINE: {
                double per = (double)(pipe_n[0] + pipe_n[1] + pipe_n[2]) / (double)(pipe_req_n[0] + pipe_req_n[1] + pipe_req_n[2]);
                fprintf(f, ",\"requests_sent_approx\":%.0f", (double)s->bytes_sent / per);
                break;
            }
            case K_PARTIAL:
                fprintf(f, ",\"partial_messages\":%llu", (unsigned long long)s->partial_msgs);
                break;
            case K_BOMB:
                fprintf(f, ",\"bombs\":%llu,\"inflated_bytes_offered\":%llu,\"deflate_accepted\":%llu,\"deflate_declined\":%llu",
                        (unsigned long long)s->bombs, (unsigned long long)(s->bombs * opt.bomb_bytes),
                        (unsigned long long)s->deflate_accepted, (unsigned long long)s->deflate_declined);
                break;
            }
            fprintf(f, ",\"variants\":[");
            for (int v = 0; v < kind_variants[k]; v++)
                fprintf(f, "%s\"%s\"", v ? "," : "", variant_name[k][v]);
            fprintf(f, "],\"server_closes\":{");
            for (int i = 0; i < s->nreasons; i++)
                fprintf(f, "%s\"%s\":%llu", i ? "," : "", s->reasons[i].key, (unsigned long long)s->reasons[i].n);
            fprintf(f, "}");
        }
        fprintf(f, "}");
    }
    fprintf(f, "}}\n");
    fflush(f);
}

static void on_signal(int sig)
{
    (void)sig;
    if (stop_flag)
        _exit(1);
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fputs("usage: abuse [options]        (hostile clients for perf/bench_abuse.py; see the top of perf/abuse.c)\n"
          "  --host H                server address (default 127.0.0.1)\n"
          "  --port N                server port (default 8080)\n"
          "  --conns N               hostile connections (default 1000), kinds round-robin\n"
          "  --mix K=N,...           connections per kind instead: noread, slowloris, pipeline, partial, bomb\n"
          "  --variant K=V,...       always variant V of kind K (default: each reconnect takes the next)\n"
          "  --duration S            seconds; 0 = until SIGINT/SIGTERM (default 0)\n"
          "  --ramp-rate N           connections opened per second at the start (default 1000)\n"
          "  --reconnect-ms MS       delay before a closed connection is reopened, ±50 % (default 1000)\n"
          "  --ping-interval-ms MS   noread ping flood: one burst per interval (default 100)\n"
          "  --ping-burst N          noread ping flood: pings + {\"type\":\"ping\"} per burst (default 10 each)\n"
          "  --dribble-ms MS         slowloris: one byte per interval (default 1000)\n"
          "  --bomb-interval-ms MS   bomb: one compressed message per interval (default 1000)\n"
          "  --bomb-bytes N          bomb: inflated size (default 16 MiB + 64 KiB)\n"
          "  --partial-min N, --partial-max N  partial /echo: announced size range (default 1 MiB, 15 MiB)\n"
          "  --no-echo                 skip the variants aimed at /echo (a server without --echo)\n"
          "  --flood-bytes-per-s N   pipeline and partial: cap per connection (default 0: as fast as the socket takes)\n"
          "  --sndbuf N, --rcvbuf N  SO_SNDBUF / SO_RCVBUF of every socket (default 65536; 0 = kernel autotuning)\n"
          "  --src-addrs A,B,...     bind source addresses round-robin (IP_BIND_ADDRESS_NO_PORT)\n"
          "  --json PATH             also write the final counts there\n",
          f);
}

static uint64_t parse_size(const char *name, const char *v)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || d < 0)
        die("%s: bad value '%s'", name, v);
    switch (*end) {
    case 'k': case 'K': d *= 1024; end++; break;
    case 'm': case 'M': d *= 1024 * 1024; end++; break;
    case 'g': case 'G': d *= 1024.0 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end != 0)
        die("%s: bad value '%s'", name, v);
    return (uint64_t)d;
}

static void parse_mix(const char *s)
{
    char *dup = strdup(s), *save = NULL;
    memset(opt.mix, 0, sizeof opt.mix);
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            die("--mix: expected kind=N, got '%s'", tok);
        *eq = 0;
        int k = 0;
        while (k < NKINDS && strcmp(kind_name[k], tok) != 0)
            k++;
        if (k == NKINDS)
            die("--mix: unknown kind '%s'", tok);
        opt.mix[k] = (int)parse_size("--mix", eq + 1);
    }
    free(dup);
    opt.mix_set = true;
}

static void parse_variants(const char *s)
{
    char *dup = strdup(s), *save = NULL;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            die("--variant: expected kind=N, got '%s'", tok);
        *eq = 0;
        int k = 0;
        while (k < NKINDS && strcmp(kind_name[k], tok) != 0)
            k++;
        if (k == NKINDS)
            die("--variant: unknown kind '%s'", tok);
        int v = atoi(eq + 1);
        if (v < 0 || v >= kind_variants[k])
            die("--variant: %s has variants 0..%d", tok, kind_variants[k] - 1);
        opt.fixed_variant[k] = v;
    }
    free(dup);
}

static void parse_src(const char *s)
{
    char *dup = strdup(s), *save = NULL;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (opt.nsrc == 64)
            die("--src-addrs: at most 64");
        if (inet_pton(AF_INET, tok, &opt.src[opt.nsrc]) != 1)
            die("--src-addrs: bad address '%s'", tok);
        opt.nsrc++;
    }
    free(dup);
}

int main(int argc, char **argv)
{
    enum { O_HOST = 1000, O_PORT, O_CONNS, O_MIX, O_DUR, O_RAMP, O_RECON, O_PINGI, O_PINGB, O_DRIB, O_BOMBI, O_BOMBB,
           O_PMIN, O_PMAX, O_FLOOD, O_SND, O_RCV, O_SRC, O_JSON, O_VAR, O_NOECHO, O_HELP };
    static const struct option lo[] = {
        {"host", 1, 0, O_HOST}, {"port", 1, 0, O_PORT}, {"conns", 1, 0, O_CONNS}, {"mix", 1, 0, O_MIX},
        {"duration", 1, 0, O_DUR}, {"ramp-rate", 1, 0, O_RAMP}, {"reconnect-ms", 1, 0, O_RECON},
        {"ping-interval-ms", 1, 0, O_PINGI}, {"ping-burst", 1, 0, O_PINGB}, {"dribble-ms", 1, 0, O_DRIB},
        {"bomb-interval-ms", 1, 0, O_BOMBI}, {"bomb-bytes", 1, 0, O_BOMBB}, {"partial-min", 1, 0, O_PMIN},
        {"partial-max", 1, 0, O_PMAX}, {"flood-bytes-per-s", 1, 0, O_FLOOD}, {"sndbuf", 1, 0, O_SND},
        {"rcvbuf", 1, 0, O_RCV}, {"src-addrs", 1, 0, O_SRC}, {"json", 1, 0, O_JSON}, {"variant", 1, 0, O_VAR}, {"no-echo", 0, 0, O_NOECHO}, {"help", 0, 0, O_HELP},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case O_HOST: opt.host = optarg; break;
        case O_PORT: opt.port = (int)parse_size("--port", optarg); break;
        case O_CONNS: opt.conns = (int)parse_size("--conns", optarg); break;
        case O_MIX: parse_mix(optarg); break;
        case O_DUR: opt.duration = strtod(optarg, NULL); break;
        case O_RAMP: opt.ramp_rate = strtod(optarg, NULL); break;
        case O_RECON: opt.reconnect_ms = strtod(optarg, NULL); break;
        case O_PINGI: opt.ping_interval_ms = strtod(optarg, NULL); break;
        case O_PINGB: opt.ping_burst = (int)parse_size("--ping-burst", optarg); break;
        case O_DRIB: opt.dribble_ms = strtod(optarg, NULL); break;
        case O_BOMBI: opt.bomb_interval_ms = strtod(optarg, NULL); break;
        case O_BOMBB: opt.bomb_bytes = parse_size("--bomb-bytes", optarg); break;
        case O_PMIN: opt.partial_min = parse_size("--partial-min", optarg); break;
        case O_NOECHO: opt.no_echo = true; break;
        case O_PMAX: opt.partial_max = parse_size("--partial-max", optarg); break;
        case O_FLOOD: opt.flood_bps = (double)parse_size("--flood-bytes-per-s", optarg); break;
        case O_SND: opt.sndbuf = (int)parse_size("--sndbuf", optarg); break;
        case O_RCV: opt.rcvbuf = (int)parse_size("--rcvbuf", optarg); break;
        case O_SRC: parse_src(optarg); break;
        case O_JSON: opt.json_path = optarg; break;
        case O_VAR: parse_variants(optarg); break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        die("unexpected argument: %s", argv[optind]);
    if (opt.partial_min < 2 || opt.partial_max < opt.partial_min)
        die("--partial-min/--partial-max: need 2 <= min <= max");
    if (opt.ping_burst < 1 || opt.ramp_rate <= 0)
        die("--ping-burst and --ramp-rate must be positive");
    if (opt.mix_set) {
        opt.conns = 0;
        for (int k = 0; k < NKINDS; k++)
            opt.conns += opt.mix[k];
    }
    if (opt.conns < 1)
        die("no connections");

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.conns + 16)
        die("RLIMIT_NOFILE %llu is too low for %d connections", (unsigned long long)rl.rlim_cur, opt.conns);

    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1)
        die("--host: not an IPv4 address: %s", opt.host);
    rng ^= (uint64_t)getpid() << 17 ^ (uint64_t)time(NULL);

    build_payloads();

    conns = calloc((size_t)opt.conns, sizeof *conns);
    if (conns == NULL)
        die("out of memory");
    double t0 = now_s();
    {
        int i = 0;
        if (opt.mix_set) {
            /* interleave kinds so the ramp mixes them */
            int left[NKINDS];
            memcpy(left, opt.mix, sizeof left);
            while (i < opt.conns)
                for (int k = 0; k < NKINDS && i < opt.conns; k++)
                    if (left[k] > 0) {
                        conns[i++].kind = (uint8_t)k;
                        left[k]--;
                    }
        } else {
            for (; i < opt.conns; i++)
                conns[i].kind = (uint8_t)(i % NKINDS);
        }
        for (i = 0; i < opt.conns; i++) {
            conns[i].fd = -1;
            conns[i].st = S_IDLE;
            conns[i].round = (uint32_t)(i / NKINDS); /* spread variants over the slots */
            conns[i].next_at = t0 + i / opt.ramp_rate;
            ks[conns[i].kind].slots++;
        }
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1: %s", strerror(errno));
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    fprintf(stderr, "abuse: %d hostile connections to %s:%d, bomb %zu bytes on the wire → %llu inflated\n", opt.conns,
            opt.host, opt.port, bomb_n, (unsigned long long)opt.bomb_bytes);
    struct epoll_event evs[512];
    double next_tick = t0, next_stat = t0 + 1;
    double last_tick = t0;
    while (!stop_flag) {
        double now = now_s();
        if (opt.duration > 0 && now - t0 >= opt.duration)
            break;
        int timeout = (int)((next_tick - now) * 1000);
        if (timeout < 0)
            timeout = 0;
        int n = epoll_wait(ep, evs, 512, timeout);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        now = now_s();
        for (int i = 0; i < n; i++)
            on_event(&conns[evs[i].data.u32], evs[i].events, now);
        if (now >= next_tick) {
            double dt = now - last_tick;
            last_tick = now;
            for (int i = 0; i < opt.conns; i++) {
                struct conn *c = &conns[i];
                if (c->st == S_IDLE) {
                    if (now >= c->next_at)
                        conn_start(c, i, now);
                    continue;
                }
                if (c->st == S_CONNECTING && now - c->t_open > 10) {
                    ks[c->kind].connect_errors++;
                    conn_close(c, "connect timeout", true, now);
                    continue;
                }
                if (opt.flood_bps > 0 && (c->kind == K_PIPELINE || c->kind == K_PARTIAL) && c->st == S_OPEN) {
                    c->tokens += opt.flood_bps * dt;
                    if (c->tokens > opt.flood_bps / 10)
                        c->tokens = opt.flood_bps / 10;
                    if (c->tokens > 0)
                        pump(c, now);
                }
                if ((c->st == S_OPEN || (c->st == S_HANDSHAKE && c->kind == K_SLOWLORIS && c->variant == 0)) &&
                    c->next_at > 0 && now >= c->next_at &&
                    (c->kind == K_NOREAD || c->kind == K_SLOWLORIS || c->kind == K_BOMB))
                    timed(c, now);
            }
            next_tick = now + 0.01;
        }
        if (now >= next_stat) {
            fputs("STAT ", stderr);
            print_stats(stderr, now - t0, false);
            next_stat += 1;
        }
    }
    double now = now_s();
    for (int i = 0; i < opt.conns; i++)
        if (conns[i].fd >= 0) {
            conns[i].counted = true; /* our close, not the server's */
            conn_close(&conns[i], NULL, true, now);
        }
    print_stats(stdout, now - t0, true);
    if (opt.json_path) {
        FILE *f = fopen(opt.json_path, "w");
        if (f == NULL)
            die("%s: %s", opt.json_path, strerror(errno));
        print_stats(f, now - t0, true);
        fclose(f);
    }
    return 0;
}
