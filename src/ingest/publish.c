/*
 * src/ingest/publish.c — the body of POST /api/v1/publish: one item
 * {"topic":T,"data":D} / {"broadcast":true,"data":D}, or an array of them.
 * Contract: include/ringcast/publish.h.
 *
 * Place in the data flow: the HTTP layer hands us the complete request
 * body; for every item we call back with the topic (or "broadcast") and
 * the exact bytes of its "data" value, which the fan-out layer frames and
 * sends to subscribers unchanged. No I/O.
 *
 * Three passes, so that nothing is published from a body that is wrong
 * anywhere:
 *   1. validation: rc_json_parse() (include/ringcast/json.h), a byte scan
 *      for what RFC 8259 forbids and cJSON accepts, strings included, which
 *      must be UTF-8 (the data goes out in WebSocket text frames, where
 *      invalid UTF-8 makes every receiving client drop its connection), then
 *      a full cJSON parse with nothing but whitespace after the value;
 *   2. spans: jsmn (strict) tokenises the same bytes; every item is checked
 *      and its topic and data spans recorded. Keys are compared after
 *      decoding their escapes and the first of duplicate keys wins, as in
 *      cJSON. The topic is taken raw and may not contain escapes;
 *   3. delivery: the callback, once per item, in body order.
 *
 * Owns only scratch memory freed before returning; every pointer handed
 * to the callback points into the caller's body. Pure function of its
 * arguments, so any thread may call it (cJSON records the position of a
 * parse error in a process-wide variable; we never read it).
 */
#include "ringcast/publish.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/json.h"
#include "ringcast/proto.h" /* rc_topic_name_valid */

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

static const char msg_invalid_json[] = "invalid JSON";
static const char msg_bad_shape[] = "body must be an object or an array of objects";

static ssize_t fail(char *err, size_t errcap, ssize_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static ssize_t fail(char *err, size_t errcap, ssize_t code, const char *fmt, ...)
{
    if (err != NULL && errcap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errcap, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- pass 1: validation ------------------------------------------------------ */

/* Full RFC 8259 validation, UTF-8 included. On success returns the root's
 * type (cJSON_Object, cJSON_Array, ...) and the array's length in *count;
 * 0 when the body is not JSON. */
static int validate(const char *body, size_t len, size_t *count)
{
    cJSON *root = rc_json_parse(body, len, RC_JSON_UTF8, NULL);
    if (root == NULL)
        return 0;
    int type = root->type & 0xff;
    *count = 0;
    for (const cJSON *c = root->child; cJSON_IsArray(root) && c != NULL; c = c->next)
        (*count)++;
    cJSON_Delete(root);
    return type;
}

/* ---- pass 2: spans ------------------------------------------------------------- */

/*
 * True when the raw text of a key (between its quotes, escapes not yet
 * decoded, already validated) decodes to lit, an ASCII word: "\u0064ata"
 * is "data", "data\u0000" is not.
 */
static bool key_equals(const char *raw, size_t n, const char *lit)
{
    size_t j = 0;
    for (size_t i = 0; i < n; j++) {
        long cp = (unsigned char)raw[i];
        if (cp != '\\') {
            i++;
        } else if (i + 1 < n && raw[i + 1] != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *e = raw[i + 1] != '\0' ? strchr(from, raw[i + 1]) : NULL;
            cp = e != NULL ? to[e - from] : -1;
            i += 2;
        } else {
            cp = rc_json_hex4(raw, n, i + 1);
            if (cp < 0)
                return false;
            i += 6;
        }
        if (lit[j] == '\0' || cp != (unsigned char)lit[j])
            return false;
    }
    return lit[j] == '\0';
}

/* The body bytes of token t: a string's span includes its quotes, as the
 * JSON text of a value does. */
static void token_span(const char *body, const jsmntok_t *t, const char **p, size_t *n)
{
    int start = t->type == JSMN_STRING ? t->start - 1 : t->start;
    int end = t->type == JSMN_STRING ? t->end + 1 : t->end;
    *p = body + start;
    *n = (size_t)(end - start);
}

/* Checks the item object at tokens[obj] and fills *item; returns 0 or
 * -EINVAL with the reason for item n. */
static ssize_t check_item(const char *body, const jsmntok_t *tok, int ntok, int obj, size_t n,
                          struct rc_pub_item *item, char *err, size_t errcap)
{
    int topic = -1, data = -1, broadcast = -1; /* value tokens, first occurrence */

    for (int k = obj + 1; k < ntok && tok[k].start < tok[obj].end; k++) {
        if (tok[k].parent != obj || k + 1 >= ntok)
            continue; /* not a key of this object */
        const char *key = body + tok[k].start;
        size_t klen = (size_t)(tok[k].end - tok[k].start);
        if (topic < 0 && key_equals(key, klen, "topic"))
            topic = k + 1;
        else if (data < 0 && key_equals(key, klen, "data"))
            data = k + 1;
        else if (broadcast < 0 && key_equals(key, klen, "broadcast"))
            broadcast = k + 1;
    }

    if (data < 0)
        return fail(err, errcap, -EINVAL, "item %zu: missing \"data\"", n);
    token_span(body, &tok[data], &item->data, &item->data_len);

    if (broadcast >= 0) {
        const jsmntok_t *b = &tok[broadcast];
        if (b->type != JSMN_PRIMITIVE || b->end - b->start != 4 ||
            memcmp(body + b->start, "true", 4) != 0)
            return fail(err, errcap, -EINVAL, "item %zu: \"broadcast\" must be true", n);
        item->broadcast = true; /* a "topic" beside it is ignored */
        return 0;
    }
    if (topic < 0)
        return fail(err, errcap, -EINVAL, "item %zu: missing \"topic\" (or \"broadcast\":true)", n);
    if (tok[topic].type != JSMN_STRING)
        return fail(err, errcap, -EINVAL, "item %zu: \"topic\" must be a string", n);
    const char *name = body + tok[topic].start;
    size_t name_len = (size_t)(tok[topic].end - tok[topic].start);
    if (memchr(name, '\\', name_len) != NULL || !rc_topic_name_valid(name, name_len))
        return fail(err, errcap, -EINVAL, "item %zu: invalid topic name", n);
    item->topic = name;
    item->topic_len = name_len;
    return 0;
}

/* Tokenises the validated body and fills items[0..nitems). */
static ssize_t find_items(const char *body, size_t len, struct rc_pub_item *items, size_t nitems,
                          char *err, size_t errcap)
{
    jsmn_parser p;
    jsmn_init(&p);
    int ntok = jsmn_parse(&p, body, len, NULL, 0);
    if (ntok <= 0) /* cJSON accepted it: cannot happen, but never trust a second parser blindly */
        return fail(err, errcap, -EINVAL, "%s", msg_invalid_json);
    jsmntok_t *tok = calloc((size_t)ntok, sizeof(*tok));
    if (tok == NULL)
        return fail(err, errcap, -ENOMEM, "out of memory");
    jsmn_init(&p);
    int r = jsmn_parse(&p, body, len, tok, (unsigned)ntok);
    if (r != ntok || (tok[0].type != JSMN_OBJECT && tok[0].type != JSMN_ARRAY)) {
        free(tok);
        return fail(err, errcap, -EINVAL, "%s", msg_invalid_json);
    }

    ssize_t rc = 0;
    if (tok[0].type == JSMN_OBJECT) {
        memset(&items[0], 0, sizeof(items[0]));
        rc = check_item(body, tok, ntok, 0, 0, &items[0], err, errcap);
    } else {
        /* Every element must be an object before any item is judged: a
         * wrong shape is the body's error, not an item's. */
        size_t seen = 0;
        for (int t = 1; t < ntok; t++) {
            if (tok[t].parent != 0)
                continue;
            if (tok[t].type != JSMN_OBJECT) {
                free(tok);
                return fail(err, errcap, -EINVAL, "%s", msg_bad_shape);
            }
            seen++;
        }
        if (seen != nitems) {
            free(tok);
            return fail(err, errcap, -EINVAL, "%s", msg_invalid_json);
        }
        size_t n = 0;
        for (int t = 1; t < ntok && rc == 0; t++) {
            if (tok[t].parent != 0)
                continue;
            memset(&items[n], 0, sizeof(items[n]));
            rc = check_item(body, tok, ntok, t, n, &items[n], err, errcap);
            n++;
        }
    }
    free(tok);
    return rc;
}

ssize_t rc_publish_parse(const char *body, size_t len, size_t max_items, rc_pub_cb cb, void *ctx,
                         char *err, size_t errcap)
{
    if (err != NULL && errcap > 0)
        err[0] = '\0';
    /* jsmn counts in int */
    if (body == NULL || len == 0 || len > INT_MAX)
        return fail(err, errcap, -EINVAL, "%s", msg_invalid_json);

    size_t count = 0;
    int type = validate(body, len, &count);
    if (type == 0)
        return fail(err, errcap, -EINVAL, "%s", msg_invalid_json);
    if (type == cJSON_Object)
        count = 1;
    else if (type != cJSON_Array)
        return fail(err, errcap, -EINVAL, "%s", msg_bad_shape);
    else if (count > max_items)
        return fail(err, errcap, -EINVAL, "too many items (max %zu)", max_items);
    if (count == 0)
        return 0;

    struct rc_pub_item *items = calloc(count, sizeof(*items));
    if (items == NULL)
        return fail(err, errcap, -ENOMEM, "out of memory");
    ssize_t rc = find_items(body, len, items, count, err, errcap);
    for (size_t i = 0; rc == 0 && cb != NULL && i < count; i++) {
        int r = cb(ctx, &items[i]);
        if (r < 0)
            rc = r;
    }
    free(items);
    return rc < 0 ? rc : (ssize_t)count;
}
