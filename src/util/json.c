/*
 * src/util/json.c — strict RFC 8259 JSON in front of cJSON: the byte
 * pre-scan and the parse with nothing after the value. Contract:
 * include/ringcast/json.h.
 *
 * Place in the data flow: src/proto (control messages on /ws) and
 * src/ingest/publish.c (POST /api/v1/publish bodies) validate the complete
 * message here before they walk the tree. No I/O.
 *
 * Owns nothing; a parsed tree goes to the caller. No global state of our
 * own, so any thread may call (cJSON itself records the position of a parse
 * error in a process-wide variable; we never read it).
 *
 * Why there is a byte scan before cJSON: cJSON is lenient where RFC 8259 is
 * not (it skips every byte <= 0x20 as whitespace, skips a UTF-8 BOM, keeps
 * raw control bytes inside strings, accepts numbers such as 01 and 1.), and
 * it hands strings over NUL-terminated without their length, so a "\u0000"
 * escape silently cuts a key or a topic name short ({"type":"ping\u0000x"}
 * would read as "ping"). The scan rejects the lenient forms and, on
 * request, measures the decoded length of every string that contains
 * "\u0000", so callers can compare and validate those with their full
 * length. Text forwarded to other clients must also be UTF-8: a WebSocket
 * client drops its connection on invalid UTF-8 in a text frame (RFC 6455
 * §8.1), and cJSON does not check it.
 */
#include "ringcast/json.h"

#include <cjson/cJSON.h>

static bool is_json_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long rc_json_hex4(const char *s, size_t n, size_t i)
{
    if (n - i < 5)
        return -1;
    long v = 0;
    for (size_t k = 1; k <= 4; k++) {
        int h = hex_value((unsigned char)s[i + k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* RFC 8259 number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static bool number_valid(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i == n || !is_digit((unsigned char)s[i]))
        return false;
    if (s[i] == '0')
        i++;
    else
        while (i < n && is_digit((unsigned char)s[i]))
            i++;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        while (i < n && is_digit((unsigned char)s[i]))
            i++;
        if (i == start)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t start = i;
        while (i < n && is_digit((unsigned char)s[i]))
            i++;
        if (i == start)
            return false;
    }
    return i == n;
}

static bool is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

/* Length of the well-formed UTF-8 sequence (no overlongs, surrogates or
 * code points above U+10FFFF) starting at p[0] >= 0x80, or 0. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && is_cont(p[1]) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || !is_cont(p[1]) || !is_cont(p[2]))
            return 0;
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || !is_cont(p[1]) || !is_cont(p[2]) || !is_cont(p[3]))
            return 0;
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
            return 0;
        return 4;
    }
    return 0;
}

bool rc_json_scan(const char *s, size_t n, unsigned flags, struct rc_json_nul_string *out,
                  size_t cap, size_t *nnul)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t ordinal = 0, unused;
    if (nnul == NULL)
        nnul = &unused;
    *nnul = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        if (c == '"') {
            size_t decoded = 0;
            bool has_nul = false;
            for (i++;; i++) {
                if (i >= n)
                    return false;
                c = u[i];
                if (c == '"')
                    break;
                if (c < 0x20)
                    return false;
                if (c >= 0x80 && (flags & RC_JSON_UTF8)) {
                    size_t k = utf8_seq_len(u + i, n - i);
                    if (k == 0)
                        return false;
                    i += k - 1;
                    decoded += k;
                    continue;
                }
                decoded++;
                if (c != '\\')
                    continue;
                if (++i >= n)
                    return false;
                if (!(flags & RC_JSON_NUL) || u[i] != 'u')
                    continue; /* the escaped byte is skipped; cJSON checks which escapes exist */
                long cp = rc_json_hex4(s, n, i);
                if (cp < 0)
                    return false;
                i += 4;
                if (cp >= 0xd800 && cp <= 0xdbff && n - i > 2 && u[i + 1] == '\\' &&
                    u[i + 2] == 'u' && rc_json_hex4(s, n, i + 2) >= 0xdc00 &&
                    rc_json_hex4(s, n, i + 2) <= 0xdfff) {
                    i += 6; /* a surrogate pair: one 4-byte character */
                    decoded += 3;
                } else if (cp >= 0x800) {
                    decoded += 2;
                } else if (cp >= 0x80) {
                    decoded += 1;
                } else if (cp == 0) {
                    has_nul = true;
                }
            }
            if (has_nul) {
                if (*nnul < cap)
                    out[*nnul] = (struct rc_json_nul_string){ ordinal, decoded };
                (*nnul)++;
            }
            ordinal++;
        } else if (c == '-' || is_digit(c)) {
            size_t start = i;
            while (i + 1 < n && (is_digit(u[i + 1]) || u[i + 1] == '.' || u[i + 1] == 'e' ||
                                 u[i + 1] == 'E' || u[i + 1] == '+' || u[i + 1] == '-'))
                i++;
            if (!number_valid(s + start, i + 1 - start))
                return false;
        } else if ((c < 0x20 && !is_json_ws(c)) || c >= 0x80) {
            return false;
        }
    }
    return true;
}

struct cJSON *rc_json_parse(const char *s, size_t n, unsigned flags, size_t *nnul)
{
    if (!rc_json_scan(s, n, flags, NULL, 0, nnul))
        return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (root == NULL)
        return NULL;
    for (const char *p = end; p < s + n; p++) {
        if (!is_json_ws((unsigned char)*p)) {
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}
