/*
 * ringcast/demo.h — the built-in synthetic market feed (--demo).
 *
 * A few dozen symbols (BTC, ETH, SOL, … then SYM64, SYM65 … when more
 * topics are asked for), each a random walk of a mid price with a small
 * order book, published on topic "demo:<SYMBOL>". Messages are JSON objects
 * whose first three keys are fixed, so load generators can read them
 * without a JSON parser:
 *
 *   {"topic":"demo:BTC","seq":42,"ts":1763750000123456,"type":"quote",
 *    "symbol":"BTC","bid":64250.12,"ask":64250.62,"last":64250.37,
 *    "bids":[[64250.12,0.532],…],"asks":[[64250.62,1.204],…],"pad":"…"}
 *
 * seq counts messages of that topic from 1 with no gaps; ts is the
 * publisher's wall clock in microseconds since the Unix epoch; "pad" (only
 * when needed) brings the message to the requested size.
 *
 * No I/O, no allocation after rc_demo_init. A feed belongs to one shard.
 */
#ifndef RINGCAST_DEMO_H
#define RINGCAST_DEMO_H

#include <stddef.h>
#include <stdint.h>

struct rc_demo_topic {
    char name[32]; /* "demo:BTC" */
    uint8_t name_len;
    uint64_t seq;
    double mid;
    double tick; /* price increment of the random walk */
};

struct rc_demo {
    struct rc_demo_topic *topics;
    unsigned ntopics;
    size_t msg_size; /* target bytes per message (the fields alone need ~280-380) */
    uint64_t rng;    /* xorshift state */
};

/* Sets up ntopics topics (1..100000) with deterministic start prices from
 * seed. Returns 0 or -ENOMEM / -EINVAL. */
int rc_demo_init(struct rc_demo *d, unsigned ntopics, size_t msg_size, uint64_t seed);

/* Frees the topics. Accepts a zeroed struct. */
void rc_demo_destroy(struct rc_demo *d);

/*
 * Writes the next message of topic i into out[0..cap): exactly
 * max(msg_size, natural size) bytes when cap allows. Advances the topic's
 * seq and random walk. Returns the length, or 0 when cap is too small.
 */
size_t rc_demo_next(struct rc_demo *d, unsigned i, uint64_t now_unix_us, char *out, size_t cap);

#endif
