/*
 * src/auth/auth.c — constant-time token comparison, token sets, '*' globs
 * and HS256 JWT verification. Contract: include/ringcast/auth.h.
 *
 * Place in the data flow: config builds token sets and glob lists at
 * start-up (and token sets again on SIGHUP, reading the token file here);
 * the router matches a request's presented credential against a set; the
 * WebSocket upgrade verifies a JWT into claims that the connection keeps,
 * and subscribes consult the globs and claims. Only the token file is I/O.
 *
 * Ownership: sets, glob lists and claims own copies of everything they
 * hold and are immutable once built, so readers on any thread may share
 * them. No global state. HMAC-SHA256 comes from wolfCrypt (the wolfSSL
 * already linked for TLS); JSON from cJSON behind rc_json_parse().
 */
#include "ringcast/auth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "ringcast/json.h"

#define TOKEN_FILE_MAX (1u << 20)
#define HS256_LEN 32

static void set_err(char *err, size_t errcap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errcap, const char *fmt, ...)
{
    if (err == NULL || errcap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
}

/* ---- constant-time comparison ---- */

bool rc_token_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *pa = a, *pb = b;
    size_t n = alen > blen ? alen : blen;
    /* volatile: the compiler may not turn the loop into an early exit. */
    volatile unsigned char diff = alen != blen;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < alen ? pa[i] : 0;
        unsigned char y = i < blen ? pb[i] : 0;
        diff |= (unsigned char)(x ^ y);
    }
    return diff == 0;
}

/* ---- comma-separated lists ---- */

typedef int (*entry_fn)(void *ctx, const char *s, size_t n);

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Calls fn for each comma-separated entry of s, blanks trimmed. -EINVAL on
 * an empty entry (including an empty s), or fn's first error. */
static int split_list(const char *s, entry_fn fn, void *ctx)
{
    if (s == NULL)
        return -EINVAL;
    for (;;) {
        const char *end = strchr(s, ',');
        const char *e = end != NULL ? end : s + strlen(s);
        const char *b = s;
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        if (e == b)
            return -EINVAL;
        int rc = fn(ctx, b, (size_t)(e - b));
        if (rc < 0)
            return rc;
        if (end == NULL)
            return 0;
        s = end + 1;
    }
}

/* ---- token sets ---- */

struct token {
    char *s;
    size_t len;
};

struct rc_token_set {
    struct token *v;
    size_t n, cap;
};

struct rc_token_set *rc_token_set_new(void)
{
    return calloc(1, sizeof(struct rc_token_set));
}

/* Why tok[0..len) cannot be a token, or NULL when it can. */
static const char *token_problem(const char *tok, size_t len)
{
    if (len == 0)
        return "empty token";
    if (len > RC_TOKEN_MAX)
        return "token longer than 512 bytes";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)tok[i];
        if (c <= 0x20 || c == 0x7f)
            return "token contains whitespace or a control character";
    }
    return NULL;
}

static bool set_has(const struct rc_token_set *ts, const char *tok, size_t len)
{
    for (size_t i = 0; i < ts->n; i++)
        if (ts->v[i].len == len && memcmp(ts->v[i].s, tok, len) == 0)
            return true;
    return false;
}

/* Drops the entries past the first n, wiping them. */
static void set_truncate(struct rc_token_set *ts, size_t n)
{
    while (ts->n > n) {
        struct token *t = &ts->v[--ts->n];
        explicit_bzero(t->s, t->len);
        free(t->s);
    }
}

int rc_token_set_add(struct rc_token_set *ts, const char *tok, size_t len)
{
    if (ts == NULL || token_problem(tok, len) != NULL)
        return -EINVAL;
    if (set_has(ts, tok, len))
        return 0;
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 4;
        struct token *v = realloc(ts->v, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        ts->v = v;
        ts->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, tok, len);
    copy[len] = '\0';
    ts->v[ts->n++] = (struct token){ copy, len };
    return 0;
}

static int add_entry(void *ctx, const char *s, size_t n)
{
    return rc_token_set_add(ctx, s, n);
}

int rc_token_set_add_list(struct rc_token_set *ts, const char *comma_separated)
{
    if (ts == NULL)
        return -EINVAL;
    size_t n0 = ts->n;
    int rc = split_list(comma_separated, add_entry, ts);
    if (rc < 0)
        set_truncate(ts, n0);
    return rc;
}

/* Reads the whole file into a malloc'd buffer (*out, *outlen). */
static int read_small_file(const char *path, char **out, size_t *outlen, char *err, size_t errcap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        set_err(err, errcap, "cannot read %s: %s", path, strerror(e));
        return -e;
    }
    char *buf = malloc(TOKEN_FILE_MAX + 1);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, TOKEN_FILE_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            set_err(err, errcap, "cannot read %s: %s", path, strerror(e));
            close(fd);
            free(buf);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > TOKEN_FILE_MAX) {
            set_err(err, errcap, "%s is larger than 1 MiB", path);
            close(fd);
            free(buf);
            return -EFBIG;
        }
    }
    close(fd);
    *out = buf;
    *outlen = n;
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Adds the token of one line (trimmed). Returns 1 for a token line, 0 for
 * a blank or '#' line, or a negative errno with the reason in err. */
static int add_line(struct rc_token_set *ts, const char *b, const char *e, const char *path,
                    unsigned lineno, char *err, size_t errcap)
{
    while (b < e && is_space(*b))
        b++;
    while (e > b && is_space(e[-1]))
        e--;
    if (b == e || *b == '#')
        return 0;
    const char *why = token_problem(b, (size_t)(e - b));
    if (why != NULL) {
        set_err(err, errcap, "%s:%u: %s", path, lineno, why);
        return -EINVAL;
    }
    int rc = rc_token_set_add(ts, b, (size_t)(e - b));
    if (rc < 0) {
        set_err(err, errcap, "out of memory");
        return rc;
    }
    return 1;
}

static int add_lines(struct rc_token_set *ts, const char *buf, size_t n, const char *path, char *err,
                     size_t errcap)
{
    const char *p = buf, *end = buf + n;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    int tokens = 0;
    for (unsigned lineno = 1; p < end; lineno++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl != NULL ? nl : end;
        int rc = add_line(ts, p, e, path, lineno, err, errcap);
        if (rc < 0)
            return rc;
        tokens |= rc;
        p = nl != NULL ? nl + 1 : end;
    }
    if (!tokens) {
        set_err(err, errcap, "no token in %s", path);
        return -EINVAL;
    }
    return 0;
}

int rc_token_set_load_file(struct rc_token_set *ts, const char *path, char *err, size_t errcap)
{
    if (ts == NULL || path == NULL)
        return -EINVAL;
    char *buf;
    size_t n;
    int rc = read_small_file(path, &buf, &n, err, errcap);
    if (rc < 0)
        return rc;
    size_t n0 = ts->n;
    rc = add_lines(ts, buf, n, path, err, errcap);
    if (rc < 0)
        set_truncate(ts, n0);
    explicit_bzero(buf, n);
    free(buf);
    return rc;
}

size_t rc_token_set_count(const struct rc_token_set *ts)
{
    return ts != NULL ? ts->n : 0;
}

bool rc_token_set_match(const struct rc_token_set *ts, const char *tok, size_t len)
{
    if (ts == NULL)
        return false;
    unsigned found = 0;
    for (size_t i = 0; i < ts->n; i++)
        found |= rc_token_equal(ts->v[i].s, ts->v[i].len, tok, len);
    return found != 0;
}

void rc_token_set_free(struct rc_token_set *ts)
{
    if (ts == NULL)
        return;
    set_truncate(ts, 0);
    free(ts->v);
    free(ts);
}

/* ---- globs ---- */

bool rc_glob_match(const char *pat, size_t plen, const char *s, size_t slen)
{
    /* Greedy with one backtrack point: on a mismatch, the last '*' seen
     * takes one more byte of s and matching resumes after it. An earlier
     * star never needs revisiting (a later one can absorb anything it
     * would), so there are at most slen restarts of at most plen steps. */
    size_t p = 0, i = 0, star = SIZE_MAX, mark = 0;
    while (i < slen) {
        if (p < plen && pat[p] == '*') {
            star = p++;
            mark = i;
        } else if (p < plen && pat[p] == s[i]) {
            p++;
            i++;
        } else if (star != SIZE_MAX) {
            p = star + 1;
            i = ++mark;
        } else {
            return false;
        }
    }
    while (p < plen && pat[p] == '*')
        p++;
    return p == plen;
}

static int globs_push(struct rc_globs *g, const char *s, size_t n)
{
    char **pat = realloc(g->pat, (g->n + 1) * sizeof(*pat));
    if (pat == NULL)
        return -ENOMEM;
    g->pat = pat;
    size_t *len = realloc(g->len, (g->n + 1) * sizeof(*len));
    if (len == NULL)
        return -ENOMEM;
    g->len = len;
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, s, n);
    copy[n] = '\0';
    g->pat[g->n] = copy;
    g->len[g->n] = n;
    g->n++;
    return 0;
}

static int glob_entry(void *ctx, const char *s, size_t n)
{
    return globs_push(ctx, s, n);
}

int rc_globs_parse(struct rc_globs *g, const char *comma_separated)
{
    *g = (struct rc_globs){ 0 };
    int rc = split_list(comma_separated, glob_entry, g);
    if (rc < 0)
        rc_globs_free(g);
    return rc;
}

bool rc_globs_match(const struct rc_globs *g, const char *s, size_t slen)
{
    for (size_t i = 0; g != NULL && i < g->n; i++)
        if (rc_glob_match(g->pat[i], g->len[i], s, slen))
            return true;
    return false;
}

void rc_globs_free(struct rc_globs *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->pat[i]);
    free(g->pat);
    free(g->len);
    *g = (struct rc_globs){ 0 };
}

/* ---- JWT (HS256) ---- */

struct rc_claims {
    struct rc_globs topics;
    int64_t exp; /* 0: none */
};

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes unpadded base64url s[0..n) into out (room for n * 3 / 4 bytes).
 * Returns the decoded length, or -1 for a byte outside the alphabet
 * (padding included), an impossible length or non-zero unused bits (only
 * the canonical encoding of each value is accepted). */
static long b64url_decode(const char *s, size_t n, unsigned char *out)
{
    if (n % 4 == 1)
        return -1;
    uint32_t acc = 0;
    unsigned bits = 0;
    long o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc == 0 ? o : -1;
}

/* HMAC-SHA256(key, msg) into out. 0, or -EIO when wolfCrypt fails. */
static int hs256(const void *key, size_t klen, const char *msg, size_t mlen, unsigned char out[HS256_LEN])
{
    Hmac h;
    if (klen > UINT32_MAX || wc_HmacInit(&h, NULL, INVALID_DEVID) != 0)
        return -EIO;
    int rc = wc_HmacSetKey(&h, WC_SHA256, key, (word32)klen);
    if (rc == 0)
        rc = wc_HmacUpdate(&h, (const byte *)msg, (word32)mlen);
    if (rc == 0)
        rc = wc_HmacFinal(&h, out);
    wc_HmacFree(&h);
    explicit_bzero(&h, sizeof(h)); /* the keyed pads */
    return rc == 0 ? 0 : -EIO;
}

/* The three parts of a compact JWS, still encoded. */
struct jws {
    const char *h, *p, *s;
    size_t hlen, plen, slen;
};

static bool jws_split(const char *tok, size_t len, struct jws *j)
{
    const char *d1 = memchr(tok, '.', len);
    if (d1 == NULL)
        return false;
    const char *end = tok + len;
    const char *d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
        return false;
    *j = (struct jws){ tok, d1 + 1, d2 + 1, (size_t)(d1 - tok), (size_t)(d2 - d1 - 1),
                       (size_t)(end - d2 - 1) };
    return true;
}

/* How many members of obj are named name (case-sensitive). */
static int count_members(const cJSON *obj, const char *name)
{
    int n = 0;
    for (const cJSON *m = obj->child; m != NULL; m = m->next)
        n += m->string != NULL && strcmp(m->string, name) == 0;
    return n;
}

/* Strict JSON object from s[0..n) with each of names[] at most once, or
 * NULL (malformed). Strings holding "\u0000" are refused: cJSON's
 * NUL-terminated copies would cut them short. */
static cJSON *parse_object(const unsigned char *s, size_t n, const char *const *names, size_t nnames)
{
    size_t nnul = 0;
    cJSON *root = rc_json_parse((const char *)s, n, RC_JSON_UTF8 | RC_JSON_NUL, &nnul);
    bool ok = root != NULL && cJSON_IsObject(root) && nnul == 0;
    for (size_t i = 0; ok && i < nnames; i++)
        ok = count_members(root, names[i]) <= 1;
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Header checks: 0, or -EINVAL with the reason. */
static int check_header(const unsigned char *s, size_t n, char *err, size_t errcap)
{
    static const char *const names[] = { "alg", "crit" };
    cJSON *h = parse_object(s, n, names, 2);
    if (h == NULL) {
        set_err(err, errcap, "malformed token");
        return -EINVAL;
    }
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
    int rc = 0;
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "HS256") != 0) {
        set_err(err, errcap, "alg must be HS256");
        rc = -EINVAL;
    } else if (cJSON_GetObjectItemCaseSensitive(h, "crit") != NULL) {
        set_err(err, errcap, "unsupported \"crit\" header");
        rc = -EINVAL;
    }
    cJSON_Delete(h);
    return rc;
}

/* "exp" as whole seconds, rounded down, in 1..INT64_MAX (present: never
 * the "none" value 0). Truncation rounds down for d >= 1. */
static int64_t exp_seconds(double d)
{
    if (d >= 9223372036854775807.0)
        return INT64_MAX;
    return d >= 1.0 ? (int64_t)d : 1;
}

/* "exp" and "nbf" against now_s; c->exp set. 0 or -EINVAL. */
static int check_times(const cJSON *p, int64_t now_s, struct rc_claims *c, char *err, size_t errcap)
{
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(p, "exp");
    const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(p, "nbf");
    if (exp != NULL && !cJSON_IsNumber(exp)) {
        set_err(err, errcap, "\"exp\" must be a number");
        return -EINVAL;
    }
    if (nbf != NULL && !cJSON_IsNumber(nbf)) {
        set_err(err, errcap, "\"nbf\" must be a number");
        return -EINVAL;
    }
    if (exp != NULL && !(exp->valuedouble > (double)now_s)) {
        set_err(err, errcap, "token expired");
        return -EINVAL;
    }
    if (nbf != NULL && !(nbf->valuedouble <= (double)now_s)) {
        set_err(err, errcap, "token not yet valid");
        return -EINVAL;
    }
    c->exp = exp != NULL ? exp_seconds(exp->valuedouble) : 0;
    return 0;
}

/* "topics" into c->topics. 0, -EINVAL or -ENOMEM. */
static int take_topics(const cJSON *p, struct rc_claims *c, char *err, size_t errcap)
{
    const cJSON *topics = cJSON_GetObjectItemCaseSensitive(p, "topics");
    if (topics == NULL)
        return 0;
    if (!cJSON_IsArray(topics)) {
        set_err(err, errcap, "\"topics\" must be an array of strings");
        return -EINVAL;
    }
    if (cJSON_GetArraySize(topics) > RC_JWT_TOPICS_MAX) {
        set_err(err, errcap, "\"topics\" has more than %d entries", RC_JWT_TOPICS_MAX);
        return -EINVAL;
    }
    const cJSON *t;
    cJSON_ArrayForEach(t, topics) {
        if (!cJSON_IsString(t)) {
            set_err(err, errcap, "\"topics\" must be an array of strings");
            return -EINVAL;
        }
        size_t n = strlen(t->valuestring);
        if (n == 0 || n > RC_JWT_TOPIC_MAX) {
            set_err(err, errcap, "\"topics\" entries must be 1 to %d bytes", RC_JWT_TOPIC_MAX);
            return -EINVAL;
        }
        if (globs_push(&c->topics, t->valuestring, n) < 0) {
            set_err(err, errcap, "out of memory");
            return -ENOMEM;
        }
    }
    return 0;
}

/* Payload checks into fresh claims (*out). 0, -EINVAL or -ENOMEM. */
static int read_claims(const unsigned char *s, size_t n, int64_t now_s, struct rc_claims **out, char *err,
                       size_t errcap)
{
    static const char *const names[] = { "exp", "nbf", "topics" };
    cJSON *p = parse_object(s, n, names, 3);
    if (p == NULL) {
        set_err(err, errcap, "malformed token");
        return -EINVAL;
    }
    struct rc_claims *c = calloc(1, sizeof(*c));
    int rc = c != NULL ? 0 : -ENOMEM;
    if (rc < 0)
        set_err(err, errcap, "out of memory");
    if (rc == 0)
        rc = check_times(p, now_s, c, err, errcap);
    if (rc == 0)
        rc = take_topics(p, c, err, errcap);
    cJSON_Delete(p);
    if (rc < 0) {
        rc_claims_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Checks sig[0..siglen) against HMAC-SHA256(secret, header_b64 "."
 * payload_b64), in constant time. 0, -EINVAL or -EIO. */
static int check_signature(const struct jws *j, const unsigned char *sig, long siglen, const void *secret,
                           size_t secret_len, char *err, size_t errcap)
{
    unsigned char mac[HS256_LEN];
    /* header_b64 "." payload_b64 is contiguous in the token. */
    int rc = hs256(secret, secret_len, j->h, j->hlen + 1 + j->plen, mac);
    if (rc < 0) {
        set_err(err, errcap, "HMAC failed");
        return rc;
    }
    bool ok = rc_token_equal(mac, sizeof(mac), sig, (size_t)siglen);
    explicit_bzero(mac, sizeof(mac));
    if (!ok) {
        set_err(err, errcap, "bad signature");
        return -EINVAL;
    }
    return 0;
}

int rc_jwt_verify(const char *tok, size_t len, const void *secret, size_t secret_len, int64_t now_s,
                  struct rc_claims **out, char *err, size_t errcap)
{
    *out = NULL;
    if (secret == NULL || secret_len == 0) {
        set_err(err, errcap, "no JWT secret");
        return -EINVAL;
    }
    if (len > RC_JWT_MAX) {
        set_err(err, errcap, "token longer than %d bytes", RC_JWT_MAX);
        return -EINVAL;
    }
    struct jws j;
    if (tok == NULL || !jws_split(tok, len, &j)) {
        set_err(err, errcap, "malformed token");
        return -EINVAL;
    }
    unsigned char *buf = malloc(len + 1); /* decoded header, payload, signature */
    if (buf == NULL) {
        set_err(err, errcap, "out of memory");
        return -ENOMEM;
    }
    unsigned char *hb = buf;
    long hn = b64url_decode(j.h, j.hlen, hb);
    unsigned char *pb = hb + (hn > 0 ? hn : 0);
    long pn = hn < 0 ? -1 : b64url_decode(j.p, j.plen, pb);
    unsigned char *sb = pb + (pn > 0 ? pn : 0);
    long sn = pn < 0 ? -1 : b64url_decode(j.s, j.slen, sb);
    int rc = 0;
    if (sn < 0) {
        set_err(err, errcap, "malformed token");
        rc = -EINVAL;
    }
    if (rc == 0)
        rc = check_header(hb, (size_t)hn, err, errcap);
    if (rc == 0)
        rc = check_signature(&j, sb, sn, secret, secret_len, err, errcap);
    if (rc == 0)
        rc = read_claims(pb, (size_t)pn, now_s, out, err, errcap);
    free(buf);
    return rc;
}

bool rc_claims_cover(const struct rc_claims *c, const char *topic, size_t len)
{
    return c != NULL && rc_globs_match(&c->topics, topic, len);
}

int64_t rc_claims_exp(const struct rc_claims *c)
{
    return c != NULL ? c->exp : 0;
}

void rc_claims_free(struct rc_claims *c)
{
    if (c == NULL)
        return;
    rc_globs_free(&c->topics);
    free(c);
}
