/*
 * pmd.c — permessage-deflate negotiation (RFC 7692 §5, §7.1): reads the
 * client's Sec-WebSocket-Extensions offers and writes the server's answer.
 *
 * Place in the data flow: the router in src/net calls rc_pmd_negotiate()
 * on an upgrade request that rc_ws_handshake_check() accepted; a return of
 * 1 adds "Sec-WebSocket-Extensions: <resp>" to the 101 response and marks
 * the connection compressed, with out->server_max_window_bits for
 * rc_deflate_message().
 *
 * What we answer, and why (see include/ringcast/pmd.h): always
 * server_no_context_takeover (one compressed payload serves every
 * subscriber) and client_no_context_takeover (one inflater per shard, no
 * per-connection window). server_max_window_bits is echoed as offered (we
 * can compress within 2^8..2^15, src/ws/deflate.c). client_max_window_bits
 * is never sent: the client then keeps a window of at most 2^15, which our
 * 32 KiB inflater reads.
 *
 * Owns nothing, allocates nothing, keeps no state: any thread may call it.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ringcast/pmd.h"

/* ---- RFC 7230 token / quoted-string --------------------------------------- */

static bool is_tchar(unsigned char c)
{
    /* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
     *         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* A slice of the header value. */
struct span {
    const char *p;
    size_t n;
};

struct cursor {
    const char *p, *end;
};

static void skip_ows(struct cursor *c)
{
    while (c->p < c->end && is_ows((unsigned char)*c->p))
        c->p++;
}

static bool take(struct cursor *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool parse_token(struct cursor *c, struct span *tok)
{
    tok->p = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    tok->n = (size_t)(c->p - tok->p);
    return tok->n > 0;
}

/* Values we can use are 1-2 digits; longer ones are kept only as "too long". */
#define VALUE_MAX 8

struct value {
    char buf[VALUE_MAX];
    size_t n;  /* length after unescaping (may exceed VALUE_MAX) */
};

static void value_push(struct value *v, char ch)
{
    if (v->n < VALUE_MAX)
        v->buf[v->n] = ch;
    v->n++;
}

/*
 * value = token / quoted-string. A quoted-string's content, unescaped, must
 * itself be a token (RFC 6455 §9.1); otherwise the header is malformed.
 */
static bool parse_value(struct cursor *c, struct value *v)
{
    v->n = 0;
    if (!take(c, '"')) {
        struct span tok;
        if (!parse_token(c, &tok))
            return false;
        for (size_t i = 0; i < tok.n; i++)
            value_push(v, tok.p[i]);
        return true;
    }
    for (;;) {
        if (c->p >= c->end)
            return false; /* unterminated */
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"')
            break;
        if (ch == '\\') {
            if (c->p >= c->end)
                return false;
            ch = (unsigned char)*c->p++;
        }
        /* Whatever qdtext / quoted-pair allow, only tchars make a token. */
        if (!is_tchar(ch))
            return false;
        value_push(v, (char)ch);
    }
    return v->n > 0;
}

static bool span_ieq(struct span s, const char *lit)
{
    return strlen(lit) == s.n && strncasecmp(s.p, lit, s.n) == 0;
}

/* 8..15 written plainly: no sign, no leading zero. Returns 0 when not. */
static unsigned window_bits_value(const struct value *v)
{
    if (v->n == 1 && (v->buf[0] == '8' || v->buf[0] == '9'))
        return (unsigned)(v->buf[0] - '0');
    if (v->n == 2 && v->buf[0] == '1' && v->buf[1] >= '0' && v->buf[1] <= '5')
        return 10u + (unsigned)(v->buf[1] - '0');
    return 0;
}

/* ---- offers ------------------------------------------------------------------ */

enum pmd_param { SERVER_NCT, CLIENT_NCT, SERVER_MWB, CLIENT_MWB, NUM_PARAMS };

static const char *const param_names[NUM_PARAMS] = {
    [SERVER_NCT] = "server_no_context_takeover",
    [CLIENT_NCT] = "client_no_context_takeover",
    [SERVER_MWB] = "server_max_window_bits",
    [CLIENT_MWB] = "client_max_window_bits",
};

struct offer {
    bool is_pmd;             /* the extension token is permessage-deflate */
    bool declined;           /* some parameter makes it unacceptable */
    bool seen[NUM_PARAMS];
    unsigned server_bits;    /* 0 when server_max_window_bits was not offered */
};

static void offer_param(struct offer *o, struct span name, bool has_value, const struct value *v)
{
    enum pmd_param p = 0;
    while (p < NUM_PARAMS && !span_ieq(name, param_names[p]))
        p++;
    if (p == NUM_PARAMS || o->seen[p]) {
        o->declined = true; /* an unknown parameter, or one twice (§5.1) */
        return;
    }
    o->seen[p] = true;

    switch (p) {
    case SERVER_NCT:
    case CLIENT_NCT:
        if (has_value)
            o->declined = true; /* §7.1.1.1, §7.1.1.2: no value */
        break;
    case SERVER_MWB:
        o->server_bits = has_value ? window_bits_value(v) : 0;
        if (o->server_bits == 0)
            o->declined = true; /* §7.1.2.1: a value, 8..15 */
        break;
    case CLIENT_MWB:
        if (has_value && window_bits_value(v) == 0)
            o->declined = true; /* §7.1.2.2: no value, or 8..15 */
        break;
    case NUM_PARAMS:
        break;
    }
}

/*
 * Walks one header value: extension *( "," extension ), empty elements and
 * OWS allowed (RFC 7230 §7). Returns false when the value is malformed;
 * otherwise true, with *found set when an acceptable permessage-deflate
 * offer was seen (the first one lands in *best).
 */
static bool scan_header(const char *value, size_t len, bool *found, struct offer *best)
{
    struct cursor c = {value, value + len};
    *found = false;

    for (;;) {
        skip_ows(&c);
        if (c.p >= c.end)
            return true;
        if (take(&c, ','))
            continue; /* empty list element */

        struct span name;
        if (!parse_token(&c, &name))
            return false;
        struct offer o = {.is_pmd = span_ieq(name, "permessage-deflate")};

        skip_ows(&c);
        while (take(&c, ';')) {
            struct span pname;
            struct value v = {.n = 0};
            bool has_value = false;

            skip_ows(&c);
            if (!parse_token(&c, &pname))
                return false;
            skip_ows(&c);
            if (take(&c, '=')) {
                skip_ows(&c);
                if (!parse_value(&c, &v))
                    return false;
                has_value = true;
                skip_ows(&c);
            }
            if (o.is_pmd)
                offer_param(&o, pname, has_value, &v);
        }
        if (c.p < c.end && !take(&c, ','))
            return false; /* junk after the extension */

        if (o.is_pmd && !o.declined && !*found) {
            *found = true;
            *best = o;
        }
    }
}

int rc_pmd_negotiate(const struct rc_http_request *req, struct rc_pmd_params *out, char *resp, size_t cap)
{
    if (!req)
        return 0;
    for (size_t i = 0; i < req->num_headers && i < RC_HTTP_MAX_HEADERS; i++) {
        const struct rc_http_header *h = &req->headers[i];
        if (!span_ieq((struct span){h->name, h->name_len}, "Sec-WebSocket-Extensions"))
            continue;

        bool found;
        struct offer o;
        if (!h->value || !scan_header(h->value, h->value_len, &found, &o) || !found)
            continue; /* malformed: everything in it declined; or nothing acceptable */

        int n;
        if (o.server_bits)
            n = snprintf(resp, cap,
                         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                         "server_max_window_bits=%u",
                         o.server_bits);
        else
            n = snprintf(resp, cap, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        if (n < 0 || (size_t)n >= cap) {
            /* No room for the answer: run uncompressed rather than send half of it. */
            if (resp && cap)
                resp[0] = '\0';
            return 0;
        }
        if (out)
            out->server_max_window_bits = (uint8_t)(o.server_bits ? o.server_bits : 15);
        return 1;
    }
    return 0;
}
