/*
 * buf.c — rc_buf constructors and their release functions.
 * Thread: the shard that owns the buffer.
 */
#include "ringcast/buf.h"

#include <stdlib.h>

static void release_inline(struct rc_buf *b) { free(b); }

static void release_adopted(struct rc_buf *b) {
    free(b->owner);
    free(b);
}

struct rc_buf *rc_buf_new(size_t cap) {
    if (cap > UINT32_MAX) return NULL;
    struct rc_buf *b = malloc(sizeof *b + cap);
    if (!b) return NULL;
    b->refs = 1;
    b->len = 0;
    b->data = (uint8_t *)(b + 1);
    b->release = release_inline;
    b->owner = NULL;
    return b;
}

struct rc_buf *rc_buf_adopt(void *block, uint8_t *data, size_t len) {
    if (len > UINT32_MAX) return NULL;
    struct rc_buf *b = malloc(sizeof *b);
    if (!b) return NULL;
    b->refs = 1;
    b->len = (uint32_t)len;
    b->data = data;
    b->release = release_adopted;
    b->owner = block;
    return b;
}
