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
#include "ringcast/server.h"
#include "ringcast/util.h"

#define TICK_MS 100

/* ---- shard-level requests ---- */

static void arm_accept(struct rc_shard *s) {
    struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
    io_uring_prep_multishot_accept(sqe, s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_ACCEPT, 0, 0));
    s->accept_armed = true;
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

static int open_listener(struct rc_shard *s) {
    const struct rc_config *cfg = s->cfg;
    int fd = socket(cfg->listen_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) goto fail;
    /* Accepted sockets inherit TCP_NODELAY from the listener: frames are
     * already batched per connection, Nagle would only add latency. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cfg->listen_addr.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, (const struct sockaddr *)&cfg->listen_addr, cfg->listen_addr_len) < 0) goto fail;
    if (listen(fd, 4096) < 0) goto fail;
    s->listen_fd = fd;
    return 0;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

/* ---- draining ---- */

static void begin_drain(struct rc_shard *s) {
    if (s->draining) return;
    s->draining = true;
    s->drain_deadline_ms = s->now_ms + (uint64_t)s->cfg->drain_s * 1000;
    if (s->listen_fd >= 0) {
        struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
        io_uring_prep_cancel_fd(sqe, s->listen_fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_NONE, 0, 0));
        close(s->listen_fd); /* the accept's own file reference ends with its cancel */
        s->listen_fd = -1;
    }
    RC_INFO("draining %u connections (budget %us)", s->nconns, s->cfg->drain_s);
    for (uint32_t i = 0; i < s->nslots; i++)
        if (s->conns[i]) rc_conn_begin_drain(s, s->conns[i]);
}

static void on_tick(struct rc_shard *s) {
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
    if (s->draining && s->now_ms >= s->drain_deadline_ms && s->nconns) {
        RC_WARN("drain budget spent: closing %u connections", s->nconns);
        for (uint32_t i = 0; i < s->nslots; i++)
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

static void on_accept(struct rc_shard *s, const struct io_uring_cqe *cqe) {
    if (cqe->res >= 0) {
        if (s->draining || !rc_conn_open(s, cqe->res)) {
            if (!s->draining) RC_WARN("connection limit reached (%u on this shard): refusing", s->nconns);
            close(cqe->res);
        }
    } else if (cqe->res == -EMFILE || cqe->res == -ENFILE || cqe->res == -ENOMEM || cqe->res == -ENOBUFS) {
        RC_WARN("accept: %s; pausing accepts for %d ms (raise the fd limit with ulimit -n)", strerror(-cqe->res),
                TICK_MS);
        s->accept_paused = true;
    } else if (cqe->res != -ECANCELED) {
        RC_WARN("accept: %s", strerror(-cqe->res));
    }
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        s->accept_armed = false;
        if (!s->draining && !s->accept_paused && s->listen_fd >= 0) arm_accept(s);
    }
}

static void on_recv(struct rc_shard *s, const struct io_uring_cqe *cqe) {
    struct rc_conn *c = conn_of(s, cqe->user_data);
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (c && cqe->res > 0) rc_conn_on_recv(s, c, rc_bufring_addr(&s->rbufs, bid), (size_t)cqe->res);
        rc_bufring_recycle(&s->rbufs, bid);
    }
    if (!c) return;
    if (cqe->res == 0) {
        if (c->state != RC_CONN_DEAD) rc_conn_on_eof(s, c);
    } else if (cqe->res < 0 && cqe->res != -ENOBUFS && c->state != RC_CONN_DEAD) {
        if (cqe->res != -ECANCELED) RC_DEBUG("conn %u: recv: %s", c->idx, strerror(-cqe->res));
        rc_conn_abort(s, c);
    }
    if (!more) {
        c->flags &= ~RC_CF_RECV_ARMED;
        /* ENOBUFS ends the multishot recv when every buffer is taken; the
         * ones of this batch are recycled above, so re-arming is safe. */
        if (c->state != RC_CONN_DEAD && !(c->flags & RC_CF_PEER_EOF)) rc_conn_arm_recv(s, c);
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
        if (atomic_load(&s->stop_requested)) begin_drain(s);
        if (!s->draining) arm_wake(s);
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
    ret = open_listener(s);
    if (ret < 0) {
        RC_ERROR("cannot listen on %s: %s", cfg->listen_text, strerror(-ret));
        return ret;
    }
    s->now_ms = rc_now_ms();
    arm_accept(s);
    arm_wake(s);
    arm_timer(s, true);
    io_uring_submit(&s->ring);
    return 0;
}

static void shard_teardown(struct rc_shard *s) {
    for (uint32_t i = 0; i < s->nslots; i++) {
        struct rc_conn *c = s->conns[i];
        if (!c) continue;
        /* Only reached when the loop ended with requests still in flight
         * (drain budget spent): the ring's exit cancels them. */
        rc_sendq_clear(&c->sq, &s->sq_pool);
        free(c->sctx);
        free(c->carry);
        free(c->msg_buf);
        close(c->fd);
        free(c);
        s->conns[i] = NULL;
    }
    if (s->listen_fd >= 0) close(s->listen_fd);
    s->listen_fd = -1;
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
        shard_teardown(s);
        return NULL;
    }

    for (;;) {
        /* Flush: one SENDMSG per connection with queued bytes. */
        while (s->dirty) {
            struct rc_conn *c = s->dirty;
            s->dirty = c->next_dirty;
            rc_conn_flush(s, c);
        }
        rc_bufring_publish(&s->rbufs);
        if (s->draining && s->nconns == 0) break;

        int ret = io_uring_submit_and_wait(&s->ring, 1);
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME)
            rc_die("io_uring_enter failed: %s", strerror(-ret));
        s->now_ms = rc_now_ms();

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

struct rc_server *rc_server_create(const struct rc_config *cfg) {
    struct rc_server *srv = calloc(1, sizeof *srv);
    if (!srv) return NULL;
    srv->cfg = *cfg;
    srv->nshards = cfg->shards;
    srv->shards = calloc(srv->nshards, sizeof *srv->shards);
    if (!srv->shards) {
        free(srv);
        return NULL;
    }
    uint32_t per_shard = cfg->max_conns / srv->nshards + 1;
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = &srv->shards[i];
        s->id = (int)i;
        s->srv = srv;
        s->cfg = &srv->cfg;
        s->listen_fd = -1;
        s->wake_fd = -1;
        s->nslots = per_shard;
        s->conns = calloc(per_shard, sizeof *s->conns);
        s->gens = calloc(per_shard, sizeof *s->gens);
        s->free_slots = malloc(per_shard * sizeof *s->free_slots);
        if (!s->conns || !s->gens || !s->free_slots) {
            rc_server_destroy(srv);
            return NULL;
        }
        /* Lowest indices on top of the stack: recently used slots stay warm. */
        for (uint32_t k = 0; k < per_shard; k++) s->free_slots[k] = per_shard - 1 - k;
        s->nfree = per_shard;
        s->timed.timed_next = s->timed.timed_prev = &s->timed;
        s->http_limits.max_head_bytes = cfg->max_head_bytes;
        s->http_limits.max_headers = cfg->max_headers;
        s->http_limits.max_line_bytes = cfg->max_line_bytes;
    }
    return srv;
}

int rc_server_start(struct rc_server *srv) {
    int status = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = &srv->shards[i];
        s->wake_fd = eventfd(0, EFD_CLOEXEC);
        if (s->wake_fd < 0) {
            status = -errno;
            break;
        }
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
        rc_server_stop(srv);
        for (unsigned i = 0; i < started; i++) pthread_join(srv->shards[i].thread, NULL);
        for (unsigned i = 0; i < srv->nshards; i++) srv->shards[i].started = 0; /* joined */
        return status;
    }
    RC_INFO("listening on %s with %u shard%s", srv->cfg.listen_text, srv->nshards, srv->nshards > 1 ? "s" : "");
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
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct rc_shard *s = &srv->shards[i];
        if (s->wake_fd >= 0) close(s->wake_fd);
        free(s->conns);
        free(s->gens);
        free(s->free_slots);
    }
    free(srv->shards);
    free(srv);
}
