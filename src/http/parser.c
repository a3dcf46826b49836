/*
 * src/http/parser.c — strict HTTP/1.x request-head parser (RFC 9112).
 *
 * Place in the data flow: the connection layer (src/net) hands us the bytes
 * received so far on a fresh connection; we answer "need more" (-EAGAIN),
 * "here is a complete head of N bytes", or "reject with status S" (-S). The
 * router then serves the request or passes it to the WebSocket handshake.
 *
 * Owns nothing and keeps no state between calls (picohttpparser style): a
 * caller simply calls again with the longer buffer. Every slice written
 * into struct rc_http_request points into the caller's buffer. Pure
 * function of its arguments, so any thread may call it.
 *
 * Strictness is deliberate: this server sits on the open internet and
 * anything lenient here (bare LF, obs-fold, Content-Length together with
 * Transfer-Encoding, ...) is how request smuggling starts. Limits are
 * checked against the bytes we have, before the head is complete, so a peer
 * cannot make the caller buffer more than max_head_bytes.
 */
#include "ringcast/http.h"

#include <errno.h>
#include <string.h>

static const struct rc_http_limits default_limits = RC_HTTP_LIMITS_DEFAULT;

/* tchar (RFC 9110 §5.6.2): the characters of methods and header names. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool slice_eq_ci(const char *s, size_t n, const char *lit)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (lit[i] == '\0' || ascii_lower((unsigned char)s[i]) != ascii_lower((unsigned char)lit[i]))
            return false;
    }
    return lit[i] == '\0';
}

enum line_status { LINE_COMPLETE, LINE_INCOMPLETE, LINE_BAD };

/*
 * Looks for the CRLF ending the line that starts at buf[pos], searching no
 * further than buf[end). *content_len gets the bytes before the CRLF, or for
 * an incomplete line the bytes seen so far (not counting a trailing CR), so
 * the caller can apply the line limit either way. A CR not followed by LF
 * or an LF not preceded by CR makes the line bad — even before it is
 * complete, so a bare-LF client is rejected at once instead of waiting.
 */
static enum line_status find_line(const char *buf, size_t pos, size_t end, size_t *content_len)
{
    size_t avail = end - pos;
    if (avail == 0) { /* also keeps memchr away from a NULL buffer */
        *content_len = 0;
        return LINE_INCOMPLETE;
    }
    const char *start = buf + pos;
    const char *cr = memchr(start, '\r', avail);
    size_t before_cr = cr ? (size_t)(cr - start) : avail;

    if (memchr(start, '\n', before_cr) != NULL)
        return LINE_BAD;
    *content_len = before_cr;
    if (cr == NULL || before_cr + 1 == avail)
        return LINE_INCOMPLETE;
    return cr[1] == '\n' ? LINE_COMPLETE : LINE_BAD;
}

/*
 * Origin-form (RFC 9112 §3.2.1): "/" then path/query characters. We accept
 * every visible ASCII byte except '#' (a fragment is never sent) and insist
 * that '%' starts a well-formed escape. "*" is only legal for OPTIONS;
 * absolute-form and authority-form are not for an origin server like us.
 */
static int parse_target(const char *t, size_t n, struct rc_http_request *req)
{
    if (n == 1 && t[0] == '*') {
        if (!rc_http_slice_eq(req->method, req->method_len, "OPTIONS"))
            return -400;
        req->path = t;
        req->path_len = 1;
        return 0;
    }
    if (t[0] != '/')
        return -400;

    size_t path_len = n;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c >= 0x7f || c == '#')
            return -400;
        if (c == '%') {
            if (n - i < 3 || !is_hex((unsigned char)t[i + 1]) || !is_hex((unsigned char)t[i + 2]))
                return -400;
        } else if (c == '?' && path_len == n) {
            path_len = i;
        }
    }
    req->path = t;
    req->path_len = path_len;
    if (path_len < n) {
        req->query = t + path_len + 1;
        req->query_len = n - path_len - 1;
    }
    return 0;
}

/* request-line = method SP request-target SP HTTP-version, single spaces. */
static int parse_request_line(const char *p, size_t n, struct rc_http_request *req)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ' ')
        return -400;
    req->method = p;
    req->method_len = i;

    size_t target_start = ++i;
    while (i < n && p[i] != ' ')
        i++;
    if (i == n || i == target_start)
        return -400;
    req->target = p + target_start;
    req->target_len = i - target_start;

    int r = parse_target(req->target, req->target_len, req);
    if (r != 0)
        return r;

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. A well-formed
     * version we do not speak is 505; anything else is not HTTP at all. */
    const char *v = p + i + 1;
    size_t vlen = n - i - 1;
    if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return -400;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return -505;
    req->minor_version = v[7] - '0';
    return 0;
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 §5). */
static int parse_header_line(const char *p, size_t n, struct rc_http_header *h)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    /* Catches an empty name, whitespace before the colon and any non-token
     * byte in the name. */
    if (i == 0 || i == n || p[i] != ':')
        return -400;
    h->name = p;
    h->name_len = i;

    /* field-value bytes: HTAB, SP, VCHAR, obs-text. CR/LF cannot occur
     * here (find_line), every other control byte and DEL are refused. */
    for (size_t j = i + 1; j < n; j++) {
        unsigned char c = (unsigned char)p[j];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -400;
    }

    size_t vs = i + 1, ve = n;
    while (vs < ve && is_ows(p[vs]))
        vs++;
    while (ve > vs && is_ows(p[ve - 1]))
        ve--;
    h->value = p + vs;
    h->value_len = ve - vs;
    return 0;
}

/*
 * Walks the comma-separated list in value[0..n), calling back for each
 * element with surrounding whitespace removed; empty elements are skipped
 * (RFC 9110 §5.6.1 asks recipients to ignore them).
 */
typedef bool (*element_fn)(const char *e, size_t n, void *ctx);

static bool for_each_element(const char *value, size_t n, element_fn fn, void *ctx)
{
    size_t i = 0;
    while (i < n) {
        const char *comma = memchr(value + i, ',', n - i);
        size_t e_end = comma ? (size_t)(comma - value) : n;
        size_t s = i, e = e_end;
        while (s < e && is_ows(value[s]))
            s++;
        while (e > s && is_ows(value[e - 1]))
            e--;
        if (e > s && !fn(value + s, e - s, ctx))
            return false;
        i = e_end + 1;
    }
    return true;
}

struct token_search {
    const char *token;
    bool found;
};

static bool match_token(const char *e, size_t n, void *ctx)
{
    struct token_search *ts = ctx;
    if (slice_eq_ci(e, n, ts->token)) {
        ts->found = true;
        return false; /* stop walking */
    }
    return true;
}

struct te_codings {
    size_t count;
    bool only_chunked;
};

static bool note_coding(const char *e, size_t n, void *ctx)
{
    struct te_codings *tc = ctx;
    tc->count++;
    if (!slice_eq_ci(e, n, "chunked"))
        tc->only_chunked = false;
    return true;
}

/* Content-Length = 1*DIGIT, within int64_t. */
static int parse_content_length(const char *v, size_t n, int64_t *out)
{
    if (n == 0)
        return -400;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -400;
        int d = v[i] - '0';
        if (x > (INT64_MAX - d) / 10)
            return -400;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* Fills content_length, chunked and keep_alive from the headers. */
static int derive_framing(struct rc_http_request *req)
{
    bool has_te = false;
    struct te_codings tc = {0, true};

    for (size_t i = 0; i < req->num_headers; i++) {
        const struct rc_http_header *h = &req->headers[i];
        if (slice_eq_ci(h->name, h->name_len, "content-length")) {
            int64_t v;
            if (parse_content_length(h->value, h->value_len, &v) != 0)
                return -400;
            /* Repeats that agree are harmless; disagreeing ones are a
             * classic smuggling probe (RFC 9112 §6.3 item 5). */
            if (req->content_length >= 0 && req->content_length != v)
                return -400;
            req->content_length = v;
        } else if (slice_eq_ci(h->name, h->name_len, "transfer-encoding")) {
            has_te = true;
            for_each_element(h->value, h->value_len, note_coding, &tc);
        }
    }

    if (has_te) {
        /* RFC 9112 §6.1: CL + TE is smuggling-shaped and HTTP/1.0 has no
         * chunked framing, so in both cases the framing is faulty. */
        if (req->content_length >= 0 || req->minor_version == 0)
            return -400;
        if (tc.count == 0)
            return -400;
        /* We decode only plain chunked; "gzip, chunked" and friends would
         * hand the application a body it cannot read (§6.1: 501). */
        if (tc.count != 1 || !tc.only_chunked)
            return -501;
        req->chunked = true;
    }

    bool close = rc_http_header_has_token(req, "connection", "close");
    if (req->minor_version >= 1)
        req->keep_alive = !close;
    else
        req->keep_alive = !close && rc_http_header_has_token(req, "connection", "keep-alive");
    return 0;
}

ssize_t rc_http_parse_request(const char *buf, size_t len, const struct rc_http_limits *lim,
                              struct rc_http_request *req)
{
    if (lim == NULL)
        lim = &default_limits;
    size_t max_headers = lim->max_headers < RC_HTTP_MAX_HEADERS ? lim->max_headers : RC_HTTP_MAX_HEADERS;
    /* Never look past max_head_bytes. Once we hold that many bytes and the
     * head is still not complete, it is too large whatever follows, so the
     * caller never has to buffer more than max_head_bytes to find out. */
    size_t end = len < lim->max_head_bytes ? len : lim->max_head_bytes;
    int incomplete = len >= lim->max_head_bytes ? -431 : -EAGAIN;

    req->method = req->target = req->path = req->query = NULL;
    req->method_len = req->target_len = req->path_len = req->query_len = 0;
    req->minor_version = 0;
    req->num_headers = 0;
    req->content_length = -1;
    req->chunked = false;
    req->keep_alive = false;

    size_t pos = 0, n;
    /* RFC 9112 §2.2: a server SHOULD ignore empty lines before the
     * request-line (clients sometimes leave a CRLF after a POST body). */
    while (end - pos >= 2 && buf[pos] == '\r' && buf[pos + 1] == '\n')
        pos += 2;

    enum line_status st = find_line(buf, pos, end, &n);
    if (st == LINE_BAD)
        return -400;
    if (n > lim->max_line_bytes)
        return -414;
    if (st == LINE_INCOMPLETE)
        return incomplete;
    int r = parse_request_line(buf + pos, n, req);
    if (r != 0)
        return r;
    pos += n + 2;

    for (;;) {
        if (pos == end)
            return incomplete;
        if (buf[pos] == '\r') { /* the blank line ending the head */
            if (pos + 1 == end)
                return incomplete;
            if (buf[pos + 1] != '\n')
                return -400;
            pos += 2;
            break;
        }
        /* obs-fold (RFC 9112 §5.2); also a first header line starting with
         * whitespace (§2.2). Both are rejected. */
        if (is_ows(buf[pos]))
            return -400;
        if (req->num_headers == max_headers)
            return -431;

        st = find_line(buf, pos, end, &n);
        if (st == LINE_BAD)
            return -400;
        if (n > lim->max_line_bytes)
            return -431;
        if (st == LINE_INCOMPLETE)
            return incomplete;
        r = parse_header_line(buf + pos, n, &req->headers[req->num_headers]);
        if (r != 0)
            return r;
        req->num_headers++;
        pos += n + 2;
    }

    r = derive_framing(req);
    if (r != 0)
        return r;
    return (ssize_t)pos;
}

const struct rc_http_header *rc_http_find_header(const struct rc_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct rc_http_header *h = &req->headers[i];
        if (slice_eq_ci(h->name, h->name_len, name))
            return h;
    }
    return NULL;
}

bool rc_http_header_has_token(const struct rc_http_request *req, const char *name, const char *token)
{
    struct token_search ts = {token, false};
    for (size_t i = 0; i < req->num_headers && !ts.found; i++) {
        const struct rc_http_header *h = &req->headers[i];
        if (slice_eq_ci(h->name, h->name_len, name))
            for_each_element(h->value, h->value_len, match_token, &ts);
    }
    return ts.found;
}

bool rc_http_slice_eq(const char *s, size_t n, const char *lit)
{
    size_t lit_len = strlen(lit);
    return n == lit_len && (n == 0 || memcmp(s, lit, n) == 0);
}
