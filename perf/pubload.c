/*
 * perf/pubload.c — HTTP publish load generator for ringcast (POST /api/v1/publish),
 * with WebSocket subscribers that check what the publishes delivered.
 *
 *   pubload --target 127.0.0.1:8080[,127.0.0.1:8081] --conns 64 --inflight 1
 *           --items 1 --warmup 1 --duration 5 [--sub 127.0.0.1:8080 --sub 127.0.0.1:8081]
 *
 * Publishers: --conns keep-alive HTTP/1.1 connections (connection i goes to
 * target i % ntargets), each keeping --inflight requests outstanding (1 =
 * strictly request/answer; more = pipelined) and sending the next one as soon
 * as an answer arrives. A request carries --items messages on --topic
 * (one object, or an array of objects when --items > 1), each
 * {"c":<publisher connection>,"s":<its sequence number>,"p":"<--pad bytes>"}.
 * Every answer is matched to its request (answers come in request order),
 * its status counted, and — inside the window — its latency (answer read −
 * request written, CLOCK_MONOTONIC) kept for the percentiles. A 200 must say
 * {"published":<items>}.
 *
 * Subscribers (--sub HOST:PORT, repeatable): one /ws connection each,
 * subscribed to --topic before any publish. They record every message they
 * receive per (publisher connection, sequence number); at the end each
 * message answered 200 must have reached every subscriber exactly once
 * (missing / duplicated), and per publisher connection in order (reordered);
 * a message that was not answered 200 but arrived anyway is counted
 * (delivered_unacked: fine after a 504, wrong after a 503).
 *
 * Timeline: connect the subscribers, wait for their "subscribed" acks and
 * --settle-ms; connect the publishers; publish for --warmup + --duration
 * seconds (counting only inside the window: "WINDOW START" / "WINDOW END"
 * on stderr); stop sending, wait for every outstanding answer (up to
 * --drain-s), then for the subscribers to have everything (up to --grace-s
 * with no progress). One JSON object on stdout.
 *
 * Two threads, each one epoll loop: the publishers in the main thread, the
 * subscribers in their own (so a subscriber is never starved into a slow
 * consumer by the publishers' work at high message rates).
 *
 * Build: cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -pthread -o perf/build/pubload perf/pubload.c
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 16
#define MAX_SUBS 16
#define RBUF 262144

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "pubload: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- growable byte arrays (per-message states) ---- */

struct bytes {
    uint8_t *p;
    size_t n, cap;
};

static uint8_t *bytes_at(struct bytes *b, size_t i) {
    if (i >= b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= i) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) die("%s", "out of memory");
        memset(b->p + b->cap, 0, cap - b->cap);
        b->cap = cap;
    }
    if (i >= b->n) b->n = i + 1;
    return &b->p[i];
}

/* ---- options ---- */

struct target {
    struct sockaddr_in addr;
    char text[64];
};

static struct {
    struct target targets[MAX_TARGETS];
    int ntargets;
    struct target subs[MAX_SUBS];
    int nsubs;
    int conns, inflight, items, pad;
    double warmup, duration, drain_s, grace_s;
    int settle_ms;
    const char *topic;
    const char *path;
    const char *extra_header;
} opt = {.conns = 64, .inflight = 1, .items = 1, .pad = 16, .warmup = 1, .duration = 5, .drain_s = 10,
         .grace_s = 3, .settle_ms = 300, .topic = "bench", .path = "/api/v1/publish", .extra_header = ""};

static void parse_addr(const char *s, struct target *t) {
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host) die("bad address %s (want HOST:PORT)", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    memset(&t->addr, 0, sizeof t->addr);
    t->addr.sin_family = AF_INET;
    t->addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &t->addr.sin_addr) != 1) die("bad IPv4 address %s", s);
    snprintf(t->text, sizeof t->text, "%s", s);
}

/* ---- state ---- */

enum { K_PUB = 1, K_SUB = 2 };

struct req {
    uint64_t sent_ns;
    uint32_t first_seq;
};

struct pub {
    int kind;
    int fd, idx;
    struct target *t;
    char *out;
    size_t out_len, out_off, out_cap;
    char *in;
    size_t in_len;
    struct req *ring; /* outstanding requests, FIFO */
    unsigned head, n;
    uint32_t next_seq;
    struct bytes status; /* per seq: 0 unanswered, 1 = 200, 2 = other, 3 = 504 */
    bool dead;
};

struct sub {
    int kind;
    int fd, idx;
    struct target *t;
    char *in;
    size_t in_len;
    bool upgraded, subscribed;
    struct bytes *got;    /* [conns]: per seq, times received */
    int64_t *last;        /* [conns]: last seq seen, for order */
    uint64_t msgs, other, reordered, malformed;
    bool closed;
};

static struct pub *pubs;
static struct sub subs[MAX_SUBS];
static int ep, sub_ep;
static int sub_stop;
static bool sending = true;
static uint64_t t_win_start, t_win_end;
static bool in_window;

/* counters */
static uint64_t st_req_total, st_req_win, st_msgs_win, st_ok_msgs_total;
static uint64_t st_status[600], st_status_win[600], st_errors, st_bad_body, st_conn_closed;
static uint32_t *lat_us;
static size_t lat_n, lat_cap;

static void lat_add(uint64_t ns) {
    if (lat_n == lat_cap) {
        lat_cap = lat_cap ? lat_cap * 2 : 1 << 16;
        lat_us = realloc(lat_us, lat_cap * sizeof *lat_us);
        if (!lat_us) die("%s", "out of memory");
    }
    uint64_t us = ns / 1000;
    lat_us[lat_n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int connect_to(struct target *t) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&t->addr, sizeof t->addr) < 0) die("connect to %s failed", t->text);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}


static void nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) die("fcntl: %s", strerror(errno));
}

static void watch_on(int epfd, int fd, void *ptr, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = ptr};
    if (epoll_ctl(epfd, op, fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

static void watch(int fd, void *ptr, uint32_t events, int op) { watch_on(ep, fd, ptr, events, op); }

/* ---- publishers ---- */

static char *padbuf, *bodybuf;
static size_t bodycap;

static void out_append(struct pub *p, const char *s, size_t n) {
    if (p->out_len + n > p->out_cap) {
        size_t cap = p->out_cap ? p->out_cap : 4096;
        while (cap < p->out_len + n) cap *= 2;
        p->out = realloc(p->out, cap);
        if (!p->out) die("%s", "out of memory");
        p->out_cap = cap;
    }
    memcpy(p->out + p->out_len, s, n);
    p->out_len += n;
}

static void pub_queue(struct pub *p, uint64_t now) {
    size_t len = 0;
    if (opt.items > 1) bodybuf[len++] = '[';
    for (int i = 0; i < opt.items; i++)
        len += (size_t)snprintf(bodybuf + len, bodycap - len, "%s{\"topic\":\"%s\",\"data\":{\"c\":%d,\"s\":%u,\"p\":\"%s\"}}",
                                i ? "," : "", opt.topic, p->idx, p->next_seq + (uint32_t)i, padbuf);
    if (opt.items > 1) bodybuf[len++] = ']';
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: ringcast\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n",
                      opt.path, opt.extra_header, len);
    out_append(p, head, (size_t)hl);
    out_append(p, bodybuf, len);
    unsigned tail = (p->head + p->n) % (unsigned)opt.inflight;
    p->ring[tail] = (struct req){.sent_ns = now, .first_seq = p->next_seq};
    p->n++;
    p->next_seq += (uint32_t)opt.items;
}

static void pub_close(struct pub *p, bool reconnect);

static void pub_flush(struct pub *p) {
    while (p->out_off < p->out_len) {
        ssize_t w = send(p->fd, p->out + p->out_off, p->out_len - p->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                watch(p->fd, p, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
                return;
            }
            pub_close(p, sending);
            return;
        }
        p->out_off += (size_t)w;
    }
    p->out_off = p->out_len = 0;
}

static void pub_open(struct pub *p) {
    p->fd = connect_to(p->t);
    nonblock(p->fd);
    p->in_len = p->out_len = p->out_off = 0;
    p->head = p->n = 0;
    p->dead = false;
    watch(p->fd, p, EPOLLIN, EPOLL_CTL_ADD);
}

static void pub_close(struct pub *p, bool reconnect) {
    if (p->dead) return;
    st_conn_closed++;
    /* outstanding requests: unknown fate (4) */
    for (unsigned k = 0; k < p->n; k++) {
        struct req *r = &p->ring[(p->head + k) % (unsigned)opt.inflight];
        for (int i = 0; i < opt.items; i++) *bytes_at(&p->status, r->first_seq + (uint32_t)i) = 4;
        st_errors++;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    p->dead = true;
    p->n = 0;
    if (reconnect) {
        pub_open(p);
        uint64_t now = now_ns();
        for (int k = 0; k < opt.inflight; k++) pub_queue(p, now);
        pub_flush(p);
    }
}

static void pub_answer(struct pub *p, int status, const char *body, size_t blen, uint64_t now) {
    if (!p->n) {
        st_errors++;
        return;
    }
    struct req r = p->ring[p->head];
    p->head = (p->head + 1) % (unsigned)opt.inflight;
    p->n--;
    if (status < 0 || status >= 600) status = 599;
    st_status[status]++;
    st_req_total++;
    uint8_t mark = status == 200 ? 1 : status == 504 ? 3 : 2;
    if (status == 200) {
        char want[48];
        int wl = snprintf(want, sizeof want, "\"published\":%d", opt.items);
        if (!memmem(body, blen, want, (size_t)wl)) st_bad_body++;
        st_ok_msgs_total += (uint64_t)opt.items;
    }
    for (int i = 0; i < opt.items; i++) *bytes_at(&p->status, r.first_seq + (uint32_t)i) = mark;
    if (in_window) {
        st_status_win[status]++;
        st_req_win++;
        if (status == 200) st_msgs_win += (uint64_t)opt.items;
        lat_add(now - r.sent_ns);
    }
    if (sending) pub_queue(p, now);
}

static size_t content_length(const char *head, size_t hlen) {
    const char *q = head, *end = head + hlen;
    while (q < end) {
        const char *nl = memmem(q, (size_t)(end - q), "\r\n", 2);
        if (!nl) break;
        q = nl + 2;
        if ((size_t)(end - q) > 15 && strncasecmp(q, "content-length:", 15) == 0) return strtoul(q + 15, NULL, 10);
    }
    return 0;
}

static void pub_read(struct pub *p) {
    uint64_t now = 0;
    for (;;) {
        ssize_t r = recv(p->fd, p->in + p->in_len, RBUF - p->in_len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) break;
        if (r <= 0) {
            pub_close(p, sending);
            return;
        }
        p->in_len += (size_t)r;
        now = now_ns();
        size_t pos = 0;
        for (;;) {
            char *hend = memmem(p->in + pos, p->in_len - pos, "\r\n\r\n", 4);
            if (!hend) break;
            size_t hlen = (size_t)(hend + 4 - (p->in + pos));
            size_t cl = content_length(p->in + pos, hlen);
            if (p->in_len - pos < hlen + cl) break;
            int status = (p->in_len - pos > 12) ? atoi(p->in + pos + 9) : 0;
            pub_answer(p, status, p->in + pos + hlen, cl, now);
            pos += hlen + cl;
        }
        if (pos) {
            memmove(p->in, p->in + pos, p->in_len - pos);
            p->in_len -= pos;
        }
        if (p->in_len == RBUF) die("%s", "an answer larger than the read buffer");
        if ((size_t)r < RBUF / 2) break;
    }
    if (p->out_len > p->out_off) pub_flush(p);
}

/* ---- subscribers ---- */

static void ws_send_text(int fd, int opcode, const char *s, size_t n) {
    uint8_t f[512];
    if (n > 400) die("%s", "control message too long");
    size_t h = 0;
    f[h++] = (uint8_t)(0x80 | opcode);
    f[h++] = (uint8_t)(0x80 | n);
    if (n >= 126) die("%s", "frame too long");
    uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(f + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) f[h + i] = (uint8_t)s[i] ^ key[i & 3];
    size_t total = h + n, off = 0;
    while (off < total) {
        ssize_t w = send(fd, f + off, total - off, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (w <= 0) return;
        off += (size_t)w;
    }
}

static void sub_message(struct sub *s, const uint8_t *m, size_t n) {
    if (n > 6 && memcmp(m, "{\"c\":", 5) == 0) {
        char tmp[64];
        size_t k = n < sizeof tmp - 1 ? n : sizeof tmp - 1;
        memcpy(tmp, m, k);
        tmp[k] = 0;
        char *e;
        long c = strtol(tmp + 5, &e, 10);
        if (strncmp(e, ",\"s\":", 5) != 0 || c < 0 || c >= opt.conns) {
            s->malformed++;
            return;
        }
        long seq = strtol(e + 5, NULL, 10);
        uint8_t *g = bytes_at(&s->got[c], (size_t)seq);
        if (*g < 255) (*g)++;
        if (seq <= s->last[c]) s->reordered++;
        else s->last[c] = seq;
        __atomic_fetch_add(&s->msgs, 1, __ATOMIC_RELAXED);
    } else {
        s->other++;
        if (memmem(m, n, "\"subscribed\"", 12)) s->subscribed = true;
    }
}

/* Parses the frames in s->in; returns false when the connection closed. */
static bool sub_frames(struct sub *s) {
    size_t pos = 0;
    const uint8_t *b = (const uint8_t *)s->in;
    while (s->in_len - pos >= 2) {
        uint8_t op = b[pos] & 15;
        uint64_t len = b[pos + 1] & 127;
        size_t hdr = 2;
        if (b[pos + 1] & 0x80) die("%s", "masked frame from the server");
        if (len == 126) {
            if (s->in_len - pos < 4) break;
            len = ((uint64_t)b[pos + 2] << 8) | b[pos + 3];
            hdr = 4;
        } else if (len == 127) {
            if (s->in_len - pos < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | b[pos + 2 + i];
            hdr = 10;
        }
        if (hdr + len > RBUF) die("%s", "frame larger than the read buffer");
        if (s->in_len - pos < hdr + len) break;
        const uint8_t *pl = b + pos + hdr;
        if (op == 1 || op == 2) sub_message(s, pl, len);
        else if (op == 9) ws_send_text(s->fd, 10, (const char *)pl, len);
        else if (op == 8) __atomic_store_n(&s->closed, true, __ATOMIC_RELAXED);
        pos += hdr + len;
    }
    if (pos) {
        memmove(s->in, s->in + pos, s->in_len - pos);
        s->in_len -= pos;
    }
    return !s->closed;
}

static void sub_read(struct sub *s) {
    for (;;) {
        ssize_t r = recv(s->fd, s->in + s->in_len, RBUF - s->in_len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return;
        if (r <= 0) {
            __atomic_store_n(&s->closed, true, __ATOMIC_RELAXED);
            epoll_ctl(sub_ep, EPOLL_CTL_DEL, s->fd, NULL);
            return;
        }
        s->in_len += (size_t)r;
        if (!sub_frames(s)) {
            epoll_ctl(sub_ep, EPOLL_CTL_DEL, s->fd, NULL);
            return;
        }
        if ((size_t)r < RBUF / 2) return;
    }
}

static void sub_open(struct sub *s) {
    s->fd = connect_to(s->t);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     s->t->text);
    if (send(s->fd, req, (size_t)n, MSG_NOSIGNAL) != n) die("upgrade request to %s failed", s->t->text);
    for (;;) {
        ssize_t r = recv(s->fd, s->in + s->in_len, RBUF - s->in_len, 0);
        if (r <= 0) die("no upgrade answer from %s", s->t->text);
        s->in_len += (size_t)r;
        char *hend = memmem(s->in, s->in_len, "\r\n\r\n", 4);
        if (!hend) continue;
        if (strncmp(s->in, "HTTP/1.1 101", 12) != 0) die("upgrade refused by %s", s->t->text);
        size_t hlen = (size_t)(hend + 4 - s->in);
        memmove(s->in, s->in + hlen, s->in_len - hlen);
        s->in_len -= hlen;
        break;
    }
    char msg[256];
    n = snprintf(msg, sizeof msg, "{\"type\":\"subscribe\",\"markets\":[\"%s\"]}", opt.topic);
    ws_send_text(s->fd, 1, msg, (size_t)n);
    s->got = calloc((size_t)opt.conns, sizeof *s->got);
    s->last = malloc((size_t)opt.conns * sizeof *s->last);
    for (int c = 0; c < opt.conns; c++) s->last[c] = -1;
    while (!s->subscribed) {
        if (!sub_frames(s)) die("subscriber of %s closed", s->t->text);
        if (s->subscribed) break;
        ssize_t r = recv(s->fd, s->in + s->in_len, RBUF - s->in_len, 0);
        if (r <= 0) die("no subscribed ack from %s", s->t->text);
        s->in_len += (size_t)r;
    }
    nonblock(s->fd);
    watch_on(sub_ep, s->fd, s, EPOLLIN, EPOLL_CTL_ADD);
}

static void *sub_thread(void *arg) {
    (void)arg;
    struct epoll_event evs[64];
    while (!__atomic_load_n(&sub_stop, __ATOMIC_ACQUIRE)) {
        int n = epoll_wait(sub_ep, evs, 64, 20);
        for (int i = 0; i < n; i++) sub_read(evs[i].data.ptr);
    }
    return NULL;
}

/* ---- results ---- */

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pctl(double q) {
    if (!lat_n) return 0;
    size_t i = (size_t)(q * (double)(lat_n - 1) + 0.5);
    return lat_us[i];
}

static void print_status(const char *name, const uint64_t *st) {
    printf("\"%s\":{", name);
    bool first = true;
    for (int i = 0; i < 600; i++)
        if (st[i]) {
            printf("%s\"%d\":%llu", first ? "" : ",", i, (unsigned long long)st[i]);
            first = false;
        }
    printf("}");
}

static void usage(void) {
    fprintf(stderr,
            "usage: pubload --target HOST:PORT[,HOST:PORT...] [--conns 64] [--inflight 1] [--items 1] [--pad 16]\n"
            "               [--warmup 1] [--duration 5] [--topic bench] [--sub HOST:PORT]... [--settle-ms 300]\n"
            "               [--drain-s 10] [--grace-s 3] [--path /api/v1/publish] [--header 'Name: value']\n");
    exit(2);
}

int main(int argc, char **argv) {
    static const struct option lo[] = {
        {"target", 1, 0, 't'}, {"conns", 1, 0, 'c'}, {"inflight", 1, 0, 'k'}, {"items", 1, 0, 'i'},
        {"pad", 1, 0, 'p'}, {"warmup", 1, 0, 'w'}, {"duration", 1, 0, 'd'}, {"topic", 1, 0, 'T'},
        {"sub", 1, 0, 's'}, {"settle-ms", 1, 0, 'S'}, {"drain-s", 1, 0, 'D'}, {"grace-s", 1, 0, 'g'},
        {"path", 1, 0, 'P'}, {"header", 1, 0, 'H'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    static char header[512];
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 't': {
            char *list = strdup(optarg), *save = NULL;
            for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (opt.ntargets == MAX_TARGETS) die("%s", "too many targets");
                parse_addr(tok, &opt.targets[opt.ntargets++]);
            }
            free(list);
            break;
        }
        case 'c': opt.conns = atoi(optarg); break;
        case 'k': opt.inflight = atoi(optarg); break;
        case 'i': opt.items = atoi(optarg); break;
        case 'p': opt.pad = atoi(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'T': opt.topic = optarg; break;
        case 's':
            if (opt.nsubs == MAX_SUBS) die("%s", "too many subscribers");
            parse_addr(optarg, &opt.subs[opt.nsubs++]);
            break;
        case 'S': opt.settle_ms = atoi(optarg); break;
        case 'D': opt.drain_s = atof(optarg); break;
        case 'g': opt.grace_s = atof(optarg); break;
        case 'P': opt.path = optarg; break;
        case 'H':
            snprintf(header, sizeof header, "%s\r\n", optarg);
            opt.extra_header = header;
            break;
        default: usage();
        }
    }
    if (!opt.ntargets || opt.conns < 1 || opt.inflight < 1 || opt.items < 1 || opt.pad < 0) usage();
    padbuf = malloc((size_t)opt.pad + 1);
    memset(padbuf, 'x', (size_t)opt.pad);
    padbuf[opt.pad] = 0;
    bodycap = (size_t)opt.items * ((size_t)opt.pad + strlen(opt.topic) + 96) + 16;
    bodybuf = malloc(bodycap);
    ep = epoll_create1(0);
    sub_ep = epoll_create1(0);
    if (ep < 0 || sub_ep < 0) die("epoll_create1: %s", strerror(errno));

    for (int i = 0; i < opt.nsubs; i++) {
        subs[i].kind = K_SUB;
        subs[i].idx = i;
        subs[i].t = &opt.subs[i];
        subs[i].in = malloc(RBUF);
        sub_open(&subs[i]);
    }
    pthread_t subt;
    if (pthread_create(&subt, NULL, sub_thread, NULL) != 0) die("%s", "pthread_create failed");
    if (opt.nsubs && opt.settle_ms > 0) usleep((useconds_t)opt.settle_ms * 1000);

    pubs = calloc((size_t)opt.conns, sizeof *pubs);
    for (int i = 0; i < opt.conns; i++) {
        struct pub *p = &pubs[i];
        p->kind = K_PUB;
        p->idx = i;
        p->t = &opt.targets[i % opt.ntargets];
        p->in = malloc(RBUF);
        p->ring = calloc((size_t)opt.inflight, sizeof *p->ring);
        pub_open(p);
    }
    uint64_t t0 = now_ns();
    for (int i = 0; i < opt.conns; i++) {
        for (int k = 0; k < opt.inflight; k++) pub_queue(&pubs[i], t0);
        pub_flush(&pubs[i]);
    }
    t_win_start = t0 + (uint64_t)(opt.warmup * 1e9);
    t_win_end = t_win_start + (uint64_t)(opt.duration * 1e9);
    bool win_done = false;
    uint64_t drain_deadline = 0;
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 5);
        uint64_t now = now_ns();
        if (!in_window && !win_done && now >= t_win_start) {
            in_window = true;
            getrusage(RUSAGE_SELF, &ru0);
            fprintf(stderr, "WINDOW START\n");
        }
        if (in_window && now >= t_win_end) {
            in_window = false;
            win_done = true;
            sending = false;
            drain_deadline = now + (uint64_t)(opt.drain_s * 1e9);
            fprintf(stderr, "WINDOW END\n");
        }
        for (int i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;
            if (kind == K_PUB) {
                struct pub *p = evs[i].data.ptr;
                if (evs[i].events & EPOLLOUT) {
                    pub_flush(p);
                    if (p->out_off == 0 && p->out_len == 0 && !p->dead) watch(p->fd, p, EPOLLIN, EPOLL_CTL_MOD);
                }
                if (!p->dead && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) pub_read(p);
            }
        }
        if (!sending) {
            bool idle = true;
            for (int i = 0; i < opt.conns; i++)
                if (!pubs[i].dead && pubs[i].n) idle = false;
            if (idle || now >= drain_deadline) break;
        }
    }
    struct rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu_win = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                     (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    uint64_t unanswered = 0;
    for (int i = 0; i < opt.conns; i++) {
        if (!pubs[i].dead) unanswered += pubs[i].n;
        for (unsigned k = 0; k < pubs[i].n; k++) {
            struct req *r = &pubs[i].ring[(pubs[i].head + k) % (unsigned)opt.inflight];
            for (int j = 0; j < opt.items; j++) *bytes_at(&pubs[i].status, r->first_seq + (uint32_t)j) = 4;
        }
        if (!pubs[i].dead) close(pubs[i].fd);
    }

    /* Subscribers: until each has as many messages as were answered 200, or no progress for grace_s. */
    uint64_t last_progress = now_ns(), last_total = 0;
    for (;;) {
        uint64_t total = 0;
        bool done = true;
        for (int i = 0; i < opt.nsubs; i++) {
            uint64_t m = __atomic_load_n(&subs[i].msgs, __ATOMIC_RELAXED);
            total += m;
            if (!__atomic_load_n(&subs[i].closed, __ATOMIC_RELAXED) && m < st_ok_msgs_total) done = false;
        }
        uint64_t now = now_ns();
        if (total != last_total) {
            last_total = total;
            last_progress = now;
        }
        if (done || now - last_progress > (uint64_t)(opt.grace_s * 1e9)) break;
        usleep(10000);
    }
    /* A last short look for anything beyond (duplicates). */
    if (opt.nsubs) usleep(200000);
    __atomic_store_n(&sub_stop, 1, __ATOMIC_RELEASE);
    pthread_join(subt, NULL);

    qsort(lat_us, lat_n, sizeof *lat_us, cmp_u32);
    printf("{\"conns\":%d,\"inflight\":%d,\"items\":%d,\"pad\":%d,\"window_s\":%.3f,", opt.conns, opt.inflight,
           opt.items, opt.pad, opt.duration);
    printf("\"requests_per_s\":%.1f,\"ok_messages_per_s\":%.1f,\"requests_window\":%llu,", (double)st_req_win / opt.duration,
           (double)st_msgs_win / opt.duration, (unsigned long long)st_req_win);
    print_status("status_window", st_status_win);
    printf(",");
    print_status("status_total", st_status);
    printf(",\"ok_requests_per_s\":%.1f", (double)st_status_win[200] / opt.duration);
    printf(",\"requests_total\":%llu,\"ok_messages_total\":%llu,\"errors\":%llu,\"bad_body\":%llu,\"conn_closed\":%llu,"
           "\"unanswered_at_end\":%llu,\"client_cpu_s\":%.3f,",
           (unsigned long long)st_req_total, (unsigned long long)st_ok_msgs_total, (unsigned long long)st_errors,
           (unsigned long long)st_bad_body, (unsigned long long)st_conn_closed, (unsigned long long)unanswered, cpu_win);
    printf("\"latency_us\":{\"n\":%zu,\"p50\":%u,\"p90\":%u,\"p99\":%u,\"p999\":%u,\"max\":%u},", lat_n, pctl(0.5),
           pctl(0.9), pctl(0.99), pctl(0.999), lat_n ? lat_us[lat_n - 1] : 0);
    printf("\"subs\":[");
    for (int i = 0; i < opt.nsubs; i++) {
        struct sub *s = &subs[i];
        uint64_t missing = 0, dup = 0, unacked_503 = 0, unacked_504 = 0, unacked_err = 0;
        char ids[512];
        size_t idl = 0;
        ids[0] = 0;
        for (int c = 0; c < opt.conns; c++) {
            struct bytes *st = &pubs[c].status, *g = &s->got[c];
            size_t n = st->n > g->n ? st->n : g->n;
            for (size_t q = 0; q < n; q++) {
                uint8_t a = q < st->n ? st->p[q] : 0, r = q < g->n ? g->p[q] : 0;
                if (r > 1) dup += r - 1u;
                if (a == 1 && r == 0) {
                    missing++;
                    if (idl < sizeof ids - 40)
                        idl += (size_t)snprintf(ids + idl, sizeof ids - idl, "%s[%d,%zu]", idl ? "," : "", c, q);
                }
                if (a != 1 && r) {
                    if (a == 2) unacked_503++;
                    else if (a == 3) unacked_504++;
                    else unacked_err++;
                }
            }
        }
        printf("%s{\"addr\":\"%s\",\"msgs\":%llu,\"missing\":%llu,\"dup\":%llu,\"reordered\":%llu,\"malformed\":%llu,"
               "\"delivered_not_200\":%llu,\"delivered_after_504\":%llu,\"delivered_unknown\":%llu,\"closed\":%s,"
               "\"missing_first\":[%s]}",
               i ? "," : "", s->t->text, (unsigned long long)s->msgs, (unsigned long long)missing,
               (unsigned long long)dup, (unsigned long long)s->reordered, (unsigned long long)s->malformed,
               (unsigned long long)unacked_503, (unsigned long long)unacked_504, (unsigned long long)unacked_err,
               s->closed ? "true" : "false", ids);
    }
    printf("]}\n");
    return 0;
}
