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

#include "shard.h"
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

void rc_http_respond_error(struct rc_shard *s, struct rc_conn *c, int status, const char *message,
                           const char *extra_headers, bool keep_alive) {
    char body[512];
    char esc[400];
    size_t k = 0;
    for (const char *p = message; *p && k < sizeof esc - 2; p++) {
        if (*p == '"' || *p == '\\') esc[k++] = '\\';
        if ((unsigned char)*p >= 0x20) esc[k++] = *p;
    }
    esc[k] = 0;
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
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "Server: ringcast\r\n"
                     "\r\n",
                     accept);
    struct rc_buf *b = rc_buf_new((size_t)n);
    if (!b) {
        rc_conn_abort(s, c);
        return;
    }
    memcpy(b->data, resp, (size_t)n);
    b->len = (uint32_t)n;
    int ret = rc_conn_queue(s, c, b);
    rc_buf_unref(b);
    if (ret < 0) {
        rc_conn_abort(s, c);
        return;
    }
    c->state = RC_CONN_WS;
    c->endpoint = (uint8_t)endpoint;
    rc_ws_decoder_init(&c->dec, s->cfg->max_message_bytes, false);
    rc_conn_set_deadline(s, c, 0);
}

static bool is_get(const struct rc_http_request *req) {
    return rc_http_slice_eq(req->method, req->method_len, "GET");
}

void rc_http_route(struct rc_shard *s, struct rc_conn *c, const struct rc_http_request *req,
                   const uint8_t *body, size_t body_len) {
    (void)body;
    (void)body_len;
    const char *path = req->path;
    size_t plen = req->path_len;

    if (s->cfg->echo && rc_http_slice_eq(path, plen, "/echo")) {
        ws_upgrade(s, c, req, RC_EP_ECHO);
        return;
    }
    if (rc_http_slice_eq(path, plen, "/healthz")) {
        if (!is_get(req)) goto not_allowed;
        respond_json(s, c, 200, "{\"status\":\"ok\"}", req);
        return;
    }
    if (rc_http_slice_eq(path, plen, "/readyz")) {
        if (!is_get(req)) goto not_allowed;
        if (atomic_load_explicit(&s->srv->draining, memory_order_relaxed))
            respond_json(s, c, 503, "{\"ready\":false,\"reason\":\"draining\"}", req);
        else
            respond_json(s, c, 200, "{\"ready\":true}", req);
        return;
    }
    rc_http_respond_error(s, c, 404, "not found", NULL, req->keep_alive);
    return;

not_allowed:
    rc_http_respond_error(s, c, 405, "method not allowed", "Allow: GET\r\n", req->keep_alive);
}
