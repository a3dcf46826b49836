/*
 * redis_link.c — the Redis link: Pub/Sub ingest on shard 0's io_uring, and
 * publish-through-Redis on every shard's.
 *
 * Place in the data flow: a message on channel ringcast:<T> becomes a
 * publish of <T> from shard 0 (rc_shard_publish: to T's owner shard, which
 * builds T's frame as for any other publish); with --redis, an HTTP publish
 * leaves as PUBLISH on its own shard's link (shard 0's full link, or a
 * publisher-only link, `pub_only`, on the other shards), so every node —
 * this one included — delivers it once, from its subscription, and the
 * shard answers the publisher when Redis answered (no thread hop either way).
 *
 * Sockets: our own, driven by the ring (CONNECT with a linked timeout, one
 * RECV and at most one SEND in flight per socket); hiredis is only the RESP
 * formatter and reader (redisFormatCommandArgv, redisReader*). Nothing here
 * blocks shard 0: a host name is resolved by a small resolver thread, never
 * on the shard.
 *
 *   single Redis:  node 0 ── SUB socket (SUBSCRIBE/PSUBSCRIBE, in subscribe mode)
 *                         └─ PUB socket (PUBLISH, AUTH, SELECT, PING)
 *   --redis-sharded: a CTRL socket reads CLUSTER SLOTS from a seed, then
 *                  every master gets its SUB (SSUBSCRIBE) and PUB (SPUBLISH)
 *                  socket; a channel goes to the master owning its slot.
 *
 * Interest: each shard tells shard 0 when it gains its first / loses its
 * last subscriber of a topic (RC_PUB_REDIS_INTEREST_*); the link counts
 * shards per channel, SUBSCRIBEs on 0→1 and UNSUBSCRIBEs on 1→0. The
 * firehose ("*") maps to PSUBSCRIBE ringcast:*. The broadcast channel
 * "ringcast:" is always subscribed.
 *
 * Exactly once with a pattern and channels on one socket: Redis sends a
 * PUBLISH to this socket once per matching channel subscription and once
 * per matching pattern, in stream order with the (p)subscribe
 * confirmations. So while the pattern is active (between its psubscribe and
 * punsubscribe confirmations, as seen in the stream) only `pmessage`s are
 * delivered, otherwise only `message`s: every PUBLISH is taken once.
 *
 * Publish after subscribe: every shard's PUB sockets hold their bytes while
 * srv->redis_hold is not 0: a shard counts a subscription in before it
 * acknowledges it to its client, shard 0 counts it out once Redis
 * confirmed it (release_hold), so a message published through this node
 * after a client's subscribe was acknowledged is never published before
 * the node listens.
 *
 * Answers: a PUB socket remembers what it sent (a FIFO of tickets, probes
 * and PINGs); each reply answers the oldest. A publisher is answered 200
 * only for an integer reply, 503 with Redis' words for an error.
 *
 * Faults: any socket error, protocol error, a command unanswered for
 * --redis-timeout-ms (idle sockets are probed every 500 ms; 1 s unanswered
 * is "stalled") or a topology change fails the link: its unanswered
 * PUBLISHes are answered 503 (504 on a timeout), its SUB sockets are read
 * to their end (drain_or_close), and it retries after 100 ms doubling to
 * 1 s, with jitter; a new link re-subscribes every wanted channel.
 * Readiness (shard->redis_health, rc_redis_node_health) and the redis_*
 * metrics follow.
 *
 * Thread: the link's shard (shard 0 for the full link), except
 * rc_redis_create/destroy (main thread) and the resolver thread (only the
 * resolved-address slot, under a mutex the shard only ever try-locks).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "shard.h"
#include "ringcast/proto.h"
#include "ringcast/redis.h"
#include "ringcast/util.h"
#include "ringcast/ws.h"

#define RL_MAX_NODES 64
#define RL_CTRL (2 * RL_MAX_NODES) /* index of the cluster discovery socket */
#define RL_NCONNS (2 * RL_MAX_NODES + 1)
#define RL_RBUF 65536
#define RL_CONNECT_TIMEOUT_MS 2000
#define RL_SETUP_TIMEOUT_MS 5000 /* connect + AUTH/SELECT/CLUSTER SLOTS */
#define RL_PING_IDLE_MS 500      /* a silent socket gets a PING (a PUB socket a probe PUBLISH) … */
#define RL_STALL_MS 1000         /* … and is stalled (not ready) without a reply this long; dead at --redis-timeout-ms */
#define RL_PENDING_MAX (1u << 20) /* unanswered commands per socket before publishes are refused */
#define RL_DRAIN_MS 250          /* a failed link's SUB sockets are read this long for what Redis sent before */
#define RL_BACKOFF_MIN_MS 100
#define RL_BACKOFF_MAX_MS 1000
#define RL_SEND_MAX (1u << 20)
#define RL_OUT_MAX (64u << 20) /* pending PUBLISH bytes per socket before publishes are refused */

enum rl_role { RL_SUB = 0, RL_PUB = 1, RL_CTL = 2 };
enum rl_kind { RK_CONNECT = 1, RK_LTIMEOUT, RK_RECV, RK_SEND, RK_CANCEL };
enum rl_state { L_IDLE, L_DISCOVER, L_CONNECTING, L_UP };

struct rl_conn {
    int fd;
    bool open;      /* fd is ours (maybe shut down, waiting for completions) */
    bool connected; /* CONNECT completed */
    bool ready;     /* handshake replies all in */
    bool sending;
    bool recv_armed;
    bool ping_out;
    bool draining;  /* SUB socket of a failed link: read to its end (or RL_DRAIN_MS), nothing sent */
    uint8_t role;
    uint16_t node;
    uint32_t gen;
    uint32_t inflight;
    uint32_t hs_pending; /* handshake replies still expected */
    redisReader *reader;
    char *rbuf;
    /* Commands are appended to out; a send takes the whole of it as wire
     * (the buffers swap), so nothing appended while the kernel may still
     * read wire can move the bytes under it. */
    struct rc_rbuf out, wire;
    /* PUB sockets: every command sent after the handshake, oldest first;
     * Redis answers in order, so each reply pops one. */
    struct rl_pend *pend;
    uint32_t pend_head, pend_n, pend_cap;
    uint64_t last_rx_ms, last_tx_ms, ping_ms, drain_until_ms;
    struct __kernel_timespec cto;
};

/* A command waiting for its reply on a PUB socket: a publisher's PUBLISH
 * (ticket: whom to answer), the keepalive probe, or a PING. */
enum rl_pend_kind { PK_PUBLISH, PK_PROBE, PK_PING };
struct rl_pend {
    uint64_t ticket; /* rc_shard_publish_answer's; 0 for probes and PINGs */
    uint64_t at_ms;  /* queued at */
    uint32_t kind;
};

/* The PUBLISH a PUB socket sends when idle: a channel inside the prefix
 * (so an ACL that lets us publish ours lets it through) that no topic can
 * name (topics have no spaces), ignored by every node's ingest. Redis'
 * answer to it tells whether publishing works even with no traffic. */
#define RL_PROBE_CHANNEL RC_REDIS_PREFIX " probe"


struct rl_node {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char text[72];
};

struct rl_chan {
    struct rl_chan *next;
    uint64_t hash;
    uint32_t want; /* shards with local subscribers */
    bool sent;     /* (S)SUBSCRIBE sent on the current link */
    uint16_t len;
    char name[]; /* the topic (channel minus the prefix) */
};

struct rc_redis {
    struct rc_server *srv;
    struct rc_shard *s; /* shard 0, set by rc_redis_start */
    struct rc_redis_url url;
    bool sharded;
    char where[300]; /* host:port for logs */

    /* the seed address: fixed for an IP literal, else from the resolver */
    bool literal;
    struct sockaddr_storage seed;
    socklen_t seedlen;
    pthread_t resolver;
    bool resolver_started;
    atomic_bool resolver_stop;
    pthread_mutex_t mu;
    struct sockaddr_storage resolved;
    socklen_t resolved_len;
    char resolve_err[160];

    enum rl_state state;
    bool established; /* Redis confirmed a subscription on this link: it works (AUTH included) */
    uint64_t retry_at_ms, backoff_ms, setup_deadline_ms;
    unsigned attempts; /* failed attempts since the last success, for logs and seed rotation */
    uint64_t rng;

    struct rl_node nodes[RL_MAX_NODES];
    unsigned nnodes;
    struct rl_node known[RL_MAX_NODES]; /* cluster: masters seen last time, discovery seeds */
    unsigned nknown;
    uint8_t *slot_node; /* cluster: 16384 entries */

    struct rl_conn conns[RL_NCONNS];
    bool dirty;

    struct rl_chan **buckets;
    unsigned nbuckets, nchans;
    uint32_t pattern_want;
    bool pattern_sent, pattern_active;
    uint32_t unconfirmed; /* subscribe confirmations outstanding */

    bool pub_only;        /* a shard's publisher link (PUB sockets only); shard 0's link is the full one */
    uint32_t hold_pending; /* interest additions to release from srv->redis_hold once all is confirmed */
    int agg_health;       /* shard 0: the node's health last logged (rc_redis_node_health) */
    bool agg_down_logged; /* … and it logged leaving ready (so it logs coming back) */
    int health;           /* enum rc_redis_health: what readiness says of this link */
    bool refusing;        /* the last PUBLISH answer was an error */
    char refuse_why[160]; /* that error, for the log line */
    int fail_status;      /* link_fail answers the pending publishes with this (503, or 504 on a timeout) */
};

/* ---- small helpers ---- */

static struct rc_metrics *M(struct rc_redis *r) { return &r->s->metrics; }

static uint64_t rng_next(struct rc_redis *r) {
    uint64_t x = r->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return r->rng = x;
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap) {
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%u", ip, port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%u", ip, port);
    }
}

/* An IP literal + port → sockaddr. Returns false for names. */
static bool literal_addr(const char *host, unsigned port, struct sockaddr_storage *ss, socklen_t *len) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return true;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return true;
    }
    return false;
}

/* ---- the resolver thread (host names only) ---- */

static void *resolver_main(void *arg) {
    struct rc_redis *r = arg;
    while (!atomic_load(&r->resolver_stop)) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
        char port[8];
        snprintf(port, sizeof port, "%u", r->url.port);
        int rc = getaddrinfo(r->url.host, port, &hints, &res);
        pthread_mutex_lock(&r->mu);
        if (rc == 0 && res) {
            memcpy(&r->resolved, res->ai_addr, res->ai_addrlen);
            r->resolved_len = res->ai_addrlen;
            r->resolve_err[0] = 0;
        } else {
            snprintf(r->resolve_err, sizeof r->resolve_err, "%s", gai_strerror(rc));
        }
        pthread_mutex_unlock(&r->mu);
        if (res) freeaddrinfo(res);
        /* Re-resolve now and then: a Service's address may move. */
        for (int i = 0; i < (rc == 0 ? 100 : 10) && !atomic_load(&r->resolver_stop); i++) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* ---- channels ---- */

static struct rl_chan *chan_find(struct rc_redis *r, const char *name, size_t len, uint64_t hash) {
    for (struct rl_chan *c = r->buckets[hash & (r->nbuckets - 1)]; c; c = c->next)
        if (c->hash == hash && c->len == len && !memcmp(c->name, name, len)) return c;
    return NULL;
}

static int chan_grow(struct rc_redis *r) {
    unsigned n = r->nbuckets * 2;
    struct rl_chan **b = calloc(n, sizeof *b);
    if (!b) return -ENOMEM;
    for (unsigned i = 0; i < r->nbuckets; i++)
        for (struct rl_chan *c = r->buckets[i], *next; c; c = next) {
            next = c->next;
            c->next = b[c->hash & (n - 1)];
            b[c->hash & (n - 1)] = c;
        }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = n;
    return 0;
}

static struct rl_chan *chan_add(struct rc_redis *r, const char *name, size_t len, uint64_t hash) {
    if (r->nchans >= r->nbuckets && chan_grow(r) < 0) return NULL;
    struct rl_chan *c = calloc(1, sizeof *c + len + 1);
    if (!c) return NULL;
    c->hash = hash;
    c->len = (uint16_t)len;
    memcpy(c->name, name, len);
    c->next = r->buckets[hash & (r->nbuckets - 1)];
    r->buckets[hash & (r->nbuckets - 1)] = c;
    r->nchans++;
    return c;
}

static void chan_del(struct rc_redis *r, struct rl_chan *c) {
    struct rl_chan **p = &r->buckets[c->hash & (r->nbuckets - 1)];
    while (*p != c) p = &(*p)->next;
    *p = c->next;
    r->nchans--;
    free(c);
}

/* ---- sockets ---- */

static uint64_t ud(struct rl_conn *c, struct rc_redis *r, enum rl_kind k) {
    uint32_t idx = (uint32_t)((c - r->conns) << 3) | (uint32_t)k;
    return rc_ud(RC_OP_REDIS, idx, c->gen);
}

static void arm_recv(struct rc_redis *r, struct rl_conn *c) {
    struct io_uring_sqe *sqe = rc_ring_sqe(&r->s->ring);
    io_uring_prep_recv(sqe, c->fd, c->rbuf, RL_RBUF, 0);
    io_uring_sqe_set_data64(sqe, ud(c, r, RK_RECV));
    c->inflight++;
    c->recv_armed = true;
}

static bool conn_open(struct rc_redis *r, struct rl_conn *c, const struct rl_node *n, enum rl_role role,
                      unsigned node) {
    int fd = socket(n->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        RC_WARN("redis: socket: %s", strerror(errno));
        return false;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (!c->rbuf && !(c->rbuf = malloc(RL_RBUF))) {
        close(fd);
        return false;
    }
    c->reader = redisReaderCreate();
    if (!c->reader) {
        close(fd);
        return false;
    }
    c->fd = fd;
    c->open = true;
    c->connected = c->ready = c->sending = c->recv_armed = c->ping_out = c->draining = false;
    c->role = (uint8_t)role;
    c->node = (uint16_t)node;
    c->hs_pending = 0;
    c->pend_head = c->pend_n = 0;
    c->gen = (c->gen + 1) & 0xffffff;
    rc_rbuf_reset(&c->out);
    rc_rbuf_reset(&c->wire);
    c->cto.tv_sec = RL_CONNECT_TIMEOUT_MS / 1000;
    c->cto.tv_nsec = (long)(RL_CONNECT_TIMEOUT_MS % 1000) * 1000000L;
    struct io_uring_sqe *sqe = rc_ring_sqe(&r->s->ring);
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&n->addr, n->addrlen);
    io_uring_sqe_set_data64(sqe, ud(c, r, RK_CONNECT));
    sqe->flags |= IOSQE_IO_LINK;
    sqe = rc_ring_sqe(&r->s->ring);
    io_uring_prep_link_timeout(sqe, &c->cto, 0);
    io_uring_sqe_set_data64(sqe, ud(c, r, RK_LTIMEOUT));
    c->inflight += 2;
    return true;
}

/* Stops using c: its requests end (shutdown makes a pending recv return),
 * the fd is closed when the last one has completed. */
static void conn_close(struct rc_redis *r, struct rl_conn *c) {
    if (!c->open) return;
    if (c->inflight) { /* a pending CONNECT or RECV ends now, not at its timeout */
        struct io_uring_sqe *sqe = rc_ring_sqe(&r->s->ring);
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, ud(c, r, RK_CANCEL));
        c->inflight++;
    }
    c->gen = (c->gen + 1) & 0xffffff; /* completions of the old socket are ignored */
    c->connected = c->ready = c->sending = c->recv_armed = c->draining = false;
    if (c->role == RL_SUB) r->pattern_active = false; /* its stream is over */
    if (c->reader) redisReaderFree(c->reader);
    c->reader = NULL;
    rc_rbuf_reset(&c->out);
    rc_rbuf_reset(&c->wire);
    shutdown(c->fd, SHUT_RDWR);
    if (c->inflight == 0) {
        close(c->fd);
        c->open = false;
    }
}

/*
 * The link failed, but what Redis wrote to a SUB socket before the failure
 * may still be unread: a PUBLISH Redis acknowledged (its publisher got
 * 200) whose copy to this node sits in the socket's buffer. So a SUB socket
 * that was receiving keeps being read — messages only, nothing sent — until
 * Redis closes it or RL_DRAIN_MS pass, and only then closes.
 */
static void drain_or_close(struct rc_redis *r, struct rl_conn *c) {
    if (c->role != RL_SUB || !c->ready || !c->reader || !c->recv_armed) {
        conn_close(r, c);
        return;
    }
    c->draining = true;
    c->connected = c->ready = false; /* no sends, no pings */
    c->drain_until_ms = r->s->now_ms + RL_DRAIN_MS;
}

static bool link_quiet(struct rc_redis *r) {
    for (unsigned i = 0; i < RL_NCONNS; i++)
        if (r->conns[i].open) return false;
    return true;
}

/* ---- answers owed to publishers ---- */

static int pend_push(struct rl_conn *c, enum rl_pend_kind kind, uint64_t ticket, uint64_t now) {
    if (c->pend_n == c->pend_cap) {
        uint32_t cap = c->pend_cap ? c->pend_cap * 2 : 64;
        struct rl_pend *v = malloc(cap * sizeof *v);
        if (!v) return -ENOMEM;
        for (uint32_t i = 0; i < c->pend_n; i++) v[i] = c->pend[(c->pend_head + i) % c->pend_cap];
        free(c->pend);
        c->pend = v;
        c->pend_cap = cap;
        c->pend_head = 0;
    }
    c->pend[(c->pend_head + c->pend_n) % c->pend_cap] = (struct rl_pend){.ticket = ticket, .at_ms = now, .kind = kind};
    c->pend_n++;
    return 0;
}

static bool pend_pop(struct rl_conn *c, struct rl_pend *out) {
    if (!c->pend_n) return false;
    *out = c->pend[c->pend_head];
    c->pend_head = (c->pend_head + 1) % c->pend_cap;
    c->pend_n--;
    return true;
}

/* Tells the publisher behind ticket how its PUBLISH went: status 200 when
 * Redis took it, else 503/504 with Redis' words (or ours) in text. */
static void answer(struct rc_redis *r, uint64_t ticket, int status, const char *text, size_t len) {
    if (ticket) rc_publish_answered(r->s, ticket, status, text, len); /* tickets of this link's own shard */
}

/* The socket is going: every publisher still waiting on it is answered
 * r->fail_status; returns how many there were. */
static size_t fail_pending(struct rc_redis *r, struct rl_conn *c, const char *why) {
    size_t n = 0;
    struct rl_pend p;
    while (pend_pop(c, &p)) {
        if (p.kind != PK_PUBLISH) continue;
        answer(r, p.ticket, r->fail_status, why, strlen(why));
        n++;
    }
    return n;
}

/* ---- link state ---- */

/* This shard's link health, for /readyz (rc_redis_node_health); the words
 * of a refusal are published before the state that points at them. */
static void set_health(struct rc_redis *r, int h) {
    if (h == r->health) return;
    if (h == RC_REDIS_STALLED) RC_METRIC_ADD(M(r), redis_stalls_total, 1);
    if (h == RC_REDIS_REFUSING) snprintf(r->s->redis_why, sizeof r->s->redis_why, "%s", r->refuse_why);
    r->health = h;
    atomic_store_explicit(&r->s->redis_health, h, memory_order_release);
}

enum rc_redis_health rc_redis_node_health(struct rc_server *srv) {
    enum rc_redis_health worst = RC_REDIS_READY;
    for (unsigned i = 0; i < srv->nshards && srv->shards; i++) {
        int h = atomic_load_explicit(&srv->shards[i].redis_health, memory_order_acquire);
        if (h == RC_REDIS_DOWN) return RC_REDIS_DOWN;
        if (h == RC_REDIS_STALLED || (h == RC_REDIS_REFUSING && worst == RC_REDIS_READY)) worst = h;
    }
    return worst;
}

/*
 * Shard 0, each loop pass: the node's health (every shard's publisher link
 * and shard 0's subscriber link). Leaving ready and coming back are logged,
 * once each: what happens in between (a stall that becomes a lost link,
 * then a reconnect) is the same episode. Shard 0's own link going down and
 * coming back is logged by link_fail and established() instead.
 */
static void node_health(struct rc_redis *r) {
    int h = rc_redis_node_health(r->srv), was = r->agg_health;
    if (h == was) return;
    r->agg_health = h;
    atomic_store_explicit(&M(r)->redis_ready, h == RC_REDIS_READY, memory_order_relaxed);
    if (h == RC_REDIS_READY) {
        if (r->agg_down_logged) RC_WARN("redis: %s answers publishes again; ready", r->where);
        r->agg_down_logged = false;
        return;
    }
    if (was != RC_REDIS_READY || r->agg_down_logged) return;
    if (h == RC_REDIS_STALLED) {
        RC_WARN("redis: %s stalled: a command unanswered for over %d ms; not ready (the link is dropped at "
                "--redis-timeout-ms %u)",
                r->where, RL_STALL_MS, r->srv->cfg.redis_timeout_ms);
    } else if (h == RC_REDIS_REFUSING) {
        for (unsigned i = 0; i < r->srv->nshards; i++) {
            struct rc_shard *s = &r->srv->shards[i];
            if (atomic_load_explicit(&s->redis_health, memory_order_acquire) != RC_REDIS_REFUSING) continue;
            RC_WARN("redis: %s refuses publishes (%s); not ready until a PUBLISH succeeds", r->where, s->redis_why);
            break;
        }
    } else if (r->health == RC_REDIS_DOWN) {
        return; /* shard 0's link_fail said it */
    } else {
        RC_WARN("redis: a shard's publisher connection to %s is down; not ready until it is back", r->where);
    }
    r->agg_down_logged = true;
}

/* Interest additions announced by the shards (srv->redis_hold) are released
 * once Redis confirmed every subscription sent so far; the other shards'
 * publisher links, holding their PUBLISHes meanwhile, are woken. */
static void release_hold(struct rc_redis *r) {
    if (!r->hold_pending || r->unconfirmed) return;
    int left = atomic_fetch_sub(&r->srv->redis_hold, (int)r->hold_pending) - (int)r->hold_pending;
    r->hold_pending = 0;
    if (left != 0) return;
    for (unsigned i = 1; i < r->srv->nshards; i++) {
        uint64_t one = 1;
        ssize_t w = write(r->srv->shards[i].wake_fd, &one, sizeof one);
        (void)w;
    }
}

static void unconfirmed_add(struct rc_redis *r, int n) {
    r->unconfirmed += (uint32_t)n;
    atomic_fetch_add(&r->srv->redis_hold, n);
}

static void set_up(struct rc_redis *r, bool up) {
    if (!r->pub_only) {
        atomic_store_explicit(&M(r)->redis_up, up ? 1 : 0, memory_order_relaxed);
        atomic_store_explicit(&r->srv->redis_up, up, memory_order_relaxed);
    }
    if (!up) r->refusing = false;
    set_health(r, up ? RC_REDIS_READY : RC_REDIS_DOWN);
}

static void count_channels(struct rc_redis *r) {
    uint64_t n = 0;
    if (r->state == L_UP) {
        for (unsigned i = 0; i < r->nbuckets; i++)
            for (struct rl_chan *c = r->buckets[i]; c; c = c->next) n += c->sent;
        n += r->pattern_sent;
    }
    atomic_store_explicit(&M(r)->redis_channels, n, memory_order_relaxed);
}

static void link_fail(struct rc_redis *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void link_fail(struct rc_redis *r, const char *fmt, ...) {
    char why[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    size_t lost = 0;
    char answer_why[400];
    snprintf(answer_why, sizeof answer_why, "%s: the message may or may not have been published",
             r->fail_status == 504 ? why : "the connection to Redis was lost before it answered");
    for (unsigned i = 0; i < RL_NCONNS; i++) {
        lost += fail_pending(r, &r->conns[i], answer_why);
        if (!r->conns[i].draining) drain_or_close(r, &r->conns[i]);
    }
    r->backoff_ms = r->backoff_ms ? RC_MIN(r->backoff_ms * 2, (uint64_t)RL_BACKOFF_MAX_MS) : RL_BACKOFF_MIN_MS;
    uint64_t delay = r->backoff_ms / 2 + rng_next(r) % (r->backoff_ms / 2 + 1); /* jitter: [b/2, b] */
    r->retry_at_ms = r->s->now_ms + delay;
    /* A shard's publisher link logs at debug: shard 0's link says the same
     * of the same Redis, and node_health() what readiness makes of it. */
    int level = r->pub_only ? RC_LOG_DEBUG : RC_LOG_WARN;
    if (r->established) {
        RC_METRIC_ADD(M(r), redis_disconnects_total, 1);
        rc_log(level, "redis: %sconnection to %s lost: %s; %zu unanswered publishes answered %d; reconnecting in %llu ms",
               r->pub_only ? "publisher " : "", r->where, why, lost, r->fail_status, (unsigned long long)delay);
    } else {
        RC_METRIC_ADD(M(r), redis_connect_failures_total, 1);
        if (r->attempts < 3 || r->attempts % 50 == 0) /* a long outage logs now and then, not 10 times a second */
            rc_log(level, "redis: cannot connect to %s: %s; retrying in %llu ms (attempt %u)", r->where, why,
                   (unsigned long long)delay, r->attempts + 1);
    }
    if (lost && r->fail_status == 504)
        RC_METRIC_ADD(M(r), redis_publish_timeouts_total, lost);
    else if (lost)
        RC_METRIC_ADD(M(r), redis_publish_dropped_total, lost);
    r->attempts++;
    r->state = L_IDLE;
    r->established = false;
    set_up(r, false);
    r->pattern_sent = false; /* pattern_active follows the SUB socket's stream (conn_close) */
    unconfirmed_add(r, -(int)r->unconfirmed);
    release_hold(r);
    for (unsigned i = 0; i < r->nbuckets; i++)
        for (struct rl_chan *c = r->buckets[i]; c; c = c->next) c->sent = false;
    count_channels(r);
}

#define RL_CHANNEL_MAX (RC_REDIS_PREFIX_LEN + RC_TOPIC_MAX_LEN)

/* Writes topic name's channel into ch (RL_CHANNEL_MAX bytes) and returns
 * the node serving it: the master of its slot, or the only node. */
static unsigned channel_node(const struct rc_redis *r, const char *name, size_t len, char *ch) {
    memcpy(ch, RC_REDIS_PREFIX, RC_REDIS_PREFIX_LEN);
    memcpy(ch + RC_REDIS_PREFIX_LEN, name, len);
    return r->sharded ? r->slot_node[rc_redis_slot(ch, RC_REDIS_PREFIX_LEN + len)] : 0;
}

static struct rl_conn *sub_conn_for(struct rc_redis *r, const char *name, size_t len) {
    char ch[RL_CHANNEL_MAX];
    return &r->conns[2 * channel_node(r, name, len, ch) + RL_SUB];
}

static void send_sub(struct rc_redis *r, struct rl_chan *ch, bool subscribe) {
    struct rl_conn *c = sub_conn_for(r, ch->name, ch->len);
    const char *verb = r->sharded ? (subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE") : (subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
    if (rc_rbuf_channel_command(&c->out, verb, ch->name, ch->len) < 0) {
        link_fail(r, "out of memory queueing %s", verb);
        return;
    }
    ch->sent = subscribe;
    if (subscribe) unconfirmed_add(r, 1);
    r->dirty = true;
}

static void send_pattern(struct rc_redis *r, bool subscribe) {
    const char *argv[2] = {subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE", RC_REDIS_PATTERN};
    size_t lens[2] = {strlen(argv[0]), strlen(argv[1])};
    if (rc_rbuf_command(&r->conns[RL_SUB].out, 2, argv, lens) < 0) {
        link_fail(r, "out of memory queueing %s", argv[0]);
        return;
    }
    r->pattern_sent = subscribe;
    if (subscribe) unconfirmed_add(r, 1);
    r->dirty = true;
}

/* Every socket finished its handshake: subscribe to everything wanted.
 * The link counts as established at the first confirmation (see
 * confirmed()): a Redis that wants a password we did not send accepts the
 * connection and refuses the SUBSCRIBE, and that must back off like any
 * other failure. */
static void established(struct rc_redis *r);

static void link_up(struct rc_redis *r) {
    r->state = L_UP;
    if (r->pub_only) { /* nothing to subscribe: a working handshake (AUTH, SELECT) is the proof */
        established(r);
        return;
    }
    struct rl_chan *bc = chan_find(r, "", 0, rc_topic_hash("", 0));
    if (bc) send_sub(r, bc, true);
    for (unsigned i = 0; i < r->nbuckets && r->state == L_UP; i++)
        for (struct rl_chan *c = r->buckets[i]; c && r->state == L_UP; c = c->next)
            if (c->want && !c->sent) send_sub(r, c, true);
    if (r->pattern_want && !r->sharded && r->state == L_UP) send_pattern(r, true);
    count_channels(r);
}

static void established(struct rc_redis *r) {
    r->established = true;
    r->backoff_ms = 0;
    r->attempts = 0;
    RC_METRIC_ADD(M(r), redis_connects_total, 1);
    set_up(r, true);
    if (r->pub_only)
        RC_DEBUG("redis: publisher connected to %s", r->where);
    else
        RC_INFO("redis: connected to %s%s (%u channel%s%s)", r->where, r->sharded ? " (cluster, sharded pub/sub)" : "",
                r->nchans, r->nchans == 1 ? "" : "s", r->pattern_sent ? " and the firehose pattern" : "");
}

static void handshake(struct rc_redis *r, struct rl_conn *c) {
    int ret = 0;
    if (r->url.has_password) {
        const char *argv[3] = {"AUTH", r->url.user, r->url.password};
        size_t lens[3] = {4, strlen(r->url.user), strlen(r->url.password)};
        ret |= *r->url.user ? rc_rbuf_command(&c->out, 3, argv, lens)
                            : rc_rbuf_command(&c->out, 2, (const char *[]){"AUTH", r->url.password},
                                              (size_t[]){4, lens[2]});
        c->hs_pending++;
    }
    if (r->url.db && c->role != RL_CTL) {
        char db[16];
        snprintf(db, sizeof db, "%u", r->url.db);
        ret |= rc_rbuf_command(&c->out, 2, (const char *[]){"SELECT", db}, (size_t[]){6, strlen(db)});
        c->hs_pending++;
    }
    if (c->role == RL_CTL) {
        ret |= rc_rbuf_command(&c->out, 2, (const char *[]){"CLUSTER", "SLOTS"}, (size_t[]){7, 5});
        c->hs_pending++;
    }
    if (r->pub_only && c->role == RL_PUB) {
        /* A publisher link has no SUBSCRIBE to prove it is let in: a Redis
         * that wants a password we did not send answers this with NOAUTH. */
        ret |= rc_rbuf_command(&c->out, 1, (const char *[]){"PING"}, (size_t[]){4});
        c->hs_pending++;
    }
    if (ret < 0) {
        link_fail(r, "out of memory");
        return;
    }
    r->dirty = true;
    if (c->hs_pending == 0) c->ready = true;
}

static bool all_ready(struct rc_redis *r) {
    for (unsigned n = 0; n < r->nnodes; n++)
        if ((!r->pub_only && !r->conns[2 * n + RL_SUB].ready) || !r->conns[2 * n + RL_PUB].ready) return false;
    return true;
}

/* Opens the SUB and PUB sockets of every node in r->nodes. */
static void open_nodes(struct rc_redis *r) {
    r->state = L_CONNECTING;
    for (unsigned n = 0; n < r->nnodes; n++)
        if ((!r->pub_only && !conn_open(r, &r->conns[2 * n + RL_SUB], &r->nodes[n], RL_SUB, n)) ||
            !conn_open(r, &r->conns[2 * n + RL_PUB], &r->nodes[n], RL_PUB, n)) {
            link_fail(r, "cannot open a socket");
            return;
        }
}

static bool seed_addr(struct rc_redis *r, struct rl_node *out) {
    if (r->literal) {
        out->addr = r->seed;
        out->addrlen = r->seedlen;
    } else {
        if (pthread_mutex_trylock(&r->mu) != 0) return false;
        bool ok = r->resolved_len > 0;
        if (ok) {
            out->addr = r->resolved;
            out->addrlen = r->resolved_len;
        } else if (r->resolve_err[0] && (r->attempts < 3 || r->attempts % 50 == 0)) {
            RC_WARN("redis: cannot resolve %s: %s", r->url.host, r->resolve_err);
        }
        pthread_mutex_unlock(&r->mu);
        if (!ok) return false;
    }
    addr_text(&out->addr, out->text, sizeof out->text);
    return true;
}

static void attempt(struct rc_redis *r) {
    struct rl_node seed;
    if (!seed_addr(r, &seed)) {
        r->retry_at_ms = r->s->now_ms + RL_BACKOFF_MIN_MS; /* the resolver has no answer yet */
        r->attempts++;
        return;
    }
    r->setup_deadline_ms = r->s->now_ms + RL_SETUP_TIMEOUT_MS;
    if (!r->sharded) {
        r->nodes[0] = seed;
        r->nnodes = 1;
        open_nodes(r);
        return;
    }
    /* Cluster: read the topology from the seed, or from a master known
     * from last time when the seed does not answer. */
    struct rl_node *from = &seed;
    if (r->nknown && r->attempts % 2 == 1) from = &r->known[(r->attempts / 2) % r->nknown];
    r->state = L_DISCOVER;
    if (!conn_open(r, &r->conns[RL_CTRL], from, RL_CTL, 0)) link_fail(r, "cannot open a socket");
}

/* ---- replies ---- */

static bool is_str(const redisReply *x) { return x && (x->type == REDIS_REPLY_STRING || x->type == REDIS_REPLY_STATUS); }

static bool str_eq(const redisReply *x, const char *s) {
    return is_str(x) && x->len == strlen(s) && !strncasecmp(x->str, s, x->len);
}

/* A message from Redis: validate and publish it on this node. */
static void ingest(struct rc_redis *r, const redisReply *ch, const redisReply *payload) {
    if (is_str(ch) && ch->len == sizeof RL_PROBE_CHANNEL - 1 && !memcmp(ch->str, RL_PROBE_CHANNEL, ch->len))
        return; /* a node's keepalive, seen through the firehose pattern */
    if (!is_str(ch) || !is_str(payload) || ch->len < RC_REDIS_PREFIX_LEN ||
        memcmp(ch->str, RC_REDIS_PREFIX, RC_REDIS_PREFIX_LEN) != 0) {
        RC_METRIC_ADD(M(r), redis_dropped_total, 1);
        return;
    }
    struct rc_message m = {.topic = ch->str + RC_REDIS_PREFIX_LEN, .topic_len = ch->len - RC_REDIS_PREFIX_LEN,
                           .data = payload->str, .len = payload->len};
    m.broadcast = m.topic_len == 0;
    const char *why = NULL;
    int ret = rc_shard_publish(r->s, &m, &why);
    if (ret == -EINVAL) {
        RC_METRIC_ADD(M(r), redis_dropped_total, 1);
        RC_DEBUG("redis: message on %.*s dropped: %s", (int)RC_MIN(ch->len, (size_t)200), ch->str, why);
        return;
    }
    if (ret < 0) {
        RC_METRIC_ADD(M(r), redis_dropped_total, 1);
        RC_WARN("redis: out of memory: a message on %.*s was dropped", (int)RC_MIN(ch->len, (size_t)200), ch->str);
        return;
    }
    RC_METRIC_ADD(M(r), redis_messages_total, 1);
}

static void confirmed(struct rc_redis *r) {
    if (!r->established) established(r);
    if (r->unconfirmed) unconfirmed_add(r, -1);
    if (!r->unconfirmed) {
        r->dirty = true; /* held publishes may go */
        release_hold(r);
    }
}

/* CLUSTER SLOTS: [[start, end, [ip, port, id], replicas…], …] */
static bool read_slots(struct rc_redis *r, const redisReply *x, const struct rl_node *from) {
    if (x->type != REDIS_REPLY_ARRAY || x->elements == 0) return false;
    memset(r->slot_node, 0xff, 16384);
    r->nnodes = 0;
    for (size_t i = 0; i < x->elements; i++) {
        const redisReply *e = x->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2 || !is_str(e->element[2]->element[0]) ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            return false;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        if (lo < 0 || hi > 16383 || lo > hi) return false;
        const redisReply *ip = e->element[2]->element[0];
        char host[INET6_ADDRSTRLEN + 1];
        unsigned port = (unsigned)e->element[2]->element[1]->integer;
        struct rl_node n = {0};
        if (ip->len == 0 || ip->len >= sizeof host) { /* "" means: the address we asked */
            n.addr = from->addr;
            n.addrlen = from->addrlen;
            if (n.addr.ss_family == AF_INET)
                ((struct sockaddr_in *)&n.addr)->sin_port = htons((uint16_t)port);
            else
                ((struct sockaddr_in6 *)&n.addr)->sin6_port = htons((uint16_t)port);
        } else {
            memcpy(host, ip->str, ip->len);
            host[ip->len] = 0;
            if (!literal_addr(host, port, &n.addr, &n.addrlen)) {
                RC_WARN("redis: cluster node %s is not an IP address: not supported", host);
                return false;
            }
        }
        addr_text(&n.addr, n.text, sizeof n.text);
        unsigned k = 0;
        while (k < r->nnodes && strcmp(r->nodes[k].text, n.text)) k++;
        if (k == r->nnodes) {
            if (r->nnodes == RL_MAX_NODES) return false;
            r->nodes[r->nnodes++] = n;
        }
        for (long long s = lo; s <= hi; s++) r->slot_node[s] = (uint8_t)k;
    }
    for (unsigned s = 0; s < 16384; s++)
        if (r->slot_node[s] == 0xff) {
            RC_WARN("redis: cluster slot %u has no master", s);
            return false;
        }
    memcpy(r->known, r->nodes, r->nnodes * sizeof *r->nodes);
    r->nknown = r->nnodes;
    return true;
}

static void on_reply(struct rc_redis *r, struct rl_conn *c, redisReply *x) {
    if (c->hs_pending) { /* AUTH, SELECT, CLUSTER SLOTS, in that order */
        c->hs_pending--;
        if (x->type == REDIS_REPLY_ERROR) {
            link_fail(r, "%.*s", (int)RC_MIN(x->len, (size_t)200), x->str);
            return;
        }
        if (c->role == RL_CTL && c->hs_pending == 0) {
            struct rl_node from = {0}; /* the CTRL socket's peer */
            socklen_t len = sizeof from.addr;
            getpeername(c->fd, (struct sockaddr *)&from.addr, &len);
            from.addrlen = len;
            if (!read_slots(r, x, &from)) {
                link_fail(r, "unexpected CLUSTER SLOTS reply (is this a cluster with every slot served?)");
                return;
            }
            conn_close(r, c);
            open_nodes(r);
            return;
        }
        if (c->hs_pending == 0) {
            c->ready = true;
            if (r->state == L_CONNECTING && all_ready(r)) link_up(r);
        }
        return;
    }
    if (c->role == RL_PUB) {
        struct rl_pend p;
        if (!pend_pop(c, &p)) {
            link_fail(r, "a reply nobody asked for on the publisher socket");
            return;
        }
        if (x->type == REDIS_REPLY_ERROR) {
            bool moved = x->len >= 5 && (!strncmp(x->str, "MOVED", 5) || !strncmp(x->str, "ASK ", 4));
            if (p.kind == PK_PUBLISH) {
                char why[200];
                int n = snprintf(why, sizeof why, "redis refused the publish: %.*s", (int)RC_MIN(x->len, (size_t)160), x->str);
                RC_METRIC_ADD(M(r), redis_publish_errors_total, 1);
                answer(r, p.ticket, 503, why, (size_t)RC_MIN(n, (int)sizeof why - 1));
            }
            if (moved) {
                link_fail(r, "cluster topology changed (%.*s)", (int)RC_MIN(x->len, (size_t)100), x->str);
                return;
            }
            /* An ACL that leaves out this one channel refuses the request,
             * not the link: publishing as such works. Anything else (no
             * +publish, OOM, a read-only replica…) refuses every publish. */
            bool channel_acl = x->len >= 6 && !strncmp(x->str, "NOPERM", 6) && memmem(x->str, x->len, "channel", 7);
            if (p.kind != PK_PING && !channel_acl) {
                snprintf(r->refuse_why, sizeof r->refuse_why, "%.*s", (int)RC_MIN(x->len, (size_t)150), x->str);
                r->refusing = true;
            } else if (p.kind == PK_PROBE) {
                r->refusing = false;
            }
        } else if (x->type == REDIS_REPLY_INTEGER && p.kind != PK_PING) {
            if (p.kind == PK_PUBLISH) {
                RC_METRIC_ADD(M(r), redis_publish_acked_total, 1);
                answer(r, p.ticket, 200, NULL, 0);
            }
            r->refusing = false;
        } else if (p.kind != PK_PING || x->type != REDIS_REPLY_STATUS) {
            link_fail(r, "unexpected reply type %d on the publisher socket", x->type);
        }
        return;
    }
    /* SUB: push messages and (un)subscribe confirmations */
    if (c->draining) { /* a failed link's last messages; nothing else matters now */
        if (x->type == REDIS_REPLY_ARRAY && x->elements >= 3 && is_str(x->element[0])) {
            const redisReply *kind = x->element[0];
            if (str_eq(kind, "message") && x->elements == 3 && !r->pattern_active) ingest(r, x->element[1], x->element[2]);
            if (str_eq(kind, "pmessage") && x->elements == 4 && r->pattern_active) ingest(r, x->element[2], x->element[3]);
            if (str_eq(kind, "smessage") && x->elements == 3) ingest(r, x->element[1], x->element[2]);
        }
        return;
    }
    if (x->type == REDIS_REPLY_ERROR) {
        link_fail(r, "subscription refused: %.*s", (int)RC_MIN(x->len, (size_t)200), x->str);
        return;
    }
    if (x->type != REDIS_REPLY_ARRAY || x->elements < 2 || !is_str(x->element[0])) {
        if (x->type == REDIS_REPLY_STATUS) return; /* +PONG before any subscription */
        link_fail(r, "unexpected reply on the subscriber socket");
        return;
    }
    const redisReply *kind = x->element[0];
    if (str_eq(kind, "message") && x->elements == 3) {
        if (!r->pattern_active) ingest(r, x->element[1], x->element[2]);
    } else if (str_eq(kind, "pmessage") && x->elements == 4) {
        if (r->pattern_active) ingest(r, x->element[2], x->element[3]);
    } else if (str_eq(kind, "smessage") && x->elements == 3) {
        ingest(r, x->element[1], x->element[2]);
    } else if (str_eq(kind, "subscribe") || str_eq(kind, "ssubscribe")) {
        confirmed(r);
    } else if (str_eq(kind, "psubscribe")) {
        r->pattern_active = true;
        confirmed(r);
    } else if (str_eq(kind, "punsubscribe")) {
        r->pattern_active = false;
    } else if (str_eq(kind, "sunsubscribe")) {
        /* Either our SUNSUBSCRIBE, or Redis telling us the slot moved away
         * from this master: then the channel is still wanted and sent. */
        const redisReply *ch = x->element[1];
        if (is_str(ch) && ch->len >= RC_REDIS_PREFIX_LEN) {
            const char *t = ch->str + RC_REDIS_PREFIX_LEN;
            size_t tl = ch->len - RC_REDIS_PREFIX_LEN;
            struct rl_chan *e = chan_find(r, t, tl, rc_topic_hash(t, tl));
            if (e && e->sent) {
                link_fail(r, "cluster slot of %.*s moved", (int)RC_MIN(ch->len, (size_t)200), ch->str);
                return;
            }
        }
    } else if (!str_eq(kind, "unsubscribe") && !str_eq(kind, "pong")) {
        link_fail(r, "unexpected %.*s on the subscriber socket", (int)RC_MIN(kind->len, (size_t)40), kind->str);
    }
}

/* ---- completions ---- */

void rc_redis_on_cqe(struct rc_redis *r, const struct io_uring_cqe *cqe) {
    uint32_t idx = rc_ud_idx(cqe->user_data);
    unsigned i = idx >> 3;
    enum rl_kind kind = (enum rl_kind)(idx & 7);
    if (i >= RL_NCONNS) return;
    struct rl_conn *c = &r->conns[i];
    if (c->inflight) c->inflight--;
    bool current = c->open && c->gen == rc_ud_gen(cqe->user_data) && c->reader;
    if (!current) {
        if (c->open && c->inflight == 0 && !c->reader) { /* closed: the last completion frees the fd */
            close(c->fd);
            c->open = false;
        }
        return;
    }
    int res = cqe->res;
    switch (kind) {
    case RK_LTIMEOUT:
    case RK_CANCEL:
        return;
    case RK_CONNECT:
        if (res < 0) {
            link_fail(r, "connect to %s: %s", r->nodes[c->node].text,
                      res == -ECANCELED ? "timed out" : strerror(-res));
            return;
        }
        c->connected = true;
        c->last_rx_ms = c->last_tx_ms = r->s->now_ms;
        arm_recv(r, c);
        handshake(r, c);
        if (c->ready && r->state == L_CONNECTING && all_ready(r)) link_up(r);
        return;
    case RK_RECV: {
        c->recv_armed = false;
        if (res <= 0 && c->draining) { /* read to its end */
            conn_close(r, c);
            return;
        }
        if (res <= 0) {
            link_fail(r, "%s", res == 0 ? "closed by the server" : strerror(-res));
            return;
        }
        c->last_rx_ms = r->s->now_ms;
        c->ping_out = false;
        if (redisReaderFeed(c->reader, c->rbuf, (size_t)res) != REDIS_OK) {
            if (c->draining) conn_close(r, c);
            else link_fail(r, "reader: %s", c->reader->errstr);
            return;
        }
        uint32_t gen = c->gen;
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
                if (c->draining) conn_close(r, c);
                else link_fail(r, "protocol error: %s", c->reader->errstr);
                return;
            }
            if (!reply) break;
            on_reply(r, c, reply);
            freeReplyObject(reply);
            if (c->gen != gen || !c->reader) return; /* the link failed or this socket was retired */
        }
        arm_recv(r, c);
        return;
    }
    case RK_SEND:
        c->sending = false;
        if (res < 0) {
            link_fail(r, "send: %s", strerror(-res));
            return;
        }
        rc_rbuf_consume(&c->wire, (size_t)res);
        if (rc_rbuf_pending(&c->wire) || rc_rbuf_pending(&c->out)) r->dirty = true;
        return;
    }
}

/* Queues one SEND per socket with pending bytes (end of a loop pass). */
void rc_redis_flush(struct rc_redis *r) {
    if (!r->pub_only) node_health(r); /* a few atomic loads: the log follows readiness within a loop pass */
    if (!r->dirty) return;
    r->dirty = false;
    for (unsigned i = 0; i < RL_NCONNS; i++) {
        struct rl_conn *c = &r->conns[i];
        if (!c->connected || c->sending) continue;
        if (!rc_rbuf_pending(&c->wire)) {
            if (!rc_rbuf_pending(&c->out)) continue;
            /* A publish waits for every subscribe sent before it (see top). */
            if (c->role == RL_PUB && c->ready && atomic_load_explicit(&r->srv->redis_hold, memory_order_acquire) > 0) {
                r->dirty = true; /* looked at again each loop pass; release_hold() wakes this shard */
                continue;
            }
            struct rc_rbuf t = c->wire;
            c->wire = c->out;
            c->out = t;
            rc_rbuf_reset(&c->out);
        }
        size_t n = RC_MIN(rc_rbuf_pending(&c->wire), (size_t)RL_SEND_MAX);
        struct io_uring_sqe *sqe = rc_ring_sqe(&r->s->ring);
        io_uring_prep_send(sqe, c->fd, c->wire.data + c->wire.head, n, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, ud(c, r, RK_SEND));
        c->inflight++;
        c->sending = true;
    }
}

/* The keepalive of a PUB socket: a PUBLISH nobody receives (see
 * RL_PROBE_CHANNEL), or a PING where a channel belongs to one master only
 * (--redis-sharded). */
static void probe(struct rc_redis *r, struct rl_conn *c, uint64_t now) {
    int ret;
    if (r->sharded)
        ret = rc_rbuf_command(&c->out, 1, (const char *[]){"PING"}, (size_t[]){4});
    else
        ret = rc_rbuf_command(&c->out, 3, (const char *[]){"PUBLISH", RL_PROBE_CHANNEL, ""},
                              (size_t[]){7, sizeof RL_PROBE_CHANNEL - 1, 0});
    if (ret < 0 || pend_push(c, r->sharded ? PK_PING : PK_PROBE, 0, now) < 0) return; /* next tick */
    c->last_tx_ms = now;
    r->dirty = true;
}

/*
 * Every 100 ms: a socket with a command unanswered for RL_STALL_MS makes
 * the link stalled (not ready); for --redis-timeout-ms, it is dropped and
 * its waiting publishers get 504. Idle sockets are probed every
 * RL_PING_IDLE_MS, so a Redis that stops answering (CLIENT PAUSE, a full
 * disk, a hung host) or refuses PUBLISH (an ACL) is seen within about a
 * second even with no traffic.
 */
void rc_redis_tick(struct rc_redis *r) {
    uint64_t now = r->s->now_ms;
    for (unsigned i = 0; i < RL_NCONNS; i++)
        if (r->conns[i].draining && now >= r->conns[i].drain_until_ms) conn_close(r, &r->conns[i]);
    if (r->state == L_IDLE) {
        if (now >= r->retry_at_ms && link_quiet(r) && !r->s->draining) attempt(r);
        return;
    }
    if (!r->established) {
        if (now >= r->setup_deadline_ms) link_fail(r, "no answer within %d ms", RL_SETUP_TIMEOUT_MS);
        return;
    }
    uint64_t timeout = r->srv->cfg.redis_timeout_ms;
    uint64_t stall = RC_MIN((uint64_t)RL_STALL_MS, timeout / 2);
    bool stalled = false;
    for (unsigned i = 0; i < 2 * r->nnodes; i++) {
        struct rl_conn *c = &r->conns[i];
        if (!c->ready) continue;
        uint64_t oldest = c->role == RL_PUB ? (c->pend_n ? c->pend[c->pend_head].at_ms : 0) : (c->ping_out ? c->ping_ms : 0);
        if (oldest && now - oldest >= timeout) {
            r->fail_status = 504;
            link_fail(r, "Redis at %s did not answer within %llu ms (--redis-timeout-ms)", r->nodes[c->node].text,
                      (unsigned long long)timeout);
            r->fail_status = 503;
            return;
        }
        if (oldest && now - oldest >= stall) stalled = true;
        if (c->role == RL_PUB) {
            if (!c->pend_n && now - c->last_tx_ms >= RL_PING_IDLE_MS) probe(r, c, now);
        } else if (!c->ping_out && now - c->last_rx_ms >= RL_PING_IDLE_MS) {
            if (rc_rbuf_command(&c->out, 1, (const char *[]){"PING"}, (size_t[]){4}) == 0) {
                c->ping_out = true;
                c->ping_ms = now;
                r->dirty = true;
            }
        }
    }
    set_health(r, stalled ? RC_REDIS_STALLED : r->refusing ? RC_REDIS_REFUSING : RC_REDIS_READY);
}

/* ---- what the shards ask for ---- */

static void interest(struct rc_redis *r, const char *name, size_t len, int delta);

void rc_redis_interest(struct rc_redis *r, const char *name, size_t len, int delta) {
    if (delta > 0) r->hold_pending++; /* counted in srv->redis_hold by the shard that announced it */
    interest(r, name, len, delta);
    release_hold(r);
}

static void interest(struct rc_redis *r, const char *name, size_t len, int delta) {
    if (len == 1 && name[0] == '*') {
        if (r->sharded) return; /* refused at subscribe time: sharded pub/sub has no patterns */
        if (delta < 0 && !r->pattern_want) return;
        r->pattern_want += (uint32_t)delta;
        if (r->state == L_UP && (r->pattern_want > 0) != r->pattern_sent) send_pattern(r, r->pattern_want > 0);
        count_channels(r);
        return;
    }
    uint64_t hash = rc_topic_hash(name, len);
    struct rl_chan *c = chan_find(r, name, len, hash);
    if (delta > 0) {
        if (!c && !(c = chan_add(r, name, len, hash))) {
            RC_WARN("redis: out of memory: not subscribing %.*s", (int)len, name);
            return;
        }
        c->want++;
        if (r->state == L_UP && !c->sent) send_sub(r, c, true);
    } else {
        if (!c || !c->want) return;
        if (--c->want) return;
        if (r->state == L_UP && c->sent) send_sub(r, c, false);
        chan_del(r, c);
    }
    count_channels(r);
}

void rc_redis_publish(struct rc_redis *r, uint64_t ticket, const char *topic, size_t len, const void *data,
                      size_t dlen, bool broadcast) {
    if (!r->established) {
        RC_METRIC_ADD(M(r), redis_publish_rejected_total, 1);
        answer(r, ticket, 503, "redis unavailable: nothing was published", 40);
        return;
    }
    if (broadcast) len = 0;
    char ch[RL_CHANNEL_MAX];
    struct rl_conn *c = &r->conns[2 * channel_node(r, topic, len, ch) + RL_PUB];
    if (rc_rbuf_pending(&c->out) + rc_rbuf_pending(&c->wire) > RL_OUT_MAX || c->pend_n >= RL_PENDING_MAX) {
        RC_METRIC_ADD(M(r), redis_publish_rejected_total, 1);
        answer(r, ticket, 503, "redis is not keeping up: nothing was published", 46);
        return;
    }
    const char *argv[3] = {r->sharded ? "SPUBLISH" : "PUBLISH", ch, data};
    size_t lens[3] = {r->sharded ? 8u : 7u, RC_REDIS_PREFIX_LEN + len, dlen};
    size_t before = c->out.len;
    if (rc_rbuf_command(&c->out, 3, argv, lens) < 0) {
        answer(r, ticket, 503, "out of memory: nothing was published", 36);
        return;
    }
    if (pend_push(c, PK_PUBLISH, ticket, r->s->now_ms) < 0) {
        c->out.len = before; /* never a command whose answer nobody expects */
        answer(r, ticket, 503, "out of memory: nothing was published", 36);
        return;
    }
    c->last_tx_ms = r->s->now_ms;
    r->dirty = true;
    RC_METRIC_ADD(M(r), redis_published_total, 1);
}

/* ---- life cycle ---- */

struct rc_redis *rc_redis_create(struct rc_server *srv, const char *url, bool sharded, bool pub_only, char *err,
                                 size_t errcap) {
    struct rc_redis *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    if (rc_redis_url_parse(url, &r->url, err, errcap) < 0) {
        free(r);
        return NULL;
    }
    if (sharded && r->url.db) {
        snprintf(err, errcap, "Redis Cluster has only database 0: drop /%u from the URL", r->url.db);
        free(r);
        return NULL;
    }
    r->srv = srv;
    r->sharded = sharded;
    r->pub_only = pub_only;
    r->fail_status = 503;
    r->rng = (uint64_t)rc_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    bool v6 = strchr(r->url.host, ':') != NULL;
    snprintf(r->where, sizeof r->where, v6 ? "[%s]:%u" : "%s:%u", r->url.host, r->url.port);
    r->nbuckets = 64;
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    r->slot_node = sharded ? calloc(16384, 1) : NULL;
    pthread_mutex_init(&r->mu, NULL);
    if (!r->buckets || (sharded && !r->slot_node)) {
        rc_redis_destroy(r);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    /* The broadcast channel is always wanted. */
    struct rl_chan *bc = chan_add(r, "", 0, rc_topic_hash("", 0));
    if (!bc) {
        rc_redis_destroy(r);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    bc->want = 1;
    for (unsigned i = 0; i < RL_NCONNS; i++) r->conns[i].fd = -1;
    r->literal = literal_addr(r->url.host, r->url.port, &r->seed, &r->seedlen);
    if (!r->literal) {
        if (pthread_create(&r->resolver, NULL, resolver_main, r) != 0) {
            rc_redis_destroy(r);
            snprintf(err, errcap, "cannot start the resolver thread");
            return NULL;
        }
        r->resolver_started = true;
    }
    return r;
}

void rc_redis_start(struct rc_redis *r, struct rc_shard *s) {
    r->s = s;
    r->state = L_IDLE;
    r->retry_at_ms = 0;
    set_up(r, false);
    attempt(r);
}

void rc_redis_stop(struct rc_redis *r) {
    if (!r->s) return;
    for (unsigned i = 0; i < RL_NCONNS; i++) {
        struct rl_conn *c = &r->conns[i];
        if (c->reader) redisReaderFree(c->reader);
        c->reader = NULL;
        if (c->open) close(c->fd);
        c->open = false;
        rc_rbuf_free(&c->out);
        rc_rbuf_free(&c->wire);
        free(c->rbuf);
        c->rbuf = NULL;
        c->pend_n = 0;
    }
    set_up(r, false);
}

void rc_redis_destroy(struct rc_redis *r) {
    if (!r) return;
    if (r->resolver_started) {
        atomic_store(&r->resolver_stop, true);
        pthread_join(r->resolver, NULL);
    }
    for (unsigned i = 0; i < RL_NCONNS; i++) {
        if (r->conns[i].reader) redisReaderFree(r->conns[i].reader);
        rc_rbuf_free(&r->conns[i].out);
        rc_rbuf_free(&r->conns[i].wire);
        free(r->conns[i].rbuf);
        free(r->conns[i].pend);
    }
    for (unsigned i = 0; r->buckets && i < r->nbuckets; i++)
        for (struct rl_chan *c = r->buckets[i], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    free(r->buckets);
    free(r->slot_node);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

bool rc_redis_sharded(const struct rc_redis *r) { return r->sharded; }

bool rc_redis_up(const struct rc_redis *r) { return r->established; }
