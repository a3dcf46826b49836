/*
 * ringcast/publish.h — the body of POST /api/v1/publish.
 *
 *   {"topic":"T","data":<any JSON>}
 *   {"broadcast":true,"data":<any JSON>}
 *   [ …any number of the two above… ]
 *
 * The whole body is validated first (cJSON, a full RFC 8259 parse); only a
 * body that is valid in every item is published, so a 400 never publishes
 * part of a request. The bytes delivered for an item are exactly the JSON
 * text of its "data" value as it appears in the body (spans found with
 * jsmn, Debian libjsmn-dev), never re-serialised: numbers, escapes and
 * whitespace inside the value reach subscribers unchanged.
 *
 * No I/O. Thread: any.
 */
#ifndef RINGCAST_PUBLISH_H
#define RINGCAST_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct rc_pub_item {
    bool broadcast;    /* {"broadcast":true,…}: to every connection */
    const char *topic; /* points into the body; NULL for broadcast */
    size_t topic_len;
    const char *data; /* the raw JSON text of "data", inside the body */
    size_t data_len;
};

/* Called once per item, in body order, only after the whole body validated.
 * A negative return stops the walk and is returned by rc_publish_parse. */
typedef int (*rc_pub_cb)(void *ctx, const struct rc_pub_item *item);

/*
 * Validates body[0..len) and calls cb for every item.
 * Returns the number of items published (0 for an empty array), or -EINVAL
 * with a reason NUL-terminated in err[0..errcap), one of:
 *   "invalid JSON"
 *   "body must be an object or an array of objects"
 *   "item N: missing \"data\""
 *   "item N: missing \"topic\" (or \"broadcast\":true)"
 *   "item N: \"topic\" must be a string"
 *   "item N: invalid topic name" (see rc_topic_name_valid; escapes are not allowed in names)
 *   "item N: \"broadcast\" must be true"
 *   "too many items (max M)"
 * (N counts from 0; for a single object N is 0.) Unknown keys are ignored.
 * max_items bounds the array length.
 */
ssize_t rc_publish_parse(const char *body, size_t len, size_t max_items, rc_pub_cb cb, void *ctx,
                         char *err, size_t errcap);

#endif
