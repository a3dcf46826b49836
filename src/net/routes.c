/*
 * routes.c — what the server answers to each complete HTTP request: the
 * WebSocket upgrade endpoints and the small REST endpoints.
 *
 * Place in the data flow: conn.c hands every complete request (head and
 * body) here; a route either queues one response on the connection or
 * upgrades it to a WebSocket. Errors are always a status with a small JSON
 * body {"error":"…","status":N}.
 *
 * Thread: the owning shard only.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "shard.h"
#include "ringcast/auth.h"
#include "ringcast/message.h"
#include "ringcast/pmd.h"
#include "ringcast/publish.h"
#include "ringcast/util.h"

void rc_http_respond(struct rc_shard *s, struct rc_conn *c, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t body_len, bool keep_alive) {
    size_t cap = 256 + (extra_headers ? strlen(extra_headers) : 0) + body_len;
    if (s->draining) keep_alive = false; /* every response of a drain is the connection's last */
    struct rc_buf *b = rc_buf_new(cap);
    if (!b) {
        rc_conn_abort(s, c);
        return;
    }
    ssize_t n = rc_http_format_response((char *)b->data, cap, status, content_type, extra_headers, body,
                                        body_len, keep_alive);
    if (n < 0) {
        rc_buf_unref(b);
        rc_conn_abort(s, c);
        return;
    }
    b->len = (uint32_t)n;
    int ret = rc_conn_queue(s, c, b);
    rc_buf_unref(b);
    if (ret < 0) {
        rc_conn_abort(s, c);
        return;
    }
    if (keep_alive)
        rc_conn_set_deadline(s, c, s->now_ms + s->cfg->request_timeout_ms);
    else
        c->flags |= RC_CF_END_AFTER_SEND;
}

/* text as the inside of a JSON string (control characters dropped), cut to fit cap. */
static void json_escape(const char *text, char *esc, size_t cap) {
    size_t k = 0;
    for (const char *p = text; *p && k < cap - 2; p++) {
        if (*p == '"' || *p == '\\') esc[k++] = '\\';
        if ((unsigned char)*p >= 0x20) esc[k++] = *p;
    }
    esc[k] = 0;
}

void rc_http_respond_error(struct rc_shard *s, struct rc_conn *c, int status, const char *message,
                           const char *extra_headers, bool keep_alive) {
    char body[512];
    char esc[400];
    json_escape(message, esc, sizeof esc);
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"status\":%d}", esc, status);
    rc_http_respond(s, c, status, "application/json", extra_headers, body, (size_t)n, keep_alive);
}

static void respond_json(struct rc_shard *s, struct rc_conn *c, int status, const char *json,
                         const struct rc_http_request *req) {
    rc_http_respond(s, c, status, "application/json", NULL, json, strlen(json), req->keep_alive);
}

/* Upgrades the connection to a WebSocket serving `endpoint`, or answers
 * why not (400/405/426, with the headers RFC 6455 §4.2.2 asks for). */
static void ws_upgrade(struct rc_shard *s, struct rc_conn *c, const struct rc_http_request *req,
                       enum rc_endpoint endpoint) {
    if (s->draining) {
        rc_http_respond_error(s, c, 503, "server shutting down", "Retry-After: 1\r\n", false);
        return;
    }
    struct rc_ws_handshake hs;
    int r = rc_ws_handshake_check(req, &hs);
    struct rc_claims *claims = NULL;
    char why[200];
    int denied = r < 0                         ? 0
                 : (c->flags & RC_CF_ADMIN) ? rc_trust_admin_upgrade(s, req, why, sizeof why)
                                            : rc_trust_upgrade(s, req, &claims, why, sizeof why);
    if (denied) {
        rc_http_respond_error(s, c, denied, why, denied == 401 ? "WWW-Authenticate: Bearer realm=\"ringcast\"\r\n" : NULL,
                              false);
        return;
    }
    if (r < 0) {
        int status = -r;
        const char *extra = NULL, *msg = "bad WebSocket handshake";
        if (status == 426) {
            extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
            msg = "WebSocket upgrade required (Sec-WebSocket-Version: 13)";
        } else if (status == 405) {
            extra = "Allow: GET\r\n";
            msg = "method not allowed";
        }
        rc_http_respond_error(s, c, status, msg, extra, false);
        return;
    }
    char accept[29];
    rc_ws_accept_key(hs.key, hs.key_len, accept);
    /* permessage-deflate: the first acceptable offer, or none (never a
     * failed handshake). */
    struct rc_pmd_params pmd = {0};
    char ext[160];
    bool deflate = s->cfg->deflate && rc_pmd_negotiate(req, &pmd, ext, sizeof ext) == 1;
    char resp[384];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s%s%s"
                     "Server: ringcast\r\n"
                     "\r\n",
                     accept, deflate ? "Sec-WebSocket-Extensions: " : "", deflate ? ext : "", deflate ? "\r\n" : "");
    struct rc_buf *b = rc_buf_new((size_t)n);
    if (!b) {
        rc_claims_free(claims);
        rc_conn_abort(s, c);
        return;
    }
    memcpy(b->data, resp, (size_t)n);
    b->len = (uint32_t)n;
    int ret = rc_conn_queue(s, c, b);
    rc_buf_unref(b);
    if (ret < 0) {
        rc_claims_free(claims);
        rc_conn_abort(s, c);
        return;
    }
    if (claims) s->claims[c->idx] = claims; /* freed with the connection */
    if (endpoint == RC_EP_WS) {
        if (s->nws == s->wscap) {
            uint32_t cap = s->wscap ? s->wscap * 2 : 256;
            struct rc_conn **v = realloc(s->wsconns, cap * sizeof *v);
            if (!v) {
                rc_conn_abort(s, c);
                return;
            }
            s->wsconns = v;
            s->wscap = cap;
        }
        c->ws_pos = s->nws;
        s->wsconns[s->nws++] = c;
        RC_METRIC_ADD(&s->metrics, ws_connections, 1);
    }
    c->state = RC_CONN_WS;
    c->endpoint = (uint8_t)endpoint;
    c->pmd_bits = deflate ? pmd.server_max_window_bits : 0;
    if (deflate && endpoint == RC_EP_WS) atomic_fetch_add(&s->srv->pmd_ws, 1);
    /* /echo takes messages up to --max-message-bytes; the client protocols'
     * messages are small control messages. */
    rc_ws_decoder_init(&c->dec, endpoint == RC_EP_ECHO ? s->cfg->max_message_bytes : s->cfg->max_client_message_bytes,
                       deflate);
    rc_conn_set_deadline(s, c, 0);
    RC_METRIC_ADD(&s->metrics, ws_upgrades_total, 1);
}

static bool is_post(const struct rc_http_request *req) {
    return rc_http_slice_eq(req->method, req->method_len, "POST");
}

/* ---- POST /api/v1/publish ---- */

/* Every item of a request, checked before any is published (all or nothing). */
struct publish_batch {
    struct rc_shard *s;
    struct rc_message *msgs;
    size_t n, cap;
    char *err;
    size_t errcap;
};

static int collect_item(void *arg, const struct rc_pub_item *it) {
    struct publish_batch *x = arg;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 16;
        struct rc_message *v = realloc(x->msgs, cap * sizeof *v);
        if (!v) return -ENOMEM;
        x->msgs = v;
        x->cap = cap;
    }
    struct rc_message *m = &x->msgs[x->n];
    *m = (struct rc_message){.topic = it->topic, .topic_len = it->topic_len, .data = it->data, .len = it->data_len,
                             .broadcast = it->broadcast};
    const char *why = rc_message_check(m, x->s->cfg->max_message_bytes);
    if (why) {
        snprintf(x->err, x->errcap, "item %zu: %s", x->n, why);
        return -EINVAL;
    }
    x->n++;
    return 0;
}

/* ---- publishing through Redis: the answer waits for Redis' ---- */

/*
 * With --redis a publish request is answered only when Redis has answered
 * every PUBLISH it made: 2xx means Redis took each message (and so every
 * node subscribed to its channel gets it). Meanwhile the request waits in
 * a slot here, named by the ticket each of its PUBLISHes carries on this
 * shard's own Redis link (no other thread is involved), and its
 * connection parses nothing more (rc_conn_http_hold), so pipelined
 * requests keep their order and one connection holds at most one slot.
 * Redis' answers are pipelined: the shard never blocks, and any number of
 * connections wait at once.
 */
struct rc_pubwait {
    uint32_t gen;       /* 24 bits, never 0 while in use; 0 = free */
    uint32_t next_free;
    uint32_t conn_idx, conn_gen;
    uint32_t owed;      /* answers still to come (+1 while the route is still sending) */
    uint32_t acked;     /* PUBLISHes Redis took */
    int status;         /* 200 until a PUBLISH fails: then its 503/504, the first one */
    bool keep_alive;
    bool ws_test;       /* answer in seed 001's test_response shape */
    char when[32];      /* /ws/test's timestamp */
    char err[200];      /* the first failure's words */
};

/* Seed 001's answer to POST /ws/test. */
static void respond_ws_test(struct rc_shard *s, struct rc_conn *c, const char *when, bool keep_alive) {
    char resp[160];
    int n = snprintf(resp, sizeof resp,
                     "{\"type\":\"test_response\",\"message\":\"Broadcast to all connected clients\",\"timestamp\":\"%s\"}",
                     when);
    rc_http_respond(s, c, 200, "application/json", NULL, resp, (size_t)n, keep_alive);
}

static uint64_t wait_ticket(const struct rc_shard *s, uint32_t slot) {
    return ((uint64_t)s->pubwaits[slot].gen << 32) | slot;
}

/* A free slot for a request of c, or UINT32_MAX when memory runs out. */
static uint32_t wait_new(struct rc_shard *s, struct rc_conn *c, const struct rc_http_request *req) {
    if (s->pubwaits_free == UINT32_MAX || !s->npubwaits) {
        uint32_t n = s->npubwaits ? s->npubwaits * 2 : 16;
        struct rc_pubwait *v = realloc(s->pubwaits, n * sizeof *v);
        if (!v) return UINT32_MAX;
        for (uint32_t i = s->npubwaits; i < n; i++)
            v[i] = (struct rc_pubwait){.next_free = i + 1 < n ? i + 1 : UINT32_MAX};
        s->pubwaits = v;
        s->pubwaits_free = s->npubwaits;
        s->npubwaits = n;
    }
    uint32_t slot = s->pubwaits_free;
    struct rc_pubwait *w = &s->pubwaits[slot];
    s->pubwaits_free = w->next_free;
    static _Thread_local uint32_t next_gen;
    next_gen = (next_gen + 1) & 0xffffff;
    if (!next_gen) next_gen = 1;
    *w = (struct rc_pubwait){.gen = next_gen, .conn_idx = c->idx, .conn_gen = c->gen, .status = 200,
                             .keep_alive = req->keep_alive};
    return slot;
}

static void wait_note(struct rc_pubwait *w, int status, const char *text, size_t len) {
    if (status == 200) {
        w->acked++;
        return;
    }
    if (w->status != 200) return; /* the first failure is the one reported */
    w->status = status;
    snprintf(w->err, sizeof w->err, "%.*s", (int)RC_MIN(len, sizeof w->err - 1), text ? text : "");
}

/* Every answer is in: the request's response (if its connection is still
 * there), and the slot is free again. */
static void wait_finish(struct rc_shard *s, uint32_t slot, bool held) {
    struct rc_pubwait *w = &s->pubwaits[slot];
    struct rc_conn *c = w->conn_idx < s->nslots ? s->conns[w->conn_idx] : NULL;
    if (c && c->gen == w->conn_gen && c->state == RC_CONN_HTTP && (!held || (c->flags & RC_CF_PUB_WAIT))) {
        if (w->status == 200 && w->ws_test) {
            respond_ws_test(s, c, w->when, w->keep_alive);
        } else if (w->status == 200) {
            char out[64];
            int n = snprintf(out, sizeof out, "{\"published\":%u}", w->acked);
            rc_http_respond(s, c, 200, "application/json", NULL, out, (size_t)n, w->keep_alive);
        } else {
            char esc[400], body[520];
            json_escape(w->err, esc, sizeof esc);
            int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"status\":%d,\"acknowledged\":%u}", esc, w->status,
                             w->acked);
            rc_http_respond(s, c, w->status, "application/json", w->status == 503 ? "Retry-After: 1\r\n" : NULL, body,
                            (size_t)n, w->keep_alive);
        }
        if (held) rc_conn_http_release(s, c);
    }
    w->gen = 0;
    w->next_free = s->pubwaits_free;
    s->pubwaits_free = slot;
}

void rc_publish_answered(struct rc_shard *s, uint64_t ticket, int status, const char *text, size_t len) {
    uint32_t slot = (uint32_t)ticket, gen = (uint32_t)(ticket >> 32) & 0xffffff;
    if (slot >= s->npubwaits || s->pubwaits[slot].gen != gen || !s->pubwaits[slot].owed) return;
    struct rc_pubwait *w = &s->pubwaits[slot];
    wait_note(w, status, text, len);
    if (--w->owed == 0) wait_finish(s, slot, true);
}

void rc_publish_waits_free(struct rc_shard *s) {
    free(s->pubwaits);
    s->pubwaits = NULL;
    s->npubwaits = 0;
    s->pubwaits_free = UINT32_MAX;
}

/* Publishes msgs[0..n) through Redis for the request on c; answers when
 * Redis has answered them all (at once when the link is down). */
static void publish_via_redis(struct rc_shard *s, struct rc_conn *c, const struct rc_http_request *req,
                              struct rc_message *msgs, size_t n, const char *when) {
    if (!atomic_load_explicit(&s->srv->redis_up, memory_order_relaxed) || !rc_redis_up(s->redis)) {
        RC_METRIC_ADD(&s->metrics, redis_publish_rejected_total, n);
        rc_http_respond_error(s, c, 503, "redis unavailable: nothing was published", "Retry-After: 1\r\n",
                              req->keep_alive);
        return;
    }
    uint32_t slot = wait_new(s, c, req);
    if (slot == UINT32_MAX) {
        rc_http_respond_error(s, c, 503, "out of memory: nothing was published", "Retry-After: 1\r\n", req->keep_alive);
        return;
    }
    struct rc_pubwait *w = &s->pubwaits[slot];
    w->ws_test = when != NULL;
    if (when) snprintf(w->when, sizeof w->when, "%s", when);
    w->owed = (uint32_t)n + 1; /* + this function's own hold: no answer can finish the request under it */
    uint64_t ticket = wait_ticket(s, slot);
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL; /* every message was checked: the link answers each one, maybe at once */
        if (rc_shard_redis_publish(s, &msgs[i], ticket, &why) < 0) rc_publish_answered(s, ticket, 503, why, strlen(why));
    }
    if (--w->owed == 0) { /* every PUBLISH was refused before it left: answered now */
        wait_finish(s, slot, false);
        return;
    }
    rc_conn_http_hold(s, c);
}

/* A publish that arrives during the drain would land in a window nobody
 * delivers: it is refused, never answered 2xx. */
static bool refuse_while_draining(struct rc_shard *s, struct rc_conn *c) {
    if (!s->draining) return false;
    rc_http_respond_error(s, c, 503, "server shutting down: nothing was published", "Retry-After: 1\r\n", false);
    return true;
}

/* Whether this publish may go on; if not, answered (401/403/415). */
static bool publish_allowed(struct rc_shard *s, struct rc_conn *c, const struct rc_http_request *req, size_t body_len) {
    const char *why = NULL;
    int status = rc_trust_publish(s, c, req, body_len, &why);
    if (!status) return true;
    RC_METRIC_ADD(&s->metrics, publish_denied_total, 1);
    rc_http_respond_error(s, c, status, why, status == 401 ? "WWW-Authenticate: Bearer realm=\"ringcast\"\r\n" : NULL,
                          req->keep_alive);
    return false;
}

static void route_publish(struct rc_shard *s, struct rc_conn *c, const struct rc_http_request *req,
                          const uint8_t *body, size_t body_len) {
    if (!publish_allowed(s, c, req, body_len) || refuse_while_draining(s, c)) return;
    char err[200];
    struct publish_batch x = {.s = s, .err = err, .errcap = sizeof err};
    ssize_t n = rc_publish_parse((const char *)body, body_len, RC_PUBLISH_MAX_ITEMS, collect_item, &x, err, sizeof err);
    if (n >= 0 && s->srv->redis) {
        publish_via_redis(s, c, req, x.msgs, x.n, NULL);
        goto out;
    }
    for (size_t i = 0; n >= 0 && i < x.n; i++) {
        const char *why = NULL;
        int r = rc_shard_publish(s, &x.msgs[i], &why);
        if (r < 0) n = r;
    }
    if (n == -ENOMEM) {
        rc_http_respond_error(s, c, 503, "out of memory: not all messages were published", NULL, req->keep_alive);
    } else if (n < 0) {
        rc_http_respond_error(s, c, 400, err, NULL, req->keep_alive);
    } else {
        char out[64];
        int len = snprintf(out, sizeof out, "{\"published\":%zd}", n);
        rc_http_respond(s, c, 200, "application/json", NULL, out, (size_t)len, req->keep_alive);
    }
out:
    free(x.msgs);
}

/* ---- POST /ws/test (seed 001): broadcast a test message to every client ---- */

static void route_ws_test(struct rc_shard *s, struct rc_conn *c, const struct rc_http_request *req,
                          const uint8_t *body, size_t body_len) {
    char when[32];
    if (!publish_allowed(s, c, req, body_len) || refuse_while_draining(s, c)) return;
    rc_iso8601_now(when);
    const char *message = "test";
    cJSON *root = NULL;
    if (body_len) {
        root = cJSON_ParseWithLength((const char *)body, body_len);
        if (!root || !cJSON_IsObject(root)) {
            cJSON_Delete(root);
            rc_http_respond_error(s, c, 400, "body must be a JSON object such as {\"message\":\"Hello\"}", NULL,
                                  req->keep_alive);
            return;
        }
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
        if (m && !cJSON_IsString(m)) {
            cJSON_Delete(root);
            rc_http_respond_error(s, c, 400, "\"message\" must be a string", NULL, req->keep_alive);
            return;
        }
        if (m) message = m->valuestring;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "type", "test");
    cJSON_AddStringToObject(out, "message", message);
    cJSON_AddStringToObject(out, "timestamp", when);
    char *text = cJSON_PrintUnformatted(out);
    const char *why = NULL;
    struct rc_message msg = {.data = text, .len = text ? strlen(text) : 0, .broadcast = true};
    int ret = !text ? -ENOMEM : (why = rc_message_check(&msg, s->cfg->max_message_bytes)) ? -EINVAL : 0;
    if (ret == 0 && s->srv->redis)
        publish_via_redis(s, c, req, &msg, 1, when);
    else if (ret == 0)
        ret = rc_shard_publish(s, &msg, &why);
    free(text);
    cJSON_Delete(out);
    cJSON_Delete(root);
    if (ret == -EINVAL) {
        char err[200];
        snprintf(err, sizeof err, "\"message\": %s", why);
        rc_http_respond_error(s, c, 400, err, NULL, req->keep_alive);
        return;
    }
    if (ret < 0) {
        rc_http_respond_error(s, c, 503, "out of memory", NULL, req->keep_alive);
        return;
    }
    if (s->srv->redis) return; /* answered by publish_via_redis, now or when Redis has */
    respond_ws_test(s, c, when, req->keep_alive);
}

/* ---- GET /metrics (Prometheus text) ---- */

static void route_metrics(struct rc_shard *s, struct rc_conn *c, const struct rc_http_request *req) {
    /* Room for every metric with its HELP and TYPE lines: they are listed
     * at compile time, so the bound is too. */
    size_t cap = 512 * (sizeof(struct rc_metrics) / sizeof(uint64_t) + 1);
    char *out = malloc(cap);
    if (!out) {
        rc_conn_abort(s, c);
        return;
    }
    size_t len = 0;
    struct rc_server *srv = s->srv;
#define RC_METRIC_TEXT(kind, name, help)                                                     \
    {                                                                                        \
        uint64_t sum = 0;                                                                    \
        for (unsigned i = 0; i < srv->nshards; i++) sum += RC_METRIC_GET(&srv->shards[i].metrics, name); \
        int w = snprintf(out + len, cap - len,                                               \
                         "# HELP ringcast_" #name " " help "\n# TYPE ringcast_" #name " " #kind \
                         "\nringcast_" #name " %llu\n",                                      \
                         (unsigned long long)sum);                                           \
        if (w > 0 && (size_t)w < cap - len) len += (size_t)w;                                \
    }
    RC_METRICS(RC_METRIC_TEXT)
#undef RC_METRIC_TEXT
    int w = snprintf(out + len, cap - len, "# HELP ringcast_shards shard threads\n# TYPE ringcast_shards gauge\nringcast_shards %u\n", srv->nshards);
    if (w > 0 && (size_t)w < cap - len) len += (size_t)w;
    rc_http_respond(s, c, 200, "text/plain; version=0.0.4", NULL, out, len, req->keep_alive);
    free(out);
}

static bool is_get(const struct rc_http_request *req) {
    return rc_http_slice_eq(req->method, req->method_len, "GET");
}

/*
 * Two listeners, two audiences. The client port (--listen, --tls-listen)
 * serves what clients and publishers need: the WebSocket paths, publish,
 * and /healthz (/health for seed 003). The admin port (--admin-listen)
 * serves the operator: /metrics, the probes, the dashboard and its /ws
 * (same-origin, --admin-token, subscriptions unrestricted), publish.
 */
void rc_http_route(struct rc_shard *s, struct rc_conn *c, const struct rc_http_request *req,
                   const uint8_t *body, size_t body_len) {
    const char *path = req->path;
    size_t plen = req->path_len;
    bool admin = c->flags & RC_CF_ADMIN;

    RC_METRIC_ADD(&s->metrics, http_requests_total, 1);
    if (rc_http_slice_eq(path, plen, "/ws")) { /* on the admin port: the dashboard's live view */
        ws_upgrade(s, c, req, RC_EP_WS);
        return;
    }
    if (!admin && s->cfg->echo && rc_http_slice_eq(path, plen, "/echo")) {
        ws_upgrade(s, c, req, RC_EP_ECHO);
        return;
    }
    if (rc_http_slice_eq(path, plen, "/api/v1/publish")) {
        if (!is_post(req)) goto post_only;
        route_publish(s, c, req, body, body_len);
        return;
    }
    if (rc_http_slice_eq(path, plen, "/ws/test")) {
        if (!is_post(req)) goto post_only;
        route_ws_test(s, c, req, body, body_len);
        return;
    }
    if (rc_http_slice_eq(path, plen, "/healthz") || rc_http_slice_eq(path, plen, "/health")) {
        if (!is_get(req)) goto not_allowed;
        respond_json(s, c, 200, "{\"status\":\"ok\"}", req);
        return;
    }
    if (!admin) goto not_found;
    if (rc_http_slice_eq(path, plen, "/")) {
        if (!is_get(req)) goto not_allowed;
        if (rc_trust_admin(s, req)) goto unauthorized;
        rc_http_respond(s, c, 200, "text/html; charset=utf-8", "Cache-Control: no-cache\r\n", rc_dashboard_html,
                        rc_dashboard_html_len, req->keep_alive);
        return;
    }
    if (rc_http_slice_eq(path, plen, "/metrics")) {
        if (!is_get(req)) goto not_allowed;
        if (rc_trust_admin(s, req)) goto unauthorized;
        route_metrics(s, c, req);
        return;
    }
    if (rc_http_slice_eq(path, plen, "/readyz")) {
        if (!is_get(req)) goto not_allowed;
        enum rc_redis_health h;
        if (atomic_load_explicit(&s->srv->draining, memory_order_relaxed))
            respond_json(s, c, 503, "{\"ready\":false,\"reason\":\"draining\"}", req);
        else if (s->srv->redis && (h = rc_redis_node_health(s->srv)) != RC_REDIS_READY) {
            static const char *const why[] = {[RC_REDIS_DOWN] = "redis unavailable", [RC_REDIS_STALLED] = "redis stalled",
                                              [RC_REDIS_REFUSING] = "redis refusing publishes"};
            char out[96];
            snprintf(out, sizeof out, "{\"ready\":false,\"reason\":\"%s\"}", why[h]);
            respond_json(s, c, 503, out, req);
        } else
            respond_json(s, c, 200, "{\"ready\":true}", req);
        return;
    }
not_found:
    rc_http_respond_error(s, c, 404, "not found", NULL, req->keep_alive);
    return;

unauthorized:
    rc_http_respond_error(s, c, 401, "this endpoint needs the admin token (Authorization: Bearer TOKEN, X-API-Key or ?token=)",
                          "WWW-Authenticate: Bearer realm=\"ringcast admin\"\r\n", req->keep_alive);
    return;
not_allowed:
    rc_http_respond_error(s, c, 405, "method not allowed", "Allow: GET\r\n", req->keep_alive);
    return;
post_only:
    rc_http_respond_error(s, c, 405, "method not allowed: use POST", "Allow: POST\r\n", req->keep_alive);
}
