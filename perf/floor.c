/*
 * perf/floor.c — the physical floor for ringcast's fan-out benchmarks.
 *
 * The least a broadcast server on this machine can do per delivery: one
 * thread, one io_uring, the same demo messages as `ringcast --demo`
 * (src/ingest/demo.c, linked in: byte-for-byte the same generator), each
 * framed ONCE as an unmasked WebSocket text frame, and that one buffer
 * handed to every subscribed socket with io_uring SENDs submitted in
 * batches (all the sends of a message go to the kernel in one or a few
 * io_uring_enter calls). No WebSocket logic on the data path: no per-socket
 * framing, no per-socket compression, a bare queue of buffer pointers per
 * socket behind its one in-flight send (a backlog goes out as one gathered
 * SENDMSG), no conflation, no metrics.
 *
 * So that perf/loadgen measures it exactly as it measures ringcast, each
 * connection first gets the least of the protocol: the HTTP upgrade request
 * is read until its blank line and answered with a fixed 101 (the
 * Sec-WebSocket-Accept computed by the server's own rc_ws_accept_key), the
 * client's first frame (the subscribe message) is unmasked and scanned for
 * "demo:…" names, and a fixed {"type":"subscribed"} frame goes back. After
 * that the connection only receives; whatever the client sends (pongs, its
 * close frame) is read and dropped, and EOF or an error closes it.
 *
 * Publishing: --rate messages/s over --topics topics, round robin, as the
 * demo feed (due-based, at most one second of catch-up after a stall),
 * --size bytes each; the messages of a topic that come due in the same loop
 * pass share one buffer (ringcast's batch window at --batch-ms 0). A socket
 * whose send is still in flight when the next message comes gets it queued
 * (up to QCAP messages, then it is dropped as a slow consumer); a short send
 * is resubmitted from where it stopped.
 *
 * The ring: SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN | SUBMIT_ALL, as
 * ringcast's shards. A loop pass: publish what is due, arm a timeout SQE for
 * the next tick, submit and wait for one completion, then handle completions
 * and call io_uring_get_events() until none come: with DEFER_TASKRUN one
 * io_uring_enter runs only a bounded batch of deferred completions (on this
 * 6.18 kernel we saw accepts and subscribe recvs trickle in at ~1,000/s,
 * and handshakes time out, while passes full of inline send completions
 * kept the wait returning at once), so the loop drains them explicitly.
 * --verbose prints counters once a second.
 *
 * --deflate: a client that offers permessage-deflate gets
 * "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
 * and the compressed variant of each buffer: every message compressed ONCE
 * (zlib level 1, raw, no context) for all such subscribers, as ringcast does.
 *
 * Build: cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -o perf/build/floor perf/floor.c \
 *           src/ws/handshake.c src/http/parser.c src/ingest/demo.c -luring -lz
 * Run:   perf/build/floor --port 9000 --rate 100 --size 256 --topics 1
 *
 * --reuse-port lets several floor processes share a port (idle runs past
 * one process's RLIMIT_NOFILE).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "ringcast/demo.h"
#include "ringcast/ws.h"

#define QCAP 64          /* messages queued per socket behind its in-flight send */
#define HS_CAP 2048      /* largest upgrade request + first frame */
#define DRAIN_CAP 256    /* scratch for what clients send after subscribing */
#define MAX_SUBS 1024    /* topics per connection */
#define DEMO_SEED 20261121

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_TIMER };
enum { C_FREE, C_HTTP, C_WS_WAIT, C_OPEN, C_CLOSING };

struct msg {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
};

struct conn {
    uint8_t state;
    uint8_t sending;     /* a send is in flight */
    uint8_t recving;     /* a recv is in flight */
    uint8_t ctl_sending; /* the in-flight send is ctl (handshake reply / ack), not a message */
    uint8_t pmd;         /* permessage-deflate negotiated: gets the compressed variant */
    uint16_t rlen;
    uint16_t qhead, qlen;
    uint16_t inflight_n; /* messages covered by the in-flight send */
    uint32_t off;        /* bytes of the head message (or ctl) already sent */
    uint32_t ctl_len;
    char *rbuf;          /* HS_CAP while handshaking, then DRAIN_CAP */
    char *ctl;           /* 101 response, then the ack frame */
    char *ctl_next;      /* the ack, when it is due while the 101 is still in flight */
    uint32_t ctl_next_len;
    uint32_t *topics;    /* subscribed topic indexes */
    struct msghdr *mh;   /* gathered sends: a msghdr and QCAP iovecs, allocated on first need */
    uint32_t ntopics;
    struct msg *q[QCAP];
};

struct topic_subs {
    int *fds;
    uint32_t n, cap;
};

static struct {
    const char *host;
    int port;
    double rate;
    unsigned size, ntopics;
    bool reuse_port;
    unsigned ring_entries;
    bool deflate;
    bool verbose;
} opt = {"127.0.0.1", 9000, 100, 256, 1, false, 4096, false, false};

static struct io_uring ring;
static struct conn *conns; /* indexed by fd */
static int nconns_cap;
static struct topic_subs *subs;
static struct rc_demo demo;
static int listen_fd;
static volatile sig_atomic_t stop;
static uint64_t stat_msgs, stat_sends, stat_partial, stat_gathered, stat_slow_drops, stat_open;
static uint64_t stat_accepts, stat_recvs, stat_passes, stat_cqes, stat_recv_armed;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static uint64_t ud(int op, int fd) { return (uint64_t)op << 32 | (uint32_t)fd; }

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe;
    while ((sqe = io_uring_get_sqe(&ring)) == NULL)
        io_uring_submit(&ring); /* a full SQ: hand this batch to the kernel */
    return sqe;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void msg_unref(struct msg *m)
{
    if (--m->refs == 0)
        free(m);
}

/* ---- sends ---- */

static void arm_send(int fd)
{
    struct conn *c = &conns[fd];
    struct io_uring_sqe *sqe = get_sqe();
    if (c->ctl != NULL && c->ctl_len > 0) {
        io_uring_prep_send(sqe, fd, c->ctl + c->off, c->ctl_len - c->off, MSG_NOSIGNAL);
        c->ctl_sending = 1;
    } else if (c->qlen == 1) {
        struct msg *m = c->q[c->qhead];
        io_uring_prep_send(sqe, fd, m->data + c->off, m->len - c->off, MSG_NOSIGNAL);
        c->ctl_sending = 0;
    } else { /* a backlog: everything queued in one SENDMSG, as a server that gathers would */
        if (c->mh == NULL) {
            c->mh = calloc(1, sizeof *c->mh + QCAP * sizeof(struct iovec));
            if (c->mh == NULL)
                die("calloc");
            c->mh->msg_iov = (struct iovec *)(c->mh + 1);
        }
        struct iovec *iov = c->mh->msg_iov;
        for (uint16_t k = 0; k < c->qlen; k++) {
            struct msg *m = c->q[(c->qhead + k) % QCAP];
            uint32_t skip = k == 0 ? c->off : 0;
            iov[k].iov_base = m->data + skip;
            iov[k].iov_len = m->len - skip;
        }
        c->mh->msg_iovlen = c->qlen;
        io_uring_prep_sendmsg(sqe, fd, c->mh, MSG_NOSIGNAL);
        c->ctl_sending = 0;
        stat_gathered++;
    }
    io_uring_sqe_set_data64(sqe, ud(OP_SEND, fd));
    c->inflight_n = c->ctl_sending ? 0 : c->qlen;
    c->sending = 1;
    stat_sends++;
}

static void conn_release(int fd)
{
    struct conn *c = &conns[fd];
    if (c->sending || c->recving)
        return; /* the last completion closes it */
    close(fd);
    free(c->rbuf);
    free(c->ctl);
    free(c->ctl_next);
    free(c->topics);
    free(c->mh);
    memset(c, 0, sizeof *c);
}

static void conn_close(int fd)
{
    struct conn *c = &conns[fd];
    if (c->state == C_CLOSING || c->state == C_FREE)
        return;
    if (c->state == C_OPEN) {
        stat_open--;
        for (uint32_t i = 0; i < c->ntopics; i++) { /* leave the topics' subscriber lists */
            struct topic_subs *ts = &subs[c->topics[i]];
            for (uint32_t j = 0; j < ts->n; j++)
                if (ts->fds[j] == fd) {
                    ts->fds[j] = ts->fds[--ts->n];
                    break;
                }
        }
    }
    c->state = C_CLOSING;
    /* queued messages: those of an in-flight send stay referenced until its completion */
    uint16_t keep = c->sending && !c->ctl_sending ? c->inflight_n : 0;
    for (uint16_t k = keep; k < c->qlen; k++)
        msg_unref(c->q[(c->qhead + k) % QCAP]);
    c->qlen = keep;
    if (c->recving || c->sending) {
        shutdown(fd, SHUT_RDWR); /* completes what is pending */
        return;
    }
    conn_release(fd);
}

static void on_send(int fd, int res)
{
    struct conn *c = &conns[fd];
    c->sending = 0;
    if (c->state == C_CLOSING) {
        for (uint16_t k = 0; k < c->qlen; k++)
            msg_unref(c->q[(c->qhead + k) % QCAP]);
        c->qlen = 0;
        conn_release(fd);
        return;
    }
    if (res <= 0) {
        conn_close(fd);
        return;
    }
    if (c->ctl_sending) {
        c->off += (uint32_t)res;
        if (c->off < c->ctl_len) {
            stat_partial++;
            arm_send(fd);
            return;
        }
        c->off = 0;
        free(c->ctl);
        c->ctl = c->ctl_next; /* the ack that came due meanwhile, if any */
        c->ctl_len = c->ctl_next_len;
        c->ctl_next = NULL;
        c->ctl_next_len = 0;
    } else {
        /* retire the messages the bytes covered; a short send leaves off inside one */
        uint32_t left = (uint32_t)res;
        uint16_t n = c->inflight_n;
        while (left > 0 && n > 0) {
            struct msg *m = c->q[c->qhead];
            uint32_t rest = m->len - c->off;
            if (left < rest) {
                c->off += left;
                stat_partial++;
                break;
            }
            left -= rest;
            c->off = 0;
            msg_unref(m);
            c->qhead = (uint16_t)((c->qhead + 1) % QCAP);
            c->qlen--;
            n--;
        }
    }
    if (c->qlen || c->ctl)
        arm_send(fd);
}

static void send_ctl(int fd, char *buf, uint32_t len)
{
    struct conn *c = &conns[fd];
    if (c->sending) { /* the client answered the 101 before we saw its completion */
        c->ctl_next = buf;
        c->ctl_next_len = len;
        return;
    }
    c->ctl = buf;
    c->ctl_len = len;
    c->off = 0;
    arm_send(fd);
}

/* ---- receives: handshake, subscribe, then drain until EOF ---- */

static void arm_recv(int fd)
{
    struct conn *c = &conns[fd];
    struct io_uring_sqe *sqe = get_sqe();
    if (c->state == C_OPEN)
        io_uring_prep_recv(sqe, fd, c->rbuf, DRAIN_CAP, 0);
    else
        io_uring_prep_recv(sqe, fd, c->rbuf + c->rlen, HS_CAP - c->rlen, 0);
    io_uring_sqe_set_data64(sqe, ud(OP_RECV, fd));
    c->recving = 1;
    stat_recv_armed++;
}

/* The value of header `name` in the request head, or NULL. */
static const char *header(const char *head, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = head, *end = head + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            return NULL;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol + 1;
    }
    return NULL;
}

static int64_t topic_index(const char *s, size_t n)
{
    for (unsigned i = 0; i < demo.ntopics; i++) {
        const struct rc_demo_topic *t = &demo.topics[i];
        if (t->name_len == n && memcmp(t->name, s, n) == 0)
            return i;
    }
    return -1;
}

static void subscribe(int fd, const char *p, size_t n)
{
    struct conn *c = &conns[fd];
    static uint32_t found[MAX_SUBS];
    const char *end = p + n;
    /* every quoted string that names a topic ("type", "subscribe", "topics" do not) */
    while (p < end && c->ntopics < MAX_SUBS) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (q == NULL)
            break;
        const char *e = memchr(q + 1, '"', (size_t)(end - q - 1));
        if (e == NULL)
            break;
        int64_t t = topic_index(q + 1, (size_t)(e - q - 1));
        if (t >= 0) {
            struct topic_subs *ts = &subs[t];
            if (ts->n == ts->cap) {
                ts->cap = ts->cap ? ts->cap * 2 : 64;
                ts->fds = realloc(ts->fds, ts->cap * sizeof *ts->fds);
                if (ts->fds == NULL)
                    die("realloc");
            }
            ts->fds[ts->n++] = fd;
            found[c->ntopics++] = (uint32_t)t;
        }
        p = e + 1;
    }
    c->topics = malloc((c->ntopics ? c->ntopics : 1) * sizeof *c->topics);
    if (c->topics == NULL)
        die("malloc");
    memcpy(c->topics, found, c->ntopics * sizeof *c->topics);
    static const char ack[] = "{\"type\":\"subscribed\"}";
    char *f = malloc(2 + sizeof ack);
    f[0] = (char)0x81;
    f[1] = (char)(sizeof ack - 1);
    memcpy(f + 2, ack, sizeof ack - 1);
    c->state = C_OPEN;
    stat_open++;
    send_ctl(fd, f, 2 + sizeof ack - 1);
}

/* A whole masked client frame at rbuf? Then unmask it in place and subscribe. */
static bool try_first_frame(int fd)
{
    struct conn *c = &conns[fd];
    uint8_t *b = (uint8_t *)c->rbuf;
    if (c->rlen < 2)
        return false;
    uint64_t len = b[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
        if (c->rlen < 4)
            return false;
        len = (uint64_t)b[2] << 8 | b[3];
        h = 4;
    } else if (len == 127) {
        conn_close(fd); /* no subscribe message is that long */
        return true;
    }
    if (!(b[1] & 0x80) || h + 4 + len > HS_CAP) {
        conn_close(fd);
        return true;
    }
    if (c->rlen < h + 4 + len)
        return false;
    uint8_t *mask = b + h, *pl = b + h + 4;
    for (uint64_t i = 0; i < len; i++)
        pl[i] ^= mask[i & 3];
    subscribe(fd, (const char *)pl, (size_t)len);
    char *small = realloc(c->rbuf, DRAIN_CAP);
    if (small)
        c->rbuf = small;
    c->rlen = 0;
    return true;
}

static void on_recv(int fd, int res)
{
    struct conn *c = &conns[fd];
    c->recving = 0;
    stat_recvs++;
    if (c->state == C_CLOSING) {
        conn_release(fd);
        return;
    }
    if (res <= 0) {
        conn_close(fd);
        return;
    }
    if (c->state == C_OPEN) {
        arm_recv(fd); /* drop it, read on (EOF closes) */
        return;
    }
    c->rlen = (uint16_t)(c->rlen + res);
    if (c->state == C_HTTP) {
        char *eoh = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (eoh == NULL) {
            if (c->rlen >= HS_CAP)
                conn_close(fd);
            else
                arm_recv(fd);
            return;
        }
        size_t head_len = (size_t)(eoh + 4 - c->rbuf), klen = 0;
        const char *key = header(c->rbuf, head_len, "Sec-WebSocket-Key", &klen);
        if (key == NULL || klen == 0) {
            conn_close(fd);
            return;
        }
        char accept[29];
        rc_ws_accept_key(key, klen, accept);
        size_t elen = 0;
        const char *ext = header(c->rbuf, head_len, "Sec-WebSocket-Extensions", &elen);
        c->pmd = opt.deflate && ext != NULL && memmem(ext, elen, "permessage-deflate", 18) != NULL;
        char *resp = malloc(256);
        int n = snprintf(resp, 256,
                         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept,
                         c->pmd ? "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                                  "client_no_context_takeover\r\n" : "");
        memmove(c->rbuf, c->rbuf + head_len, c->rlen - head_len);
        c->rlen = (uint16_t)(c->rlen - head_len);
        c->state = C_WS_WAIT;
        send_ctl(fd, resp, (uint32_t)n);
    }
    if (c->state == C_WS_WAIT && !try_first_frame(fd)) {
        arm_recv(fd);
        return;
    }
    if (c->state == C_OPEN)
        arm_recv(fd);
}

static void on_accept(int res, uint32_t flags)
{
    if (!(flags & IORING_CQE_F_MORE)) { /* the multishot accept ended: re-arm */
        struct io_uring_sqe *sqe = get_sqe();
        io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, ud(OP_ACCEPT, 0));
    }
    if (res < 0) {
        if (res == -EMFILE || res == -ENFILE || opt.verbose)
            fprintf(stderr, "floor: accept: %s%s\n", strerror(-res), flags & IORING_CQE_F_MORE ? "" : " (re-armed)");
        return;
    }
    if (opt.verbose && !(flags & IORING_CQE_F_MORE))
        fprintf(stderr, "floor: multishot accept ended after fd %d (re-armed)\n", res);
    if (res >= nconns_cap) {
        close(res);
        return;
    }
    int one = 1;
    stat_accepts++;
    setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = &conns[res];
    memset(c, 0, sizeof *c);
    c->state = C_HTTP;
    c->rbuf = malloc(HS_CAP);
    arm_recv(res);
}

/* ---- publishing ---- */

/* The messages of one loop pass, framed, one growing buffer per topic: a
 * topic's messages that come due together (a tick that caught up on several)
 * go out as one buffer, as ringcast's batch window (--batch-ms 0: one loop
 * pass) shares one frame buffer per topic. */
static struct staged {
    uint8_t *buf;
    size_t len, cap;
} *staged, *staged_z; /* plain frames; with --deflate also compressed ones (RSV1) */
static unsigned *touched, ntouched;
static z_stream zs;
static uint8_t *zbuf;
static size_t zbuf_cap;

static void stage_frame(struct staged *st, uint8_t b0, const void *payload, size_t n)
{
    if (st->len + n + 10 > st->cap) {
        st->cap = (st->len + n + 10) * 2;
        st->buf = realloc(st->buf, st->cap);
        if (st->buf == NULL)
            die("realloc");
    }
    uint8_t *d = st->buf + st->len;
    size_t h = n < 126 ? 2 : n <= 0xffff ? 4 : 10;
    d[0] = b0;
    if (h == 2) {
        d[1] = (uint8_t)n;
    } else if (h == 4) {
        d[1] = 126;
        d[2] = (uint8_t)(n >> 8);
        d[3] = (uint8_t)n;
    } else {
        d[1] = 127;
        for (int i = 0; i < 8; i++)
            d[2 + i] = (uint8_t)((uint64_t)n >> (8 * (7 - i)));
    }
    memcpy(d + h, payload, n);
    st->len += h + n;
}

/* Raw DEFLATE of one message, no context kept (RFC 7692 7.2.1: the
 * trailing 00 00 FF FF of the sync flush removed); 0 when it fails. */
static size_t compress_msg(const char *in, size_t n)
{
    size_t need = deflateBound(&zs, (uLong)n) + 16;
    if (need > zbuf_cap) {
        zbuf_cap = need * 2;
        zbuf = realloc(zbuf, zbuf_cap);
        if (zbuf == NULL)
            die("realloc");
    }
    if (deflateReset(&zs) != Z_OK)
        return 0;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = zbuf;
    zs.avail_out = (uInt)zbuf_cap;
    if (deflate(&zs, Z_SYNC_FLUSH) != Z_OK || zs.avail_in != 0)
        return 0;
    size_t out = zbuf_cap - zs.avail_out;
    return out >= 4 ? out - 4 : 0;
}

static void stage(unsigned t, uint64_t ts_us, char *scratch, size_t cap)
{
    size_t n = rc_demo_next(&demo, t, ts_us, scratch, cap);
    stat_msgs++;
    if (n == 0 || subs[t].n == 0)
        return;
    if (staged[t].len == 0 && staged_z[t].len == 0)
        touched[ntouched++] = t;
    stage_frame(&staged[t], 0x81, scratch, n);
    if (opt.deflate) {
        size_t zn = compress_msg(scratch, n);
        if (zn)
            stage_frame(&staged_z[t], 0xC1, zbuf, zn); /* FIN | RSV1 | text */
        else
            stage_frame(&staged_z[t], 0x81, scratch, n);
    }
}

static struct msg *msg_from(struct staged *st)
{
    struct msg *m = malloc(sizeof *m + st->len);
    if (m == NULL)
        die("malloc");
    memcpy(m->data, st->buf, st->len);
    m->len = (uint32_t)st->len;
    st->len = 0;
    m->refs = 1; /* ours, for the loop */
    return m;
}

/* Hands each staged buffer to every subscriber of its topic. */
static void publish_staged(void)
{
    for (unsigned k = 0; k < ntouched; k++) {
        unsigned t = touched[k];
        struct topic_subs *ts = &subs[t];
        struct msg *m = msg_from(&staged[t]);
        struct msg *mz = opt.deflate ? msg_from(&staged_z[t]) : NULL;
        for (uint32_t i = 0; i < ts->n; i++) {
            int fd = ts->fds[i];
            struct conn *c = &conns[fd];
            if (c->qlen == QCAP) {
                stat_slow_drops++;
                conn_close(fd);
                i--; /* conn_close swapped another fd into slot i */
                continue;
            }
            struct msg *x = c->pmd ? mz : m;
            c->q[(c->qhead + c->qlen) % QCAP] = x;
            c->qlen++;
            x->refs++;
            if (!c->sending)
                arm_send(fd);
        }
        msg_unref(m);
        if (mz)
            msg_unref(mz);
    }
    ntouched = 0;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: floor [--host A] [--port P] [--rate MSGS_PER_S] [--size BYTES] [--topics N]\n"
                    "             [--reuse-port] [--ring-entries N] [--deflate] [--verbose]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'h'},  {"port", 1, 0, 'p'},       {"rate", 1, 0, 'r'},         {"size", 1, 0, 's'},
        {"topics", 1, 0, 't'}, {"reuse-port", 0, 0, 'R'}, {"ring-entries", 1, 0, 'e'}, {"deflate", 0, 0, 'z'},
        {"verbose", 0, 0, 'v'}, {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'r': opt.rate = atof(optarg); break;
        case 's': opt.size = (unsigned)atoi(optarg); break;
        case 't': opt.ntopics = (unsigned)atoi(optarg); break;
        case 'R': opt.reuse_port = true; break;
        case 'e': opt.ring_entries = (unsigned)atoi(optarg); break;
        case 'z': opt.deflate = true; break;
        case 'v': opt.verbose = true; break;
        default: usage();
        }
    }
    if (opt.ntopics < 1 || opt.port < 1 || opt.port > 65535)
        usage();

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    nconns_cap = rl.rlim_cur > 4000000 ? 4000000 : (int)rl.rlim_cur;
    conns = calloc((size_t)nconns_cap, sizeof *conns);
    if (rc_demo_init(&demo, opt.ntopics, opt.size, DEMO_SEED) < 0)
        die("rc_demo_init");
    subs = calloc(opt.ntopics, sizeof *subs);
    staged = calloc(opt.ntopics, sizeof *staged);
    staged_z = calloc(opt.ntopics, sizeof *staged_z);
    if (deflateInit2(&zs, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2");
    touched = calloc(opt.ntopics, sizeof *touched);
    if (conns == NULL || subs == NULL || staged == NULL || staged_z == NULL || touched == NULL)
        die("calloc");

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (opt.reuse_port)
        setsockopt(listen_fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    if (inet_pton(AF_INET, opt.host, &sin.sin_addr) != 1)
        usage();
    if (bind(listen_fd, (struct sockaddr *)&sin, sizeof sin) < 0)
        die("bind");
    if (listen(listen_fd, 4096) < 0)
        die("listen");

    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
              IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN; /* as ringcast's shards */
    p.cq_entries = 65536;
    int rc = io_uring_queue_init_params(opt.ring_entries, &ring, &p);
    if (rc < 0) { /* an older kernel */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = 65536;
        rc = io_uring_queue_init_params(opt.ring_entries, &ring, &p);
    }
    if (rc < 0) {
        errno = -rc;
        die("io_uring_queue_init_params");
    }
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud(OP_ACCEPT, 0));

    printf("floor pid %d on %s:%d: %g msgs/s over %u topic(s), %u bytes\n", getpid(), opt.host, opt.port, opt.rate,
           opt.ntopics, opt.size);
    fflush(stdout);

    size_t scratch_cap = opt.size + 4096;
    char *scratch = malloc(scratch_cap);
    double period_ns = opt.rate > 0 ? 1e9 / opt.rate : 1e8;
    if (period_ns < 1e6)
        period_ns = 1e6;
    if (period_ns > 1e8)
        period_ns = 1e8;
    uint64_t start = now_ns(), made = 0, next_tick = start + (uint64_t)period_ns;
    unsigned next_topic = 0;
    uint64_t next_report = start + 1000000000u;
    bool timer_armed = false;
    struct __kernel_timespec tick_ts;

    while (!stop) {
        uint64_t now = now_ns();
        if (opt.rate > 0 && now >= next_tick) {
            uint64_t target = (uint64_t)((double)(now - start) / 1e9 * opt.rate);
            if (target > made + (uint64_t)opt.rate + 1)
                made = target - (uint64_t)opt.rate; /* a stall: at most 1 s of catch-up */
            struct timespec wall;
            clock_gettime(CLOCK_REALTIME, &wall);
            uint64_t ts_us = (uint64_t)wall.tv_sec * 1000000u + (uint64_t)wall.tv_nsec / 1000u;
            for (; made < target; made++) {
                stage(next_topic, ts_us, scratch, scratch_cap);
                next_topic = (next_topic + 1) % opt.ntopics;
            }
            publish_staged();
            while (next_tick <= now)
                next_tick += (uint64_t)period_ns;
        }
        if (!timer_armed) { /* wake at the next tick: a timeout SQE, as ringcast's demo timer */
            uint64_t wait = opt.rate > 0 ? (next_tick > now ? next_tick - now : 0) : 100000000u;
            tick_ts.tv_sec = (long long)(wait / 1000000000u);
            tick_ts.tv_nsec = (long long)(wait % 1000000000u);
            struct io_uring_sqe *tsqe = get_sqe();
            io_uring_prep_timeout(tsqe, &tick_ts, 0, 0);
            io_uring_sqe_set_data64(tsqe, ud(OP_TIMER, 0));
            timer_armed = true;
        }
        struct io_uring_cqe *cqe;
        rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            errno = -rc;
            die("io_uring_submit_and_wait");
        }
        stat_passes++;
        if (opt.verbose && now_ns() >= next_report) {
            fprintf(stderr, "floor: rc %d sq_ready %u cq_ready %u overflow %u accepts %llu open %llu msgs %llu sends %llu recvs %llu/%llu cqes %llu passes %llu\n",
                    rc, io_uring_sq_ready(&ring), io_uring_cq_ready(&ring), *ring.cq.koverflow,
                    (unsigned long long)stat_accepts, (unsigned long long)stat_open, (unsigned long long)stat_msgs,
                    (unsigned long long)stat_sends, (unsigned long long)stat_recvs, (unsigned long long)stat_recv_armed,
                    (unsigned long long)stat_cqes,
                    (unsigned long long)stat_passes);
            next_report += 1000000000u;
        }
        /* One completion at a time, marked seen before it is handled: handlers
         * submit (a full SQ is flushed at once), and the completions that
         * produces must find room in the CQ ring. Then ask the kernel for
         * more: with DEFER_TASKRUN one io_uring_enter runs only a bounded
         * batch of the deferred completions (poll wake-ups: accepts, recvs;
         * 20 at a time on recent kernels), and a loop pass that sends to
         * thousands of sockets would otherwise starve them. */
        for (;;) {
            unsigned n = 0;
            while (io_uring_peek_cqe(&ring, &cqe) == 0) {
                uint64_t u = io_uring_cqe_get_data64(cqe);
                int res = cqe->res;
                uint32_t flags = cqe->flags;
                io_uring_cqe_seen(&ring, cqe);
                n++;
                int op = (int)(u >> 32), fd = (int)(uint32_t)u;
                switch (op) {
                case OP_ACCEPT: on_accept(res, flags); break;
                case OP_RECV: on_recv(fd, res); break;
                case OP_SEND: on_send(fd, res); break;
                case OP_TIMER: timer_armed = false; break;
                }
            }
            stat_cqes += n;
            if (n == 0 || stop)
                break;
            io_uring_get_events(&ring); /* also submits what the handlers queued */
        }
    }
    fprintf(stderr, "floor: %llu messages, %llu sends (%llu gathered, %llu partial), %llu slow-consumer drops, %llu open\n",
            (unsigned long long)stat_msgs, (unsigned long long)stat_sends, (unsigned long long)stat_gathered,
            (unsigned long long)stat_partial,
            (unsigned long long)stat_slow_drops, (unsigned long long)stat_open);
    return 0;
}
