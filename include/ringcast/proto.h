/*
 * ringcast/proto.h — the JSON client protocol on /ws (seed 002, with seed
 * 001's `channels` and the neutral `topics` accepted as the same thing).
 *
 * Place in the data flow: a complete text message from a /ws client goes
 * through rc_proto_parse(); the connection layer applies the command to the
 * connection's subscription set and answers with rc_proto_format_*(). No
 * I/O. JSON is parsed with cJSON (Debian libcjson-dev).
 *
 * Client → server:
 *   {"type":"subscribe","markets":["a","b"]}     (or "channels" / "topics")
 *   {"type":"unsubscribe","markets":["a"]}
 *   {"type":"subscribe_all"}  {"type":"unsubscribe_all"}  {"type":"ping"}
 * Server → client:
 *   {"type":"subscribed","markets":[…full current set…]}  (the key the client used)
 *   {"type":"pong"}
 *   {"type":"error","message":"…"}            (never closes the connection)
 *
 * Thread: any; a parsed command belongs to the caller until rc_cmd_free().
 */
#ifndef RINGCAST_PROTO_H
#define RINGCAST_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RC_TOPIC_MAX_LEN 200 /* bytes of a topic name */

enum rc_cmd_type {
    RC_CMD_SUBSCRIBE = 1,
    RC_CMD_UNSUBSCRIBE,
    RC_CMD_SUBSCRIBE_ALL,
    RC_CMD_UNSUBSCRIBE_ALL,
    RC_CMD_PING,
};

/* Which key named the topics; acks answer with the same key. */
enum rc_topic_key {
    RC_KEY_MARKETS = 0, /* seed 002; also the default for subscribe_all acks */
    RC_KEY_CHANNELS,    /* seed 001 */
    RC_KEY_TOPICS,      /* neutral alias */
};

struct rc_topic_name {
    const char *name; /* points into cJSON's copy; valid until rc_cmd_free */
    size_t len;
};

struct rc_cmd {
    enum rc_cmd_type type;
    enum rc_topic_key key;       /* SUBSCRIBE/UNSUBSCRIBE: the key used */
    struct rc_topic_name *topics; /* SUBSCRIBE/UNSUBSCRIBE: validated names, duplicates kept */
    size_t ntopics;
    void *root; /* the cJSON tree, owned */
};

/* Key name as written on the wire: "markets", "channels", "topics". */
const char *rc_topic_key_name(enum rc_topic_key key);

/*
 * True when name[0..len) is a valid topic name: 1..RC_TOPIC_MAX_LEN bytes,
 * each printable ASCII (0x21–0x7E) other than '"' and '\\'. The name "*"
 * is valid and means the firehose.
 */
bool rc_topic_name_valid(const char *name, size_t len);

/*
 * Parses one client message (text, UTF-8 already validated).
 * Returns 0 and fills *cmd (free with rc_cmd_free), or -EINVAL with a
 * human-readable reason written NUL-terminated into err[0..errcap) — the
 * text the client gets in {"type":"error","message":…}:
 *   "Invalid JSON"                                   not JSON
 *   "Message must be a JSON object with a string \"type\""
 *   "Unknown message type: <type>"                  (type truncated to 64 bytes)
 *   "subscribe needs \"markets\", \"channels\" or \"topics\": an array of strings"
 *   "Invalid topic name: <name>"                    (name truncated, non-printables as '?')
 *   "Too many topics in one message (max <max_topics>)"
 * max_topics bounds the array length of one message.
 */
int rc_proto_parse(const char *msg, size_t len, size_t max_topics, struct rc_cmd *cmd, char *err,
                   size_t errcap);

/* Frees what rc_proto_parse allocated. Accepts a zeroed cmd. */
void rc_cmd_free(struct rc_cmd *cmd);

/*
 * Writes {"type":"subscribed","<key>":["n1","n2",…]} with the given names
 * (valid topic names need no escaping). Returns the length, or -ENOSPC.
 */
ssize_t rc_proto_format_subscribed(char *out, size_t cap, enum rc_topic_key key,
                                   const struct rc_topic_name *names, size_t n);

/* Writes {"type":"error","message":"<message>"} with JSON escaping of the
 * message. Returns the length, or -ENOSPC. */
ssize_t rc_proto_format_error(char *out, size_t cap, const char *message);

#endif
