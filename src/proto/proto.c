/*
 * src/proto/proto.c — the JSON client protocol on /ws: parses control
 * messages (subscribe / unsubscribe with "markets", "channels" or "topics",
 * subscribe_all, unsubscribe_all, ping) and formats the server's answers
 * (subscribed acks, errors). Contract: include/ringcast/proto.h.
 *
 * Place in the data flow: the WebSocket layer hands us one complete,
 * UTF-8-validated text message; the connection layer applies the returned
 * command to the connection's subscription set and sends what
 * rc_proto_format_*() writes. No I/O.
 *
 * Owns: a parsed command owns its cJSON tree and the topic array, whose
 * names point into that tree, until rc_cmd_free(). The formatters write
 * into the caller's buffer and own nothing. No global state of our own, so
 * any thread may call (cJSON itself records the position of a parse error
 * in a process-wide variable; we never read it).
 *
 * Strings with "\u0000": cJSON hands strings over NUL-terminated without
 * their length, so such an escape would silently cut a key or a topic name
 * short ({"type":"ping\u0000x"} would read as "ping"). rc_json_parse()
 * (include/ringcast/json.h) rejects what RFC 8259 forbids and counts those
 * strings; for them (never in real messages) a second rc_json_scan()
 * records their decoded lengths, so they are compared and validated with
 * their full length.
 */
#include "ringcast/proto.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringcast/json.h"

/* How much of a client's type or topic name we quote back in an error. */
#define ECHO_MAX 64

static const char msg_invalid_json[] = "Invalid JSON";
static const char msg_not_object[] = "Message must be a JSON object with a string \"type\"";
static const char msg_needs_topics[] =
    "subscribe needs \"markets\", \"channels\" or \"topics\": an array of strings";

const char *rc_topic_key_name(enum rc_topic_key key)
{
    switch (key) {
    case RC_KEY_CHANNELS:
        return "channels";
    case RC_KEY_TOPICS:
        return "topics";
    case RC_KEY_MARKETS:
    default:
        return "markets";
    }
}

bool rc_topic_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > RC_TOPIC_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
            return false;
    }
    return true;
}

/* ---- strings with an embedded NUL ---------------------------------------- */

struct nul_item {
    const cJSON *item;
    bool is_key; /* item->string holds the NUL, else item->valuestring */
    size_t len;
};

struct nul_map {
    const struct rc_json_nul_string *strings; /* from rc_json_scan, ascending ordinals */
    size_t nstrings;
    size_t next;    /* first entry of strings not yet matched */
    size_t ordinal; /* strings seen so far in the walk */
    struct nul_item *items;
    size_t nitems;
};

static void nul_note(struct nul_map *m, const cJSON *item, bool is_key)
{
    if (m->next < m->nstrings && m->strings[m->next].ordinal == m->ordinal) {
        m->items[m->nitems++] = (struct nul_item){ item, is_key, m->strings[m->next].decoded_len };
        m->next++;
    }
    m->ordinal++;
}

/* Visits the strings of the tree in document order (a member's key before
 * its value, as cJSON parsed them), matching them with rc_json_scan's
 * ordinals. Depth is bounded by cJSON's nesting limit. */
static void nul_walk(struct nul_map *m, const cJSON *item, bool has_key)
{
    if (m->next == m->nstrings)
        return;
    if (has_key)
        nul_note(m, item, true);
    if (cJSON_IsString(item)) {
        nul_note(m, item, false);
    } else if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
        bool keys = cJSON_IsObject(item);
        for (const cJSON *c = item->child; c != NULL; c = c->next)
            nul_walk(m, c, keys);
    }
}

static const struct nul_item *nul_find(const struct nul_map *m, const cJSON *item, bool is_key)
{
    for (size_t i = 0; i < m->nitems; i++)
        if (m->items[i].item == item && m->items[i].is_key == is_key)
            return &m->items[i];
    return NULL;
}

/* The first member named key, as the decoded key compares (a key holding a
 * NUL never matches). NULL when absent. */
static const cJSON *member(const struct nul_map *m, const cJSON *obj, const char *key)
{
    for (const cJSON *c = obj->child; c != NULL; c = c->next)
        if (c->string != NULL && strcmp(c->string, key) == 0 && nul_find(m, c, true) == NULL)
            return c;
    return NULL;
}

static size_t string_len(const struct nul_map *m, const cJSON *item)
{
    const struct nul_item *ni = nul_find(m, item, false);
    return ni != NULL ? ni->len : strlen(item->valuestring);
}

/* ---- parse ------------------------------------------------------------------ */

static int fail(char *err, size_t errcap, const char *msg)
{
    if (err != NULL && errcap > 0)
        snprintf(err, errcap, "%s", msg);
    return -EINVAL;
}

/*
 * Copies at most ECHO_MAX bytes of s[0..n) into dst (ECHO_MAX + 1 bytes),
 * keeping printable ASCII and writing one '?' for every other byte or
 * UTF-8 sequence, so the echo is always short, NUL-free, valid UTF-8.
 */
static void sanitize_echo(char *dst, const char *s, size_t n)
{
    size_t o = 0;
    if (n > ECHO_MAX)
        n = ECHO_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c <= 0x7e)
            dst[o++] = (char)c;
        else if (!((c & 0xc0) == 0x80 && i > 0 && (unsigned char)s[i - 1] >= 0x80))
            dst[o++] = '?'; /* continuation bytes belong to the '?' already written */
    }
    dst[o] = '\0';
}

static int parse_topics(const struct nul_map *m, const cJSON *root, size_t max_topics,
                        struct rc_cmd *cmd, char *err, size_t errcap)
{
    static const enum rc_topic_key keys[] = { RC_KEY_MARKETS, RC_KEY_CHANNELS, RC_KEY_TOPICS };
    const cJSON *arr = NULL;

    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]) && arr == NULL; k++) {
        arr = member(m, root, rc_topic_key_name(keys[k]));
        cmd->key = keys[k];
    }
    if (arr == NULL || !cJSON_IsArray(arr))
        return fail(err, errcap, msg_needs_topics);

    size_t n = 0;
    for (const cJSON *c = arr->child; c != NULL; c = c->next)
        n++;
    if (n > max_topics) {
        if (err != NULL && errcap > 0)
            snprintf(err, errcap, "Too many topics in one message (max %zu)", max_topics);
        return -EINVAL;
    }
    if (n == 0)
        return 0;

    struct rc_topic_name *topics = calloc(n, sizeof(*topics));
    if (topics == NULL) {
        fail(err, errcap, "Out of memory");
        return -ENOMEM;
    }
    size_t i = 0;
    for (const cJSON *c = arr->child; c != NULL; c = c->next, i++) {
        if (!cJSON_IsString(c)) {
            free(topics);
            return fail(err, errcap, msg_needs_topics);
        }
        size_t len = string_len(m, c);
        if (!rc_topic_name_valid(c->valuestring, len)) {
            char echo[ECHO_MAX + 1];
            sanitize_echo(echo, c->valuestring, len);
            if (err != NULL && errcap > 0)
                snprintf(err, errcap, "Invalid topic name: %s", echo);
            free(topics);
            return -EINVAL;
        }
        topics[i] = (struct rc_topic_name){ c->valuestring, len };
    }
    cmd->topics = topics;
    cmd->ntopics = n;
    return 0;
}

static int parse_tree(const struct nul_map *m, const cJSON *root, size_t max_topics,
                      struct rc_cmd *cmd, char *err, size_t errcap)
{
    if (!cJSON_IsObject(root))
        return fail(err, errcap, msg_not_object);
    const cJSON *type = member(m, root, "type");
    if (type == NULL || !cJSON_IsString(type))
        return fail(err, errcap, msg_not_object);

    static const struct {
        const char *name;
        enum rc_cmd_type type;
    } types[] = {
        { "subscribe", RC_CMD_SUBSCRIBE },         { "unsubscribe", RC_CMD_UNSUBSCRIBE },
        { "subscribe_all", RC_CMD_SUBSCRIBE_ALL }, { "unsubscribe_all", RC_CMD_UNSUBSCRIBE_ALL },
        { "ping", RC_CMD_PING },
    };
    size_t len = string_len(m, type);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strlen(types[i].name) == len && memcmp(types[i].name, type->valuestring, len) == 0) {
            cmd->type = types[i].type;
            cmd->key = RC_KEY_MARKETS;
            if (cmd->type == RC_CMD_SUBSCRIBE || cmd->type == RC_CMD_UNSUBSCRIBE)
                return parse_topics(m, root, max_topics, cmd, err, errcap);
            return 0;
        }
    }
    char echo[ECHO_MAX + 1];
    sanitize_echo(echo, type->valuestring, len);
    if (err != NULL && errcap > 0)
        snprintf(err, errcap, "Unknown message type: %s", echo);
    return -EINVAL;
}

int rc_proto_parse(const char *msg, size_t len, size_t max_topics, struct rc_cmd *cmd, char *err,
                   size_t errcap)
{
    memset(cmd, 0, sizeof(*cmd));
    if (err != NULL && errcap > 0)
        err[0] = '\0';
    if (msg == NULL || len == 0)
        return fail(err, errcap, msg_invalid_json);

    size_t nnul;
    cJSON *root = rc_json_parse(msg, len, RC_JSON_NUL, &nnul);
    if (root == NULL)
        return fail(err, errcap, msg_invalid_json);

    /* Messages without "\u0000" (all real ones) skip this entirely. */
    struct nul_map m = { 0 };
    struct rc_json_nul_string *strings = NULL;
    if (nnul > 0) {
        strings = calloc(nnul, sizeof(*strings));
        m.items = calloc(nnul, sizeof(*m.items));
        if (strings == NULL || m.items == NULL) {
            free(strings);
            free(m.items);
            cJSON_Delete(root);
            fail(err, errcap, "Out of memory");
            return -ENOMEM;
        }
        rc_json_scan(msg, len, RC_JSON_NUL, strings, nnul, &nnul);
        m.strings = strings;
        m.nstrings = nnul;
        nul_walk(&m, root, false);
    }

    int r = parse_tree(&m, root, max_topics, cmd, err, errcap);
    free(strings);
    free(m.items);
    if (r < 0) {
        cJSON_Delete(root);
        memset(cmd, 0, sizeof(*cmd));
        return r;
    }
    cmd->root = root;
    return 0;
}

void rc_cmd_free(struct rc_cmd *cmd)
{
    if (cmd == NULL)
        return;
    free(cmd->topics);
    cJSON_Delete(cmd->root);
    memset(cmd, 0, sizeof(*cmd));
}

/* ---- format ------------------------------------------------------------------ */

/* Appends n bytes at out[*pos] if they fit in cap; always advances *pos so
 * the caller learns the full length. */
static void put(char *out, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (n > 0 && *pos <= cap && n <= cap - *pos)
        memcpy(out + *pos, s, n);
    *pos += n;
}

static ssize_t finish(char *out, size_t cap, size_t pos)
{
    if (pos > cap)
        return -ENOSPC;
    if (pos < cap)
        out[pos] = '\0'; /* a convenience when there is room; not counted */
    return (ssize_t)pos;
}

ssize_t rc_proto_format_subscribed(char *out, size_t cap, enum rc_topic_key key,
                                   const struct rc_topic_name *names, size_t n)
{
    static const char head[] = "{\"type\":\"subscribed\",\"";
    const char *k = rc_topic_key_name(key);
    size_t pos = 0;

    put(out, cap, &pos, head, sizeof(head) - 1);
    put(out, cap, &pos, k, strlen(k));
    put(out, cap, &pos, "\":[", 3);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            put(out, cap, &pos, ",", 1);
        put(out, cap, &pos, "\"", 1);
        put(out, cap, &pos, names[i].name, names[i].len);
        put(out, cap, &pos, "\"", 1);
    }
    put(out, cap, &pos, "]}", 2);
    return finish(out, cap, pos);
}

ssize_t rc_proto_format_error(char *out, size_t cap, const char *message)
{
    static const char head[] = "{\"type\":\"error\",\"message\":\"";
    static const char hex[] = "0123456789abcdef";
    size_t pos = 0;

    put(out, cap, &pos, head, sizeof(head) - 1);
    for (const char *p = message != NULL ? message : ""; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            char esc[2] = { '\\', (char)c };
            put(out, cap, &pos, esc, 2);
        } else if (c < 0x20) {
            char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf] };
            put(out, cap, &pos, esc, 6);
        } else {
            put(out, cap, &pos, p, 1); /* UTF-8 passes through unchanged */
        }
    }
    put(out, cap, &pos, "\"}", 2);
    return finish(out, cap, pos);
}
