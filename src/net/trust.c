/*
 * trust.c — who may do what, decided in one place: publishing (tokens, or
 * loopback only), operator endpoints (--admin-token), browser origins
 * (--allowed-origins), client tokens on the WebSocket upgrade (HS256 JWT,
 * --jwt-secret) and what they open (--private-topics, --firehose).
 *
 * Place in the data flow: routes.c asks before any publish, operator
 * endpoint or upgrade is served; conn.c asks before a subscription is
 * made. Every answer is an HTTP status (0 = allowed) or a reason for the
 * client's `error` message; the callers only relay it.
 *
 * The secrets and lists are built by the main thread at start and on
 * SIGHUP (the publish token file); shards read them. A reloaded token set
 * replaces the current one through an atomic pointer; retired sets are
 * kept until the server is destroyed (a few hundred bytes per reload), so
 * a shard comparing against one never reads freed memory.
 *
 * Thread: rc_trust_init/reload/free on the main thread; the checks on any
 * shard.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "shard.h"
#include "ringcast/auth.h"
#include "ringcast/util.h"

struct retired {
    struct retired *next;
    struct rc_token_set *set;
};

struct rc_trust {
    _Atomic(struct rc_token_set *) publish; /* flag and file tokens; NULL = none configured */
    struct retired *retired;
    struct rc_token_set *admin;              /* NULL = operator endpoints open */
    struct rc_globs origins;                 /* --allowed-origins; n == 0: unset */
    bool any_origin;                         /* "*" among them */
    struct rc_globs private_topics;
    const char *jwt_secret;
    size_t jwt_secret_len;
};

/* The publish tokens of the flag (and the environment) and the file. */
static struct rc_token_set *load_publish_tokens(const struct rc_config *cfg, char *err, size_t errcap) {
    struct rc_token_set *ts = rc_token_set_new();
    if (!ts) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    if (cfg->publish_token && rc_token_set_add_list(ts, cfg->publish_token) < 0) {
        snprintf(err, errcap, "--publish-token: a token is empty, longer than %d bytes, or holds a space or a control "
                              "character", RC_TOKEN_MAX);
        rc_token_set_free(ts);
        return NULL;
    }
    if (cfg->publish_token_file && rc_token_set_load_file(ts, cfg->publish_token_file, err, errcap) < 0) {
        rc_token_set_free(ts);
        return NULL;
    }
    return ts;
}

int rc_trust_init(struct rc_server *srv, char *err, size_t errcap) {
    const struct rc_config *cfg = &srv->cfg;
    struct rc_trust *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errcap, "out of memory");
        return -ENOMEM;
    }
    srv->trust = t;
    if (cfg->publish_token || cfg->publish_token_file) {
        struct rc_token_set *ts = load_publish_tokens(cfg, err, errcap);
        if (!ts) return -EINVAL;
        atomic_store(&t->publish, ts);
    }
    if (cfg->admin_token) {
        if (!(t->admin = rc_token_set_new()) || rc_token_set_add_list(t->admin, cfg->admin_token) < 0) {
            snprintf(err, errcap, "--admin-token: a token is empty, longer than %d bytes, or holds a space or a "
                                  "control character", RC_TOKEN_MAX);
            return -EINVAL;
        }
    }
    if (cfg->allowed_origins) {
        if (rc_globs_parse(&t->origins, cfg->allowed_origins) < 0) {
            snprintf(err, errcap, "--allowed-origins: an entry is empty");
            return -EINVAL;
        }
        for (size_t i = 0; i < t->origins.n; i++) {
            const char *o = t->origins.pat[i];
            if (!strcmp(o, "*")) {
                t->any_origin = true;
                continue;
            }
            const char *star = strchr(o, '*');
            bool ok = strncasecmp(o, "http://", 7) == 0 || strncasecmp(o, "https://", 8) == 0 || !strcmp(o, "null");
            if (star && (strchr(star + 1, '*') || star[-1] != '/' || star[1] != '.')) ok = false;
            if (!ok) {
                snprintf(err, errcap,
                         "--allowed-origins: \"%s\" is not an origin (scheme://host[:port], https://*.domain, null or *)",
                         o);
                return -EINVAL;
            }
        }
    }
    if (cfg->private_topics && rc_globs_parse(&t->private_topics, cfg->private_topics) < 0) {
        snprintf(err, errcap, "--private-topics: an entry is empty");
        return -EINVAL;
    }
    if (cfg->jwt_secret) {
        t->jwt_secret = cfg->jwt_secret;
        t->jwt_secret_len = strlen(cfg->jwt_secret);
    }
    /* What an operator must know at start. */
    if (!cfg->publish_token && !cfg->publish_token_file && !cfg->publish_open)
        RC_WARN("no --publish-token: publishing is accepted only from loopback (127.0.0.0/8, ::1); give "
                "--publish-token (or --publish-token-file) to publish from elsewhere, or --publish-open");
    else if (cfg->publish_open && !cfg->publish_token && !cfg->publish_token_file)
        RC_WARN("--publish-open: anyone who reaches a listener may publish, without a token");
    else
        RC_INFO("publishing needs one of %zu token%s", rc_token_set_count(atomic_load(&t->publish)),
                rc_token_set_count(atomic_load(&t->publish)) == 1 ? "" : "s");
    return 0;
}

int rc_trust_reload(struct rc_server *srv) {
    struct rc_trust *t = srv->trust;
    const struct rc_config *cfg = &srv->cfg;
    if (!t || !cfg->publish_token_file) return 0;
    char err[300];
    struct rc_token_set *ts = load_publish_tokens(cfg, err, sizeof err);
    struct retired *r = ts ? malloc(sizeof *r) : NULL;
    if (!r) {
        RC_ERROR("SIGHUP: publish tokens not reloaded, the current ones stay: %s", ts ? "out of memory" : err);
        rc_token_set_free(ts);
        return -EINVAL;
    }
    r->set = atomic_exchange(&t->publish, ts);
    r->next = t->retired;
    t->retired = r;
    RC_INFO("SIGHUP: reloaded %s: publishing needs one of %zu tokens", cfg->publish_token_file,
            rc_token_set_count(ts));
    return 0;
}

void rc_trust_free(struct rc_server *srv) {
    struct rc_trust *t = srv->trust;
    if (!t) return;
    rc_token_set_free(atomic_load(&t->publish));
    for (struct retired *r = t->retired, *next; r; r = next) {
        next = r->next;
        rc_token_set_free(r->set);
        free(r);
    }
    rc_token_set_free(t->admin);
    rc_globs_free(&t->origins);
    rc_globs_free(&t->private_topics);
    free(t);
    srv->trust = NULL;
}

/* ---- credentials in a request ---- */

/* The token of "Authorization: Bearer T" or "X-API-Key: T"; NULL when none. */
static const char *presented_token(const struct rc_http_request *req, size_t *len) {
    const struct rc_http_header *h = rc_http_find_header(req, "authorization");
    if (h && h->value_len > 7 && !strncasecmp(h->value, "bearer ", 7)) {
        const char *v = h->value + 7;
        size_t n = h->value_len - 7;
        while (n && *v == ' ') v++, n--;
        *len = n;
        return v;
    }
    h = rc_http_find_header(req, "x-api-key");
    if (h && h->value_len) {
        *len = h->value_len;
        return h->value;
    }
    return NULL;
}

/* The value of query parameter `name` (raw, not percent-decoded: tokens
 * are base64url and dots); NULL when absent. */
static const char *query_param(const struct rc_http_request *req, const char *name, size_t *len) {
    size_t nl = strlen(name);
    const char *q = req->query, *end = req->query + req->query_len;
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - q) > nl && !memcmp(q, name, nl) && q[nl] == '=') {
            *len = (size_t)(stop - q - nl - 1);
            return q + nl + 1;
        }
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static bool addr_is_loopback(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) return false;
    if (ss.ss_family == AF_INET) return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family != AF_INET6) return false;
    const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a)) return true;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}

/* Asked once per connection: the peer does not change. */
static bool peer_is_loopback(struct rc_conn *c) {
    if (!(c->flags & RC_CF_PEER_KNOWN))
        c->flags |= RC_CF_PEER_KNOWN | (addr_is_loopback(c->fd) ? RC_CF_PEER_LOOPBACK : 0);
    return c->flags & RC_CF_PEER_LOOPBACK;
}

/* ---- origins ---- */

static bool origin_matches(const char *pat, size_t plen, const char *o, size_t olen) {
    const char *star = memchr(pat, '*', plen);
    if (!star) return plen == olen && !strncasecmp(pat, o, olen);
    /* scheme://*.domain[:port]: one or more host labels in front of .domain */
    size_t pre = (size_t)(star - pat), post = plen - pre - 1;
    if (olen <= pre + post || strncasecmp(o, pat, pre) || strncasecmp(o + olen - post, star + 1, post)) return false;
    for (size_t i = pre; i < olen - post; i++)
        if (!isalnum((unsigned char)o[i]) && o[i] != '-' && o[i] != '.') return false;
    return true;
}

/* Whether every Origin header of req is allowed (none: yes). With
 * --allowed-origins unset, `unset_allows` decides. */
static bool origins_ok(const struct rc_trust *t, const struct rc_http_request *req, bool unset_allows) {
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct rc_http_header *h = &req->headers[i];
        if (h->name_len != 6 || strncasecmp(h->name, "origin", 6)) continue;
        if (t->any_origin || (!t->origins.n && unset_allows)) continue;
        bool ok = false;
        for (size_t k = 0; k < t->origins.n && !ok; k++)
            ok = origin_matches(t->origins.pat[k], t->origins.len[k], h->value, h->value_len);
        if (!ok) return false;
    }
    return true;
}

/* ---- the checks ---- */

int rc_trust_publish(const struct rc_shard *s, struct rc_conn *c, const struct rc_http_request *req,
                     size_t body_len, const char **why) {
    struct rc_trust *t = s->srv->trust;
    if (!origins_ok(t, req, false)) {
        *why = "publishing from a browser page of this origin is not allowed (--allowed-origins)";
        return 403;
    }
    struct rc_token_set *ts = atomic_load_explicit(&t->publish, memory_order_acquire);
    if (ts) {
        size_t len = 0;
        const char *tok = presented_token(req, &len);
        if (!tok || !rc_token_set_match(ts, tok, len)) {
            *why = tok ? "invalid publish token" : "a publish token is required (Authorization: Bearer TOKEN or X-API-Key: TOKEN)";
            return 401;
        }
    } else if (!s->cfg->publish_open && !peer_is_loopback(c)) {
        *why = "publishing is accepted only from loopback on this server (no --publish-token is configured)";
        return 403;
    }
    if (body_len) {
        const struct rc_http_header *h = rc_http_find_header(req, "content-type");
        bool json = h && h->value_len >= 16 && !strncasecmp(h->value, "application/json", 16) &&
                    (h->value_len == 16 || h->value[16] == ';' || h->value[16] == ' ' || h->value[16] == '\t');
        if (!json) {
            *why = "the body must be sent as Content-Type: application/json";
            return 415;
        }
    }
    return 0;
}

int rc_trust_admin(const struct rc_shard *s, const struct rc_http_request *req) {
    const struct rc_trust *t = s->srv->trust;
    if (!t->admin) return 0;
    size_t len = 0;
    const char *tok = presented_token(req, &len);
    if (!tok) tok = query_param(req, "token", &len); /* a browser opening the dashboard */
    return tok && rc_token_set_match(t->admin, tok, len) ? 0 : 401;
}

int rc_trust_admin_upgrade(const struct rc_shard *s, const struct rc_http_request *req, char *why, size_t whycap) {
    if (rc_trust_admin(s, req)) {
        snprintf(why, whycap, "the admin listener's /ws needs the admin token (?token=)");
        return 401;
    }
    /* Same origin only: no other page the operator's browser has open may
     * read the unrestricted stream of 127.0.0.1:9090. */
    const struct rc_http_header *host = rc_http_find_header(req, "host");
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct rc_http_header *h = &req->headers[i];
        if (h->name_len != 6 || strncasecmp(h->name, "origin", 6)) continue;
        const char *v = h->value;
        size_t n = h->value_len, skip = n > 7 && !strncasecmp(v, "http://", 7) ? 7 : n > 8 && !strncasecmp(v, "https://", 8) ? 8 : 0;
        if (!skip || !host || n - skip != host->value_len || strncasecmp(v + skip, host->value, host->value_len)) {
            snprintf(why, whycap, "origin not allowed: the admin listener's /ws is for its own dashboard");
            return 403;
        }
    }
    return 0;
}

int rc_trust_upgrade(const struct rc_shard *s, const struct rc_http_request *req, struct rc_claims **claims,
                     char *why, size_t whycap) {
    const struct rc_trust *t = s->srv->trust;
    *claims = NULL;
    if (!origins_ok(t, req, true)) {
        snprintf(why, whycap, "origin not allowed");
        return 403;
    }
    size_t len = 0;
    const char *tok = query_param(req, "token", &len);
    if (!tok) tok = presented_token(req, &len);
    if (!tok || !len) return 0; /* anonymous: the public topics */
    if (!t->jwt_secret) return 0; /* tokens mean nothing here: ignored, as before they existed */
    char err[120];
    int r = rc_jwt_verify(tok, len, t->jwt_secret, t->jwt_secret_len, (int64_t)time(NULL), claims, err, sizeof err);
    if (r < 0) {
        snprintf(why, whycap, "invalid token: %s", err);
        return r == -ENOMEM ? 503 : 401;
    }
    return 0;
}

const char *rc_trust_subscribe(const struct rc_shard *s, const struct rc_claims *claims, const char *topic,
                               size_t len) {
    const struct rc_trust *t = s->srv->trust;
    bool firehose = len == 1 && topic[0] == '*';
    int64_t exp = claims ? rc_claims_exp(claims) : 0;
    bool valid = claims && (!exp || exp > (int64_t)time(NULL));
    if (firehose) {
        if (s->cfg->firehose == RC_FIREHOSE_DENY) return "the firehose (\"*\", subscribe_all) is disabled on this server";
        /* With private topics the firehose would carry them: only a token
         * that covers everything opens it. */
        if (s->cfg->firehose == RC_FIREHOSE_TOKEN || t->private_topics.n) {
            if (!valid || !rc_claims_cover(claims, "*", 1))
                return "the firehose (\"*\", subscribe_all) needs a token whose topics claim has \"*\"";
        }
        return NULL;
    }
    if (t->private_topics.n && rc_globs_match(&t->private_topics, topic, len)) {
        if (!claims) return "private topic: connect with a token (?token=…) whose topics claim covers it";
        if (!valid) return "private topic: your token has expired; reconnect with a fresh one";
        if (!rc_claims_cover(claims, topic, len)) return "private topic: your token's topics claim does not cover it";
    }
    return NULL;
}
