/*
 * shard.c — the shard loop and the server that runs one shard per core.
 *
 * Each shard is one thread with its own io_uring (SINGLE_ISSUER |
 * DEFER_TASKRUN), its own SO_REUSEPORT listener with a multishot accept, a
 * provided-buffer ring feeding multishot recv on all its connections, and a
 * periodic timer for deadlines. One loop pass:
 *
 *   submit queued SQEs and wait for ≥1 completion (one io_uring_enter)
 *   → dispatch every completion (accept, recv, send, cancel, timer, wake)
 *   → publish recycled recv buffers
 *   → flush: one SENDMSG per connection that has queued bytes and no send
 *     in flight (the SQEs go out with the next io_uring_enter)
 *
 * Nothing on a shard blocks: sockets are only touched through the ring,
 * except shutdown(2) and close(2), which never wait. The main thread talks
 * to a shard only through stop_requested + its eventfd.
 *
 * Thread: the shard's own, except rc_server_* (main thread).
 */
#include <errno.h>
#include <fnmatch.h>
#include <malloc.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shard.h"
#include "ringcast/pmd.h"
#include "ringcast/server.h"
#include "ringcast/util.h"

#define TICK_MS 100

/* ---- shard-level requests ---- */

/* The listeners, by the idx of their accept's user_data. */
enum { RC_LISTENER_PLAIN = 0, RC_LISTENER_TLS = 1, RC_LISTENER_ADMIN = 2 };

static void arm_accept_on(struct rc_shard *s, int which, int fd, bool *armed) {
    struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
    io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_ACCEPT, (uint32_t)which, 0));
    *armed = true;
}

static void arm_accept(struct rc_shard *s) {
    if (s->listen_fd >= 0 && !s->accept_armed) arm_accept_on(s, RC_LISTENER_PLAIN, s->listen_fd, &s->accept_armed);
    if (s->tls_listen_fd >= 0 && !s->tls_accept_armed)
        arm_accept_on(s, RC_LISTENER_TLS, s->tls_listen_fd, &s->tls_accept_armed);
    if (s->admin_fd >= 0 && !s->admin_accept_armed)
        arm_accept_on(s, RC_LISTENER_ADMIN, s->admin_fd, &s->admin_accept_armed);
}

static void arm_wake(struct rc_shard *s) {
    struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
    io_uring_prep_read(sqe, s->wake_fd, &s->wake_val, sizeof s->wake_val, 0);
    io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_WAKE, 0, 0));
}

static void arm_timer(struct rc_shard *s, bool multishot) {
    struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
    s->tick.tv_sec = 0;
    s->tick.tv_nsec = TICK_MS * 1000000L;
    io_uring_prep_timeout(sqe, &s->tick, 0, multishot ? IORING_TIMEOUT_MULTISHOT : 0);
    io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_TIMER, multishot, 0));
    s->timer_armed = true;
}

/*
 * Opens a listener. Client listeners are one SO_REUSEPORT socket per shard
 * (the kernel spreads connections over them); the admin listener is one
 * socket on shard 0. Accepted sockets inherit TCP_NODELAY (frames are
 * already batched per connection: Nagle would only add latency) and the
 * client listeners' SO_SNDBUF/SO_RCVBUF (--sndbuf/--rcvbuf: the kernel
 * memory one connection may pin), so no accept pays a setsockopt.
 */
static int open_listener(const struct rc_config *cfg, const struct sockaddr_storage *addr, socklen_t addr_len,
                         bool client, int *out) {
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if ((client || cfg->reuse_port) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) goto fail;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (client && cfg->sndbuf) {
        int v = (int)cfg->sndbuf;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    }
    if (client && cfg->rcvbuf) {
        int v = (int)cfg->rcvbuf;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    }
    if (addr->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, (const struct sockaddr *)addr, addr_len) < 0) goto fail;
    if (listen(fd, 4096) < 0) goto fail;
    *out = fd;
    return 0;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

/* ---- the broadcast engine ---- */

/*
 * Owner side: appends one message to topic T's frame of the current batch
 * window, starting the frame (and the window) when T has none yet.
 */
static int owner_append(struct rc_shard *s, const char *name, size_t len, uint64_t hash, const void *data,
                        size_t dlen, uint8_t flags) {
    struct rc_topic *t = rc_topic_find(&s->topics, name, len, hash);
    if (!t || !t->building) {
        t = rc_topic_acquire(&s->topics, name, len, hash); /* held until the window closes */
        if (!t) return -ENOMEM;
        size_t hint = RC_MAX((size_t)4096, 2 * (dlen + RC_WS_MAX_HEADER));
        t->building = rc_frame_new(name, len, hash, flags | (t->conflate ? RC_FRAME_CONFLATE : 0), hint);
        if (!t->building) {
            rc_topic_release(&s->topics, t);
            return -ENOMEM;
        }
        t->next_dirty = s->dirty_topics;
        s->dirty_topics = t;
        if (s->cfg->batch_ms && !s->window_armed) {
            struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
            s->window_ts.tv_sec = s->cfg->batch_ms / 1000;
            s->window_ts.tv_nsec = (long)(s->cfg->batch_ms % 1000) * 1000000L;
            io_uring_prep_timeout(sqe, &s->window_ts, 0, 0);
            io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_WINDOW, 0, 0));
            s->window_armed = true;
        }
    }
    if (rc_frame_append_text(&t->building, data, dlen) < 0) return -ENOMEM;
    RC_METRIC_ADD(&s->metrics, messages_published_total, 1);
    return 0;
}

/* Owner side of a deflate-interest change from shard `from` (maybe this one). */
static void owner_interest(struct rc_shard *s, const char *name, size_t len, uint64_t hash, int delta) {
    if (delta > 0) {
        struct rc_topic *t = rc_topic_acquire(&s->topics, name, len, hash); /* held while anyone compresses */
        if (t) t->pmd_shards++;
        return;
    }
    struct rc_topic *t = rc_topic_find(&s->topics, name, len, hash);
    if (t && t->pmd_shards) {
        t->pmd_shards--;
        rc_topic_release(&s->topics, t);
    }
}

void rc_shard_pmd_interest(struct rc_shard *s, struct rc_topic *t, int delta) {
    if (!t) return;
    if (t->len == 1 && t->name[0] == '*') { /* the firehose wants every topic compressed */
        if (delta > 0)
            atomic_fetch_add(&s->srv->pmd_firehose, 1);
        else
            atomic_fetch_sub(&s->srv->pmd_firehose, 1);
        return;
    }
    t->pmd_local += (uint32_t)delta;
    if (!(delta > 0 ? t->pmd_local == 1 : t->pmd_local == 0)) return; /* no change for the owner */
    unsigned owner = rc_topic_owner(t->hash, s->srv->nshards);
    if (owner == (unsigned)s->id) {
        owner_interest(s, t->name, t->len, t->hash, delta);
        return;
    }
    uint8_t flag = delta > 0 ? RC_PUB_DEFLATE_INTEREST_ADD : RC_PUB_DEFLATE_INTEREST_DEL;
    if (rc_msg_add_pub(&s->out_pub[owner], t->hash, t->name, t->len, NULL, 0, flag) < 0)
        RC_WARN("out of memory telling shard %u about compressing subscribers of %s", owner, t->name);
}

void rc_shard_redis_interest(struct rc_shard *s, const struct rc_topic *t, int delta) {
    struct rc_redis *r = s->srv->redis;
    if (!r || !t) return;
    /* Every shard's publisher link holds its PUBLISHes until Redis has
     * confirmed this subscription (released by shard 0's link), so a
     * client's publish after its `subscribed` ack, through any shard,
     * reaches it. */
    if (delta > 0) atomic_fetch_add(&s->srv->redis_hold, 1);
    if (s->id == 0) {
        rc_redis_interest(r, t->name, t->len, delta);
        return;
    }
    uint8_t flag = delta > 0 ? RC_PUB_REDIS_INTEREST_ADD : RC_PUB_REDIS_INTEREST_DEL;
    if (rc_msg_add_pub(&s->out_pub[0], t->hash, t->name, t->len, NULL, 0, flag) < 0) {
        if (delta > 0) atomic_fetch_sub(&s->srv->redis_hold, 1);
        RC_WARN("out of memory telling the Redis link about subscribers of %s", t->name);
    }
}

int rc_shard_redis_publish(struct rc_shard *s, struct rc_message *m, uint64_t ticket, const char **why) {
    if (!m->checked && (*why = rc_message_check(m, s->cfg->max_message_bytes))) return -EINVAL;
    const char *topic = m->broadcast ? "" : m->topic;
    size_t topic_len = m->broadcast ? 0 : m->topic_len;
    rc_redis_publish(s->redis, ticket, topic, topic_len, m->data, m->len, m->broadcast); /* this shard's own link */
    return 0;
}

int rc_shard_publish(struct rc_shard *s, struct rc_message *m, const char **why) {
    if (!m->checked && (*why = rc_message_check(m, s->cfg->max_message_bytes))) return -EINVAL;
    /* Broadcasts are one internal topic, "", owned by shard 0: they keep their order. */
    const char *topic = m->broadcast ? "" : m->topic;
    size_t topic_len = m->broadcast ? 0 : m->topic_len;
    uint64_t hash = rc_topic_hash(topic, topic_len);
    unsigned owner = m->broadcast ? 0 : rc_topic_owner(hash, s->srv->nshards);
    uint8_t flags = m->broadcast ? RC_FRAME_BROADCAST : 0;
    if (owner == (unsigned)s->id) return owner_append(s, topic, topic_len, hash, m->data, m->len, flags);
    return rc_msg_add_pub(&s->out_pub[owner], hash, topic, topic_len, m->data, m->len, flags);
}

/*
 * Delivers frame f to this shard's recipients. Consumes one frame
 * reference the caller holds (it becomes the view's, or is released).
 */
struct views {
    struct rc_shard *s;
    struct rc_frame *f;
    struct rc_buf *v[2]; /* plain, deflated: made on first use */
    bool ref_taken;      /* the caller's frame reference went to a view */
};

/* The view connection c gets: the deflated variant when c negotiated
 * compression and every compressed message in it fits c's window. */
static struct rc_buf *view_for(struct views *x, const struct rc_conn *c) {
    const struct rc_frame *f = x->f;
    /* A window below 15 bits (server_max_window_bits) only takes messages
     * no longer than the window: no back-reference can reach further. */
    int k = c->pmd_bits && f->deflated && (c->pmd_bits >= 15 || f->deflated_max_in <= (1u << c->pmd_bits));
    if (!x->v[k]) {
        if (x->ref_taken) rc_frame_hold(x->f, 1); /* each view holds its own frame reference */
        x->v[k] = rc_view_new(&x->s->views, x->f, k);
        if (!x->v[k]) {
            if (x->ref_taken) rc_frame_release(x->f);
            return NULL;
        }
        x->ref_taken = true;
    }
    return x->v[k];
}

static void deliver_frame(struct rc_shard *s, struct rc_topic *t, struct rc_frame *f) {
    struct views x = {.s = s, .f = f};
    struct rc_buf *v;
    if (f->flags & RC_FRAME_BROADCAST) {
        for (uint32_t i = 0; i < s->nws; i++)
            if ((v = view_for(&x, s->wsconns[i]))) rc_conn_deliver(s, s->wsconns[i], v);
    } else {
        if (!t) t = rc_topic_find(&s->topics, f->name, f->name_len, f->hash);
        struct rc_topic *fh = rc_topic_find(&s->topics, "*", 1, s->firehose_hash);
        if (t && t != fh)
            for (uint32_t i = 0; i < t->nsubs; i++) {
                struct rc_conn *c = t->subs[i].conn;
                if (!(c->flags & RC_CF_FIREHOSE) && (v = view_for(&x, c))) rc_conn_deliver(s, c, v);
            }
        if (fh)
            for (uint32_t i = 0; i < fh->nsubs; i++) {
                struct rc_conn *c = fh->subs[i].conn;
                if ((v = view_for(&x, c))) rc_conn_deliver(s, c, v);
            }
    }
    /* The queues hold the views now (or nobody does, and they go). */
    for (int k = 0; k < 2; k++)
        if (x.v[k]) rc_buf_unref(x.v[k]);
    if (!x.ref_taken) rc_frame_release(f);
}

/* Whether anyone who negotiated compression will want frame f of topic t. */
static bool wants_deflated(const struct rc_shard *s, const struct rc_topic *t, const struct rc_frame *f) {
    if (!s->deflater) return false;
    if (atomic_load_explicit(&s->srv->pmd_firehose, memory_order_relaxed)) return true;
    if (f->flags & RC_FRAME_BROADCAST) return atomic_load_explicit(&s->srv->pmd_ws, memory_order_relaxed) > 0;
    return t->pmd_shards > 0;
}

/* Closes the batch window: every frame built in it goes to this shard's
 * subscribers and, by reference, to every other shard. */
static void flush_window(struct rc_shard *s) {
    unsigned n = s->srv->nshards;
    while (s->dirty_topics) {
        struct rc_topic *t = s->dirty_topics;
        s->dirty_topics = t->next_dirty;
        struct rc_frame *f = t->building;
        t->building = NULL;
        RC_METRIC_ADD(&s->metrics, frames_built_total, 1);
        /* Compress once, here, before any shard sees the frame. */
        if (wants_deflated(s, t, f) &&
            rc_frame_build_deflated(f, s->deflater, s->cfg->deflate_min_bytes, &s->deflate_scratch,
                                    &s->deflate_scratch_cap) == 0) {
            RC_METRIC_ADD(&s->metrics, frames_deflated_total, 1);
            RC_METRIC_ADD(&s->metrics, compressions_total, f->compressed_msgs);
        }
        for (unsigned d = 0; d < n; d++) {
            if (d == (unsigned)s->id) continue;
            rc_frame_hold(f, 1);
            if (rc_msg_add_frame(&s->out_frames[d], f) < 0) {
                RC_WARN("out of memory handing a frame of %s to shard %u: dropped there", f->name, d);
                rc_frame_release(f);
            }
        }
        deliver_frame(s, t, f);
        rc_topic_release(&s->topics, t);
    }
}

static void flush_outboxes(struct rc_shard *s) {
    for (unsigned d = 0; d < s->srv->nshards; d++) {
        struct rc_inbox *in = &s->srv->shards[d].inbox;
        /* publish records first: a shard's own messages and the frames it
         * forwards never depend on each other's order */
        if (s->out_pub[d]) {
            rc_inbox_push(in, s->out_pub[d]);
            s->out_pub[d] = NULL;
        }
        if (s->out_frames[d]) {
            rc_inbox_push(in, s->out_frames[d]);
            s->out_frames[d] = NULL;
        }
    }
}

static void handle_msg(struct rc_shard *s, struct rc_msg *m) {
    if (m->kind == RC_MSG_TLS_CTX) { /* SIGHUP: new handshakes use the new certificate */
        struct WOLFSSL_CTX *ctx;
        memcpy(&ctx, m->data, sizeof ctx);
        rc_tls_ctx_release(s->tls_ctx);
        s->tls_ctx = ctx;
        free(m);
        return;
    }
    if (m->kind == RC_MSG_PUBLISH) {
        size_t off = 0;
        for (uint32_t i = 0; i < m->count; i++) {
            const struct rc_pub_rec *r = (const struct rc_pub_rec *)(m->data + off);
            const char *topic = (const char *)(r + 1);
            if (r->flags & (RC_PUB_DEFLATE_INTEREST_ADD | RC_PUB_DEFLATE_INTEREST_DEL))
                owner_interest(s, topic, r->topic_len, r->hash, (r->flags & RC_PUB_DEFLATE_INTEREST_ADD) ? 1 : -1);
            else if (r->flags & (RC_PUB_REDIS_INTEREST_ADD | RC_PUB_REDIS_INTEREST_DEL))
                rc_redis_interest(s->srv->redis, topic, r->topic_len, (r->flags & RC_PUB_REDIS_INTEREST_ADD) ? 1 : -1);
            else if (owner_append(s, topic, r->topic_len, r->hash, topic + r->topic_len, r->data_len, r->flags) < 0)
                RC_WARN("out of memory: a message for %.*s was dropped", (int)r->topic_len, topic);
            off += rc_pub_rec_size(r->topic_len, r->data_len);
        }
    } else {
        struct rc_frame **frames = rc_msg_frames(m);
        for (uint32_t i = 0; i < m->count; i++) deliver_frame(s, NULL, frames[i]);
    }
    free(m);
}

static void drain_inbox(struct rc_shard *s) {
    rc_inbox_rearm(&s->inbox);
    struct rc_msg *m;
    while ((m = rc_inbox_pop(&s->inbox))) handle_msg(s, m);
}

/* Frees what an inbox or outbox still holds (teardown). */
static void msg_discard(struct rc_msg *m) {
    if (m->kind == RC_MSG_TLS_CTX) {
        struct WOLFSSL_CTX *ctx;
        memcpy(&ctx, m->data, sizeof ctx);
        rc_tls_ctx_release(ctx);
    }
    if (m->kind == RC_MSG_FRAMES)
        for (uint32_t i = 0; i < m->count; i++) rc_frame_release(rc_msg_frames(m)[i]);
    free(m);
}

/* ---- the demo feed ---- */

static void arm_demo(struct rc_shard *s) {
    /* Tick often enough that a burst stays small, rarely enough that an
     * idle feed costs nothing: one message per tick at low rates, 1 ms at
     * high rates. */
    double period_ms = 1000.0 / s->demo_rate;
    if (period_ms < 1) period_ms = 1;
    if (period_ms > 100) period_ms = 100;
    long ns = (long)(period_ms * 1e6);
    s->demo_ts.tv_sec = ns / 1000000000L;
    s->demo_ts.tv_nsec = ns % 1000000000L;
    struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
    io_uring_prep_timeout(sqe, &s->demo_ts, 0, IORING_TIMEOUT_MULTISHOT);
    io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_DEMO, 1, 0));
}

static void on_demo_tick(struct rc_shard *s) {
    if (s->draining || !s->ndemo_owned) return;
    uint64_t now_ns = rc_now_ns();
    double due = (double)(now_ns - s->demo_start_ns) / 1e9 * s->demo_rate;
    uint64_t target = (uint64_t)due;
    if (target > s->demo_made + (uint64_t)s->demo_rate + 1) s->demo_made = target - (uint64_t)s->demo_rate; /* a stall: at most 1 s of catch-up */
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    uint64_t now_us = (uint64_t)wall.tv_sec * 1000000u + (uint64_t)wall.tv_nsec / 1000u;
    for (; s->demo_made < target; s->demo_made++) {
        unsigned i = s->demo_owned[s->demo_next];
        s->demo_next = (s->demo_next + 1) % s->ndemo_owned;
        size_t len = rc_demo_next(&s->demo, i, now_us, s->demo_buf, s->demo_buf_cap);
        const struct rc_demo_topic *dt = &s->demo.topics[i];
        struct rc_message m = {.topic = dt->name, .topic_len = dt->name_len, .data = s->demo_buf, .len = len};
        const char *why = NULL;
        if (len && rc_shard_publish(s, &m, &why) == -EINVAL) RC_WARN("demo message on %s refused: %s", dt->name, why);
    }
}

static int demo_setup(struct rc_shard *s) {
    const struct rc_config *cfg = s->cfg;
    if (rc_demo_init(&s->demo, cfg->demo_topics, cfg->demo_size, 20261121) < 0) return -ENOMEM;
    s->demo_owned = calloc(cfg->demo_topics, sizeof *s->demo_owned);
    s->demo_buf_cap = cfg->demo_size + 4096;
    s->demo_buf = malloc(s->demo_buf_cap);
    if (!s->demo_owned || !s->demo_buf) return -ENOMEM;
    for (unsigned i = 0; i < cfg->demo_topics; i++) {
        const struct rc_demo_topic *dt = &s->demo.topics[i];
        if (rc_topic_owner(rc_topic_hash(dt->name, dt->name_len), s->srv->nshards) == (unsigned)s->id)
            s->demo_owned[s->ndemo_owned++] = i;
    }
    if (!s->ndemo_owned) return 0;
    s->demo_rate = (double)cfg->demo_rate * s->ndemo_owned / cfg->demo_topics;
    s->demo_start_ns = rc_now_ns();
    arm_demo(s);
    return 0;
}

/* ---- the sweep ---- */

/* Every connection, every --idle-sweep-s (more often when --stall-timeout-s
 * asks): liveness pings, idle closes, stalled sockets (rc_conn_sweep). */
static void sweep(struct rc_shard *s) {
    for (uint32_t i = 0; i < s->nfresh; i++)
        if (s->conns[i]) rc_conn_sweep(s, s->conns[i]);
}

static uint64_t sweep_period_ms(const struct rc_config *cfg) {
    unsigned sec = RC_MIN(cfg->idle_sweep_s, RC_MAX(1u, cfg->stall_timeout_s / 4));
    return (uint64_t)sec * 1000;
}

/*
 * Memory goes back after a flood. Big buffers are mmapped (the mmap
 * threshold is pinned at start-up, so they are unmapped on free); what was
 * carved from malloc's arenas is returned by malloc_trim, and the recv
 * buffers a flood touched (--recv-bufs × --recv-buf-size per shard, 16 MiB
 * by default) are dropped until used again. Looked at every 2 s, at the end
 * of a loop pass (every received buffer handled); done once input has
 * calmed (the last period filled under 1/16 of the buffers) after a
 * connection of this shard freed something large or input filled a
 * quarter of them, so a steady stream of input never pays page faults.
 */
static void trim_memory(struct rc_shard *s) {
    if (s->now_ms < s->next_trim_ms) return;
    s->next_trim_ms = s->now_ms + 2000;
    uint64_t pool = (uint64_t)s->rbufs.count * s->rbufs.size;
    bool calm = s->rx_recent < pool / 16;
    s->rx_recent = 0;
    if (!calm || (!s->trim_wanted && s->rx_touched < pool / 4)) return;
    if (s->rx_touched && (s->ring_flags & IORING_SETUP_DEFER_TASKRUN)) rc_bufring_release_pages(&s->rbufs);
    if (s->inflate_cap > s->cfg->max_client_message_bytes) { /* an /echo message's size: made again when needed */
        free(s->inflate_buf);
        s->inflate_buf = NULL;
        s->inflate_cap = 0;
    }
    if (s->trim_wanted) malloc_trim(0);
    s->trim_wanted = false;
    s->rx_touched = 0;
}

/* ---- refusing connections over --max-conns ---- */

/* Logs the refusals at most once a second, node-wide, with their count. */
static void log_refusals(struct rc_shard *s) {
    struct rc_server *srv = s->srv;
    uint64_t last = atomic_load_explicit(&srv->refused_log_ms, memory_order_relaxed);
    if (s->now_ms < last + 1000 || !atomic_load_explicit(&srv->refused_unlogged, memory_order_relaxed)) return;
    if (!atomic_compare_exchange_strong(&srv->refused_log_ms, &last, s->now_ms)) return;
    unsigned n = atomic_exchange(&srv->refused_unlogged, 0);
    if (n) RC_WARN("refused %u connection%s: at --max-conns %u (answered 503)", n, n > 1 ? "s" : "", s->cfg->max_conns);
}

static void refused_close(struct rc_shard *s, uint32_t i) {
    close(s->refused[i].fd);
    s->refused[i] = s->refused[--s->nrefused];
}

/*
 * Over --max-conns (or the admin listener's own cap): the client gets a 503
 * at once, written without reading its request (one non-blocking send of a
 * few hundred bytes, which a fresh socket always takes). The socket then
 * lingers for RC_REFUSED_LINGER_MS with its write side shut, so a request
 * that arrives meanwhile cannot turn our close into a reset that destroys
 * the answer; at most RC_REFUSED_MAX linger per shard (the oldest goes).
 * A TLS client cannot read a plain answer: it is just closed.
 */
static void refuse(struct rc_shard *s, int fd, bool tls) {
    RC_METRIC_ADD(&s->metrics, connections_refused_total, 1);
    atomic_fetch_add_explicit(&s->srv->refused_unlogged, 1, memory_order_relaxed);
    log_refusals(s);
    if (tls) {
        close(fd);
        return;
    }
    char body[128], resp[384];
    int bl = snprintf(body, sizeof body, "{\"error\":\"server at its connection limit: retry later\",\"status\":503}");
    ssize_t n = rc_http_format_response(resp, sizeof resp, 503, "application/json", "Retry-After: 1\r\n", body,
                                        (size_t)bl, false);
    if (n > 0) {
        ssize_t w = send(fd, resp, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w;
    }
    shutdown(fd, SHUT_WR);
    if (s->nrefused == RC_REFUSED_MAX) {
        uint32_t oldest = 0;
        for (uint32_t i = 1; i < s->nrefused; i++)
            if (s->refused[i].until_ms < s->refused[oldest].until_ms) oldest = i;
        refused_close(s, oldest);
    }
    s->refused[s->nrefused].fd = fd;
    s->refused[s->nrefused].until_ms = s->now_ms + RC_REFUSED_LINGER_MS;
    s->nrefused++;
}

static void expire_refused(struct rc_shard *s) {
    for (uint32_t i = 0; i < s->nrefused;)
        if (s->refused[i].until_ms <= s->now_ms)
            refused_close(s, i);
        else
            i++;
}

/* ---- draining ---- */

/*
 * Phase 2 of a drain, once every shard has handed off what was published
 * before the stop (see begin_drain): the frames are in the queues, so the
 * 1001 close goes after them.
 */
static void close_for_drain(struct rc_shard *s) {
    if (s->drain_closed || atomic_load(&s->srv->drain_flushed) < s->srv->nshards) return;
    s->drain_closed = true;
    drain_inbox(s);
    RC_INFO("draining %u connections (budget %us)", s->nconns, s->cfg->drain_s);
    for (uint32_t i = 0; i < s->nfresh; i++)
        if (s->conns[i]) rc_conn_begin_drain(s, s->conns[i]);
}

/*
 * Phase 1 of a drain: stop accepting, close the batch window and hand every
 * frame and publish record to its shard, then tell the others. No shard
 * sends 1001 before all have done this, so everything published before the
 * stop reaches its subscribers first.
 */
static void begin_drain(struct rc_shard *s) {
    if (s->draining) return;
    s->draining = true;
    s->drain_deadline_ms = s->now_ms + (uint64_t)s->cfg->drain_s * 1000;
    flush_window(s);
    flush_outboxes(s);
    atomic_fetch_add(&s->srv->drain_flushed, 1);
    for (unsigned d = 0; d < s->srv->nshards; d++) {
        if (d == (unsigned)s->id) continue;
        uint64_t one = 1;
        ssize_t w = write(s->srv->shards[d].wake_fd, &one, sizeof one);
        (void)w;
    }
    int *fds[2] = {&s->listen_fd, &s->tls_listen_fd};
    for (int i = 0; i < 2; i++) {
        if (*fds[i] < 0) continue;
        struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
        io_uring_prep_cancel_fd(sqe, *fds[i], IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_NONE, 0, 0));
        close(*fds[i]); /* the accept's own file reference ends with its cancel */
        *fds[i] = -1;
    }
    close_for_drain(s);
}

static void on_tick(struct rc_shard *s) {
    if (s->draining) close_for_drain(s);
    if (s->accept_paused && !s->draining) {
        s->accept_paused = false;
        arm_accept(s);
    }
    /* Deadlines: the list holds only connections in a transient state
     * (reading a request, closing, lingering), so a walk is cheap. */
    struct rc_conn *c = s->timed.timed_next;
    while (c != &s->timed) {
        struct rc_conn *next = c->timed_next;
        if (c->deadline_ms <= s->now_ms) rc_conn_on_deadline(s, c);
        c = next;
    }
    if (s->now_ms >= s->next_sweep_ms) {
        s->next_sweep_ms = s->now_ms + sweep_period_ms(s->cfg);
        sweep(s);
    }
    if (s->nrefused) expire_refused(s);
    log_refusals(s);
    if (s->redis) rc_redis_tick(s->redis);
    if (s->draining && s->now_ms >= s->drain_deadline_ms && (s->nconns || !s->drain_closed)) {
        s->drain_closed = true;
        RC_WARN("drain budget spent: closing %u connections", s->nconns);
        for (uint32_t i = 0; i < s->nfresh; i++)
            if (s->conns[i]) rc_conn_abort(s, s->conns[i]);
    }
}

/* ---- completions ---- */

static struct rc_conn *conn_of(struct rc_shard *s, uint64_t ud) {
    uint32_t idx = rc_ud_idx(ud);
    if (idx >= s->nslots) return NULL;
    struct rc_conn *c = s->conns[idx];
    if (!c || c->gen != rc_ud_gen(ud)) return NULL;
    return c;
}

/* A new connection on listener `which`: counted (client listeners against
 * --max-conns, node-wide and exactly; over it refused with a 503), then
 * opened. The admin listener has its own small cap, where the newest
 * connection wins: a probe always gets in. */
static void accept_one(struct rc_shard *s, int fd, int which) {
    struct rc_server *srv = s->srv;
    bool admin = which == RC_LISTENER_ADMIN, tls = which == RC_LISTENER_TLS;
    if (s->draining && !admin) {
        close(fd);
        return;
    }
    if (admin && s->admin_conns == RC_ADMIN_MAX_CONNS) rc_conn_evict_oldest_admin(s);
    if (!admin && atomic_fetch_add_explicit(&srv->client_conns, 1, memory_order_relaxed) >= s->cfg->max_conns) {
        atomic_fetch_sub_explicit(&srv->client_conns, 1, memory_order_relaxed);
        refuse(s, fd, tls);
        return;
    }
    if (!rc_conn_open(s, fd, tls, admin)) { /* out of memory */
        if (!admin) atomic_fetch_sub_explicit(&srv->client_conns, 1, memory_order_relaxed);
        refuse(s, fd, tls);
    }
}

static void on_accept(struct rc_shard *s, const struct io_uring_cqe *cqe) {
    int which = (int)rc_ud_idx(cqe->user_data);
    if (cqe->res >= 0) {
        accept_one(s, cqe->res, which);
    } else if (cqe->res == -EMFILE || cqe->res == -ENFILE || cqe->res == -ENOMEM || cqe->res == -ENOBUFS) {
        RC_WARN("accept: %s; pausing accepts for %d ms (raise the fd limit with ulimit -n)", strerror(-cqe->res),
                TICK_MS);
        s->accept_paused = true;
    } else if (cqe->res != -ECANCELED) {
        RC_WARN("accept: %s", strerror(-cqe->res));
    }
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        bool *armed = which == RC_LISTENER_TLS     ? &s->tls_accept_armed
                      : which == RC_LISTENER_ADMIN ? &s->admin_accept_armed
                                                   : &s->accept_armed;
        *armed = false;
        if (!s->accept_paused && (!s->draining || which == RC_LISTENER_ADMIN)) arm_accept(s);
    }
}

static void on_recv(struct rc_shard *s, const struct io_uring_cqe *cqe) {
    struct rc_conn *c = conn_of(s, cqe->user_data);
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (cqe->res > 0) { /* pages of the buffer the kernel filled */
            uint64_t touched = ((uint64_t)cqe->res + 4095) & ~(uint64_t)4095;
            s->rx_touched += touched;
            s->rx_recent += touched;
        }
        if (c && cqe->res > 0) rc_conn_on_recv(s, c, rc_bufring_addr(&s->rbufs, bid), (size_t)cqe->res);
        rc_bufring_recycle(&s->rbufs, bid);
    }
    if (!c) return;
    if (cqe->res == 0) {
        if (c->state != RC_CONN_DEAD) rc_conn_on_eof(s, c);
    } else if (cqe->res < 0 && cqe->res != -ENOBUFS && cqe->res != -ECANCELED && c->state != RC_CONN_DEAD) {
        /* (ECANCELED is our own cancel: an abort, or HTTP backpressure) */
        RC_DEBUG("conn %u: recv: %s", c->idx, strerror(-cqe->res));
        rc_conn_abort(s, c);
    }
    if (!more) {
        c->flags &= ~RC_CF_RECV_ARMED;
        /* ENOBUFS ends the multishot recv when every buffer is taken; the
         * ones of this batch are recycled above, so re-arming is safe. A
         * connection paused for backpressure is re-armed when it resumes. */
        if (c->state != RC_CONN_DEAD && !(c->flags & (RC_CF_PEER_EOF | RC_CF_READ_PAUSED))) rc_conn_arm_recv(s, c);
        rc_conn_complete(s, c);
    }
}

static void on_cqe(struct rc_shard *s, const struct io_uring_cqe *cqe) {
    uint64_t ud = cqe->user_data;
    switch (rc_ud_op(ud)) {
    case RC_OP_RECV:
        on_recv(s, cqe);
        break;
    case RC_OP_SEND: {
        struct rc_conn *c = conn_of(s, ud);
        if (!c) break;
        rc_conn_on_send(s, c, cqe->res);
        rc_conn_complete(s, c);
        break;
    }
    case RC_OP_CANCEL: {
        struct rc_conn *c = conn_of(s, ud);
        if (c) rc_conn_complete(s, c);
        break;
    }
    case RC_OP_ACCEPT:
        on_accept(s, cqe);
        break;
    case RC_OP_TIMER:
        if (cqe->res == -EINVAL && rc_ud_idx(ud)) { /* kernel < 6.4: no multishot timeouts */
            arm_timer(s, false);
            break;
        }
        on_tick(s);
        if (!(cqe->flags & IORING_CQE_F_MORE)) arm_timer(s, false);
        break;
    case RC_OP_WAKE:
        drain_inbox(s);
        if (atomic_load(&s->stop_requested)) begin_drain(s);
        if (s->draining) close_for_drain(s);
        arm_wake(s); /* frames keep arriving while draining */
        break;
    case RC_OP_WINDOW:
        s->window_armed = false;
        flush_window(s);
        break;
    case RC_OP_DEMO:
        if (cqe->res == -EINVAL) { /* kernel < 6.4: no multishot timeouts; the feed needs them */
            RC_WARN("--demo needs multishot timeouts (Linux >= 6.4): demo feed off");
            break;
        }
        on_demo_tick(s);
        if (!(cqe->flags & IORING_CQE_F_MORE) && !s->draining) arm_demo(s);
        break;
    case RC_OP_REDIS:
        if (s->redis) rc_redis_on_cqe(s->redis, cqe);
        break;
    case RC_OP_NONE:
        break;
    }
}

/* ---- the thread ---- */

static int shard_setup(struct rc_shard *s) {
    const struct rc_config *cfg = s->cfg;
    int ret = rc_ring_init(&s->ring, cfg->ring_entries, &s->ring_flags);
    if (ret < 0) {
        RC_ERROR("io_uring_setup failed: %s (needs Linux >= 6.0 with io_uring enabled: check "
                 "/proc/sys/kernel/io_uring_disabled)",
                 strerror(-ret));
        return ret;
    }
    ret = rc_bufring_init(&s->ring, &s->rbufs, 0, cfg->recv_buf_count, cfg->recv_buf_size);
    if (ret < 0) {
        RC_ERROR("registering the recv buffer ring failed: %s (needs Linux >= 5.19)", strerror(-ret));
        return ret;
    }
    ret = open_listener(cfg, &cfg->listen_addr, cfg->listen_addr_len, true, &s->listen_fd);
    if (ret < 0) {
        RC_ERROR("cannot listen on %s: %s", cfg->listen_text, strerror(-ret));
        return ret;
    }
    if (cfg->tls_listen_addr_len) {
        ret = open_listener(cfg, &cfg->tls_listen_addr, cfg->tls_listen_addr_len, true, &s->tls_listen_fd);
        if (ret < 0) {
            RC_ERROR("cannot listen on %s (--tls-listen): %s", cfg->tls_listen_text, strerror(-ret));
            return ret;
        }
        s->tls_plain = malloc(16384 + 64);
        s->tls_stage = malloc(16384);
        if (!s->tls_plain || !s->tls_stage) {
            RC_ERROR("out of memory setting up TLS");
            return -ENOMEM;
        }
    }
    if (s->id == 0 && cfg->admin_listen_addr_len) {
        ret = open_listener(cfg, &cfg->admin_listen_addr, cfg->admin_listen_addr_len, false, &s->admin_fd);
        if (ret < 0) {
            RC_ERROR("cannot listen on %s (--admin-listen): %s%s", cfg->admin_listen_text, strerror(-ret),
                     ret == -EADDRINUSE ? " (another process listens there: give --admin-listen another address, "
                                          "or off)"
                                        : "");
            return ret;
        }
    }
    s->now_ms = s->start_ms = rc_now_ms();
    s->next_sweep_ms = s->now_ms + sweep_period_ms(cfg);
    if (cfg->deflate && (!(s->deflater = rc_deflater_create((int)cfg->deflate_level)) ||
                         !(s->inflater = rc_inflater_create()))) {
        RC_ERROR("out of memory creating the permessage-deflate compressor");
        return -ENOMEM;
    }
    if (cfg->demo && demo_setup(s) < 0) {
        RC_ERROR("out of memory setting up the demo feed");
        return -ENOMEM;
    }
    arm_accept(s);
    arm_wake(s);
    arm_timer(s, true);
    if (s->redis) rc_redis_start(s->redis, s);
    io_uring_submit(&s->ring);
    return 0;
}

static void shard_teardown(struct rc_shard *s) {
    for (uint32_t i = 0; i < s->nfresh; i++) {
        struct rc_conn *c = s->conns[i];
        if (!c) continue;
        /* Only reached when the loop ended with requests still in flight
         * (drain budget spent): the ring's exit cancels them. */
        rc_sendq_clear(&c->sq, &s->sq_pool);
        rc_subset_clear(&s->topics, &c->subs);
        rc_tls_conn_free(s, c);
        free(c->sctx);
        free(c->carry);
        free(c->msg_buf);
        close(c->fd);
        free(c);
        s->conns[i] = NULL;
    }
    if (s->listen_fd >= 0) close(s->listen_fd);
    s->listen_fd = -1;
    if (s->admin_fd >= 0) close(s->admin_fd);
    s->admin_fd = -1;
    while (s->nrefused) refused_close(s, 0);
    if (s->tls_listen_fd >= 0) close(s->tls_listen_fd);
    s->tls_listen_fd = -1;
    rc_tls_ctx_release(s->tls_ctx);
    s->tls_ctx = NULL;
    free(s->tls_plain);
    free(s->tls_stage);
    s->tls_plain = NULL;
    s->tls_stage = NULL;
    while (s->dirty_topics) { /* a window still open */
        struct rc_topic *t = s->dirty_topics;
        s->dirty_topics = t->next_dirty;
        rc_frame_release(t->building);
        t->building = NULL;
        rc_topic_release(&s->topics, t);
    }
    for (unsigned d = 0; s->out_pub && d < s->srv->nshards; d++) {
        if (s->out_pub[d]) msg_discard(s->out_pub[d]);
        if (s->out_frames[d]) msg_discard(s->out_frames[d]);
        s->out_pub[d] = s->out_frames[d] = NULL;
    }
    free(s->wsconns);
    s->wsconns = NULL;
    s->nws = s->wscap = 0;
    rc_deflater_destroy(s->deflater);
    rc_inflater_destroy(s->inflater);
    free(s->deflate_scratch);
    free(s->inflate_buf);
    s->deflater = NULL;
    s->inflater = NULL;
    s->deflate_scratch = s->inflate_buf = NULL;
    if (s->redis) rc_redis_stop(s->redis);
    rc_demo_destroy(&s->demo);
    free(s->demo_owned);
    free(s->demo_buf);
    s->demo_owned = NULL;
    s->demo_buf = NULL;
    if (s->ring.ring_fd > 0) {
        rc_bufring_destroy(&s->ring, &s->rbufs);
        io_uring_queue_exit(&s->ring);
    }
    while (s->free_sctx) {
        struct rc_send_ctx *x = s->free_sctx;
        s->free_sctx = x->next_free;
        free(x);
    }
    rc_sendq_pool_destroy(&s->sq_pool);
}

static void *shard_main(void *arg) {
    struct rc_shard *s = arg;
    rc_log_shard = s->id;
    s->start_status = shard_setup(s);
    atomic_store(&s->started, 1);
    if (s->start_status < 0) {
        atomic_fetch_add(&s->srv->drain_flushed, 1); /* nothing to hand off: never hold up the others */
        shard_teardown(s);
        return NULL;
    }

    for (;;) {
        if (!s->cfg->batch_ms) flush_window(s); /* --batch-ms 0: the window is one loop pass */
        flush_outboxes(s);
        if (s->redis) rc_redis_flush(s->redis);
        /* Flush: one SENDMSG per connection with queued bytes. */
        while (s->dirty) {
            struct rc_conn *c = s->dirty;
            s->dirty = c->next_dirty;
            rc_conn_flush(s, c);
        }
        rc_bufring_publish(&s->rbufs);
        trim_memory(s);
        if (s->drain_closed && s->nconns == 0) break;

        int ret = io_uring_submit_and_wait(&s->ring, 1);
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME)
            rc_die("io_uring_enter failed: %s", strerror(-ret));
        s->now_ms = rc_now_ms();
        s->clock_s = (uint32_t)((s->now_ms - s->start_ms) / 1000);

        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe) {
            on_cqe(s, cqe);
            seen++;
        }
        io_uring_cq_advance(&s->ring, seen);
    }
    RC_INFO("shard stopped");
    shard_teardown(s);
    return NULL;
}

/* ---- the server (main thread) ---- */

/* demo:* topics are always conflatable; --conflate adds globs. */
static bool is_conflatable(const char *name, size_t len, void *ctx) {
    const struct rc_server *srv = ctx;
    char buf[256];
    if (len >= sizeof buf) return false;
    memcpy(buf, name, len);
    buf[len] = 0;
    if (!strncmp(buf, "demo:", 5)) return true;
    for (char **p = srv->conflate; p && *p; p++)
        if (fnmatch(*p, buf, 0) == 0) return true;
    return false;
}

static char **split_patterns(const char *list) {
    size_t n = 1;
    for (const char *p = list; *p; p++) n += *p == ',';
    char **v = calloc(n + 1, sizeof *v);
    if (!v) return NULL;
    size_t k = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len) {
            v[k] = strndup(p, len);
            if (!v[k]) break;
            k++;
        }
        p += len + (e ? 1 : 0);
    }
    return v;
}

struct rc_server *rc_server_create(const struct rc_config *cfg) {
    struct rc_server *srv = calloc(1, sizeof *srv);
    if (!srv) return NULL;
    srv->cfg = *cfg;
    srv->nshards = cfg->shards;
    srv->conflate = split_patterns(cfg->conflate ? cfg->conflate : "");
    if (!srv->conflate) {
        free(srv);
        return NULL;
    }
    if (cfg->tls_listen_addr_len) {
        char err[400];
        rc_tls_global_init();
        srv->tls_ctx = rc_tls_ctx_load(cfg->tls_cert, cfg->tls_key, err, sizeof err);
        if (!srv->tls_ctx) {
            RC_ERROR("--tls-cert/--tls-key: %s", err);
            rc_tls_global_cleanup();
            free(srv->conflate);
            free(srv);
            return NULL;
        }
    }
    if (cfg->redis) {
        char err[200];
        srv->redis = rc_redis_create(srv, cfg->redis, cfg->redis_sharded, false, err, sizeof err);
        if (!srv->redis) {
            RC_ERROR("--redis: %s", err);
            rc_tls_ctx_release(srv->tls_ctx);
            free(srv->conflate);
            free(srv);
            return NULL;
        }
    }
    char terr[400];
    if (rc_trust_init(srv, terr, sizeof terr) < 0) {
        RC_ERROR("%s", terr);
        rc_server_destroy(srv);
        return NULL;
    }
    /* Each shard's metrics block sits on its own cache line (other shards
     * read it for /metrics): the array needs that alignment too. */
    srv->shards = aligned_alloc(_Alignof(struct rc_shard), srv->nshards * sizeof *srv->shards);
    if (srv->shards) memset(srv->shards, 0, srv->nshards * sizeof *srv->shards);
    if (!srv->shards) {
        rc_redis_destroy(srv->redis);
        rc_tls_ctx_release(srv->tls_ctx);
        free(srv);
        return NULL;
    }
    /* The count is node-wide and exact (srv->client_conns), so any shard may
     * hold all of them; the slot tables are reserved, not touched, up front
     * (rc_conn_open takes fresh slots in order). */
    uint32_t per_shard = cfg->max_conns + RC_ADMIN_MAX_CONNS;
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = &srv->shards[i];
        s->id = (int)i;
        s->srv = srv;
        s->cfg = &srv->cfg;
        s->listen_fd = -1;
        s->tls_listen_fd = -1;
        s->admin_fd = -1;
        s->wake_fd = -1;
        s->nslots = per_shard;
        s->conns = calloc(per_shard, sizeof *s->conns);
        s->gens = calloc(per_shard, sizeof *s->gens);
        s->free_slots = malloc(per_shard * sizeof *s->free_slots);
        s->claims = cfg->jwt_secret ? calloc(per_shard, sizeof *s->claims) : NULL;
        s->pubwaits_free = UINT32_MAX;
        if (!s->conns || !s->gens || !s->free_slots || (cfg->jwt_secret && !s->claims)) {
            rc_server_destroy(srv);
            return NULL;
        }
        s->timed.timed_next = s->timed.timed_prev = &s->timed;
        s->firehose_hash = rc_topic_hash("*", 1);
        if (srv->redis) { /* each shard publishes (and hears Redis' answers) on its own link */
            char err[200];
            s->redis = i == 0 ? srv->redis : rc_redis_create(srv, cfg->redis, cfg->redis_sharded, true, err, sizeof err);
            if (!s->redis) {
                RC_ERROR("--redis: shard %u: %s", i, err);
                rc_server_destroy(srv);
                return NULL;
            }
        }
        s->out_pub = calloc(srv->nshards, sizeof *s->out_pub);
        s->out_frames = calloc(srv->nshards, sizeof *s->out_frames);
        if (!s->out_pub || !s->out_frames || rc_topic_table_init(&s->topics, is_conflatable, srv) < 0) {
            rc_server_destroy(srv);
            return NULL;
        }
        if (cfg->tls_listen_addr_len && rc_tls_ctx_hold(srv->tls_ctx) == 0) s->tls_ctx = srv->tls_ctx;
        if (cfg->tls_listen_addr_len && !s->tls_ctx) {
            rc_server_destroy(srv);
            return NULL;
        }
        s->http_limits.max_head_bytes = cfg->max_head_bytes;
        s->http_limits.max_headers = cfg->max_headers;
        s->http_limits.max_line_bytes = cfg->max_line_bytes;
    }
    return srv;
}

/*
 * Our client listeners use SO_REUSEPORT (one per shard), which would also
 * let a second process bind the same address and silently take part of the
 * connections. Unless --reuse-port asks for exactly that, a plain bind of
 * the address first tells whether anyone listens there. Returns 0 or
 * -EADDRINUSE (logged).
 */
static int check_address_free(const struct rc_config *cfg, const struct sockaddr_storage *addr, socklen_t len,
                              const char *text, const char *flag) {
    if (cfg->reuse_port || !len) return 0;
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0; /* the real bind will say what is wrong */
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* TIME_WAIT leftovers are no owner */
    if (addr->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    int ret = bind(fd, (const struct sockaddr *)addr, len) < 0 && errno == EADDRINUSE ? -EADDRINUSE : 0;
    close(fd);
    if (ret < 0)
        RC_ERROR("cannot listen on %s (%s): address in use by another process; stop it, pick another address, or "
                 "pass --reuse-port to share it (the way to hand a port over from an old ringcast to a new one)",
                 text, flag);
    return ret;
}

int rc_server_start(struct rc_server *srv) {
    int status = 0;
    unsigned started = 0;
    const struct rc_config *cfg = &srv->cfg;
    if (check_address_free(cfg, &cfg->listen_addr, cfg->listen_addr_len, cfg->listen_text, "--listen") < 0 ||
        check_address_free(cfg, &cfg->tls_listen_addr, cfg->tls_listen_addr_len, cfg->tls_listen_text, "--tls-listen") < 0)
        return -EADDRINUSE;
    for (unsigned i = 0; i < srv->nshards; i++) { /* every inbox exists before any shard can publish */
        struct rc_shard *s = &srv->shards[i];
        s->wake_fd = eventfd(0, EFD_CLOEXEC);
        if (s->wake_fd < 0) return -errno;
        rc_inbox_init(&s->inbox, s->wake_fd);
    }
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = &srv->shards[i];
        int ret = pthread_create(&s->thread, NULL, shard_main, s);
        if (ret) {
            status = -ret;
            break;
        }
        started++;
        while (!atomic_load(&s->started)) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        if (s->start_status < 0) {
            status = s->start_status;
            break;
        }
    }
    if (status < 0) {
        atomic_fetch_add(&srv->drain_flushed, srv->nshards - started); /* the ones never started */
        rc_server_stop(srv);
        for (unsigned i = 0; i < started; i++) pthread_join(srv->shards[i].thread, NULL);
        for (unsigned i = 0; i < srv->nshards; i++) srv->shards[i].started = 0; /* joined */
        return status;
    }
    RC_INFO("listening on %s%s%s with %u shard%s; admin on %s", srv->cfg.listen_text,
            srv->cfg.tls_listen_addr_len ? " and TLS on " : "", srv->cfg.tls_listen_addr_len ? srv->cfg.tls_listen_text : "",
            srv->nshards, srv->nshards > 1 ? "s" : "", cfg->admin_listen_addr_len ? cfg->admin_listen_text : "(off)");
    return 0;
}

int rc_server_reload(struct rc_server *srv) {
    int ret = rc_trust_reload(srv);
    const struct rc_config *cfg = &srv->cfg;
    if (!cfg->tls_listen_addr_len) {
        if (!cfg->publish_token_file) RC_INFO("SIGHUP: no --tls-listen or --publish-token-file, nothing to reload");
        return ret;
    }
    char err[400];
    struct WOLFSSL_CTX *ctx = rc_tls_ctx_load(cfg->tls_cert, cfg->tls_key, err, sizeof err);
    if (!ctx) {
        RC_WARN("SIGHUP: TLS reload failed, keeping the current certificate: %s", err);
        return -EINVAL;
    }
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_msg *m = calloc(1, sizeof *m + sizeof ctx);
        if (!m || rc_tls_ctx_hold(ctx) < 0) {
            free(m);
            RC_WARN("SIGHUP: out of memory handing the new certificate to shard %u", i);
            continue;
        }
        m->kind = RC_MSG_TLS_CTX;
        m->count = 1;
        m->len = m->cap = sizeof ctx;
        memcpy(m->data, &ctx, sizeof ctx);
        rc_inbox_push(&srv->shards[i].inbox, m);
    }
    /* The server's own reference follows too (the shards hold theirs). */
    rc_tls_ctx_release(srv->tls_ctx);
    srv->tls_ctx = ctx;
    RC_INFO("SIGHUP: reloaded the TLS certificate %s and key %s", cfg->tls_cert, cfg->tls_key);
    return 0;
}

void rc_server_stop(struct rc_server *srv) {
    atomic_store(&srv->draining, true);
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = &srv->shards[i];
        atomic_store(&s->stop_requested, true);
        if (s->wake_fd >= 0) {
            uint64_t one = 1;
            ssize_t w = write(s->wake_fd, &one, sizeof one);
            (void)w;
        }
    }
}

int rc_server_wait(struct rc_server *srv) {
    for (unsigned i = 0; i < srv->nshards; i++)
        if (atomic_load(&srv->shards[i].started)) pthread_join(srv->shards[i].thread, NULL);
    return 0;
}

void rc_server_destroy(struct rc_server *srv) {
    if (!srv) return;
    if (!srv->shards) srv->nshards = 0; /* a start that failed before the shards existed */
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = &srv->shards[i];
        if (s->wake_fd >= 0) {
            /* Frames other shards sent after this one stopped reading. */
            struct rc_msg *m;
            while ((m = rc_inbox_pop(&s->inbox))) msg_discard(m);
            close(s->wake_fd);
        }
        rc_publish_waits_free(s);
        free(s->out_pub);
        free(s->out_frames);
        free(s->conns);
        free(s->gens);
        free(s->free_slots);
        free(s->claims); /* each connection freed its own */
    }
    /* Views and topic tables last: the inboxes above may have held the
     * last references of frames whose views live in another shard's pool. */
    for (unsigned i = 0; i < srv->nshards; i++) {
        rc_view_pool_destroy(&srv->shards[i].views);
        rc_topic_table_destroy(&srv->shards[i].topics);
    }
    for (unsigned i = 1; i < srv->nshards; i++) rc_redis_destroy(srv->shards[i].redis);
    rc_redis_destroy(srv->redis);
    rc_trust_free(srv);
    if (srv->tls_ctx) {
        rc_tls_ctx_release(srv->tls_ctx);
        rc_tls_global_cleanup();
    }
    for (char **p = srv->conflate; p && *p; p++) free(*p);
    free(srv->conflate);
    free(srv->shards);
    free(srv);
}
