/*
 * ringcast/message.h — the one check for everything that becomes a frame.
 *
 * Every path that turns bytes into a broadcast message — POST
 * /api/v1/publish, POST /ws/test, a message from Redis, the demo feed, and
 * the client dialects to come — describes it as a struct rc_message and
 * hands it to the shard's publish (src/net/shard.c), which runs
 * rc_message_check() on it unless the caller already did (a request of
 * several items checks all of them first, so a 400 publishes none). What
 * passes is a text frame every conforming client accepts:
 *
 *   - the topic is a valid name (rc_topic_name_valid) unless it is a
 *     broadcast;
 *   - the payload is valid UTF-8 (RFC 6455 §8.1: a client must fail a
 *     text message that is not);
 *   - the payload is at most the configured message size.
 *
 * JSON-ness is the path's own promise: an HTTP body is parsed as JSON as a
 * whole before its items exist, /ws/test builds its JSON itself, and Redis
 * delivers bytes as published.
 *
 * No I/O, no allocation. Thread: any.
 */
#ifndef RINGCAST_MESSAGE_H
#define RINGCAST_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rc_message {
    const char *topic; /* ignored for a broadcast */
    size_t topic_len;
    const void *data;
    size_t len;
    bool broadcast; /* to every /ws connection */
    bool checked;   /* set by rc_message_check when it passed */
};

/* Returns NULL and sets m->checked when m may become a frame; otherwise
 * the reason ("invalid topic name", "data is not valid UTF-8 …", "data
 * larger than …"), a static string. */
const char *rc_message_check(struct rc_message *m, uint64_t max_len);

#endif
