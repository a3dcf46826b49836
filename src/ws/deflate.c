/*
 * deflate.c — permessage-deflate payloads (RFC 7692 §7.2): one-shot
 * compression of a broadcast message, and bounded inflation of a client's
 * message.
 *
 * Place in the data flow: src/fanout compresses a broadcast frame once with
 * rc_deflate_message() and sends the same payload to every subscriber that
 * negotiated compression (always with server_no_context_takeover, so the
 * payload depends on nothing but the message). src/net hands a client's
 * RSV1 message to rc_inflate_message() (always with
 * client_no_context_takeover, so one inflater per shard serves every
 * connection).
 *
 * Libraries (chosen by perf/bench_deflate.c; figures in
 * perf/bench_deflate.md):
 *   - rc_deflater_create(level) levels 1..3 compress with ISA-L (igzip) at
 *     that level: the cheapest per message, and its hist_bits honours any
 *     window of 2^8..2^15 bytes.
 *   - levels 4..12 compress with libdeflate at that level: per byte sent it
 *     is the best ratio (level 6: 15-20 % fewer bytes than ISA-L at 16-64 KiB
 *     of JSON), which is what matters when one frame goes to many
 *     subscribers. libdeflate's window is fixed at 32 KiB, so a message
 *     longer than a smaller negotiated window (server_max_window_bits < 15)
 *     goes to ISA-L level 3 instead. (A message no longer than the window
 *     cannot refer further back than its own start, so any output is
 *     compliant.)
 *   - Levels outside 1..12 are clamped. Level 6 is the broadcast default to
 *     use; level 1 when CPU matters more than bytes (few subscribers, echo).
 *   - Whatever the library produces, a payload longer than the message in
 *     stored blocks is replaced by stored blocks, so the output never
 *     exceeds rc_deflate_bound() (a fixed, library-independent figure).
 *   - Inflate uses zlib (raw, 32 KiB window, reset per message).
 *
 * Framing of the output (RFC 7692 §7.2.1): ISA-L ends with a sync flush
 * (an empty stored block, 00 00 FF FF), whose 00 00 FF FF is removed.
 * libdeflate always ends with a BFINAL block and has no sync flush; we append
 * the single byte 0x00 — the first byte of an empty non-final stored block
 * whose remaining 00 00 FF FF the receiver appends — exactly the §7.2.3.4
 * example and what uWebSockets does with libdeflate. zlib-based receivers
 * (Python, Node, browsers) stop at the BFINAL block or, like Chromium, reset
 * and read the empty stored block; either way they get the message and stay
 * in sync with the next one. tests/unit/ws/test_deflate.c checks Python's
 * and Node's zlib on both kinds of output.
 *
 * A deflater and an inflater belong to one thread (one per shard): they hold
 * mutable library state and scratch space. Nothing is allocated per message.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l.h>
#include <libdeflate.h>
#include <zlib.h>

#include "ringcast/pmd.h"

#define RC_DEFLATE_MIN_LEVEL 1
#define RC_DEFLATE_MAX_LEVEL 12
#define RC_ISAL_MAX_LEVEL 3   /* levels 1..3 are ISA-L's, 4..12 libdeflate's */
#define RC_STORED_BLOCK_MAX 65535

struct rc_deflater {
    struct libdeflate_compressor *ld; /* levels 4..12, else NULL */
    uint32_t isal_level;              /* 1..3: the level, or 3 under libdeflate */
    uint8_t *isal_level_buf;          /* ISA-L's work space for isal_level */
    uint32_t isal_level_buf_size;
    struct isal_zstream isal;         /* ~80 KiB: keep last */
};

static const uint8_t sync_tail[4] = {0x00, 0x00, 0xff, 0xff};

static uint32_t isal_level_buf_size(uint32_t level)
{
    switch (level) {
    case 1: return ISAL_DEF_LVL1_DEFAULT;
    case 2: return ISAL_DEF_LVL2_DEFAULT;
    default: return ISAL_DEF_LVL3_DEFAULT;
    }
}

struct rc_deflater *rc_deflater_create(int level)
{
    if (level < RC_DEFLATE_MIN_LEVEL)
        level = RC_DEFLATE_MIN_LEVEL;
    if (level > RC_DEFLATE_MAX_LEVEL)
        level = RC_DEFLATE_MAX_LEVEL;

    struct rc_deflater *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->isal_level = level <= RC_ISAL_MAX_LEVEL ? (uint32_t)level : RC_ISAL_MAX_LEVEL;
    d->isal_level_buf_size = isal_level_buf_size(d->isal_level);
    /* Zeroed once: ISA-L's match finder may read hash entries no message
     * has written yet (it checks every candidate, so output is correct
     * either way), and memcheck would report those reads. */
    d->isal_level_buf = calloc(1, d->isal_level_buf_size);
    if (!d->isal_level_buf)
        goto fail;
    if (level > RC_ISAL_MAX_LEVEL) {
        d->ld = libdeflate_alloc_compressor(level);
        if (!d->ld)
            goto fail;
    }
    isal_deflate_init(&d->isal);
    return d;

fail:
    rc_deflater_destroy(d);
    return NULL;
}

void rc_deflater_destroy(struct rc_deflater *d)
{
    if (!d)
        return;
    libdeflate_free_compressor(d->ld);
    free(d->isal_level_buf);
    free(d);
}

/* The message in stored blocks of at most 65535 bytes, then the 0x00 that
 * starts the empty stored block completed by the receiver's 00 00 FF FF. */
static size_t stored_size(size_t len)
{
    return len + 5 * ((len + RC_STORED_BLOCK_MAX - 1) / RC_STORED_BLOCK_MAX) + 1;
}

size_t rc_deflate_bound(size_t len)
{
    return stored_size(len);
}

static size_t write_stored(const uint8_t *in, size_t len, uint8_t *out)
{
    uint8_t *p = out;
    while (len > 0) {
        size_t n = len < RC_STORED_BLOCK_MAX ? len : RC_STORED_BLOCK_MAX;
        p[0] = 0x00; /* BFINAL 0, BTYPE 00, padding */
        p[1] = (uint8_t)n;
        p[2] = (uint8_t)(n >> 8);
        p[3] = (uint8_t)~n;
        p[4] = (uint8_t)(~n >> 8);
        memcpy(p + 5, in, n);
        p += 5 + n;
        in += n;
        len -= n;
    }
    *p++ = 0x00;
    return (size_t)(p - out);
}

/*
 * libdeflate: a BFINAL-terminated stream, then 0x00 (see the file comment).
 * Returns the payload length, or 0 when it would not fit in avail bytes.
 */
static size_t deflate_libdeflate(struct rc_deflater *d, const void *in, size_t len, uint8_t *out,
                                 size_t avail)
{
    if (avail < 2)
        return 0;
    size_t n = libdeflate_deflate_compress(d->ld, in, len, out, avail - 1);
    if (n == 0)
        return 0;
    out[n] = 0x00;
    return n + 1;
}

/*
 * ISA-L: a sync-flushed stream whose final 00 00 FF FF is removed. out has
 * room for avail bytes of payload plus the 4 bytes of the tail (the caller
 * guarantees out[0..avail+4) is writable). Returns the payload length, or 0
 * when it does not fit.
 */
static size_t deflate_isal(struct rc_deflater *d, const void *in, size_t len, uint8_t *out,
                           size_t avail, unsigned window_bits)
{
    struct isal_zstream *s = &d->isal;
    size_t room = avail + sizeof sync_tail;

    isal_deflate_reset(s);
    s->level = d->isal_level;
    s->level_buf = d->isal_level_buf;
    s->level_buf_size = d->isal_level_buf_size;
    s->hist_bits = (uint16_t)window_bits;
    s->gzip_flag = IGZIP_DEFLATE;
    s->flush = SYNC_FLUSH;
    s->end_of_stream = 0;
    s->next_in = (uint8_t *)(uintptr_t)in;
    s->avail_in = (uint32_t)len;
    s->next_out = out;
    s->avail_out = room > UINT32_MAX ? UINT32_MAX : (uint32_t)room;

    /* One call normally does it all; loop while it makes progress. */
    for (;;) {
        uint32_t in_before = s->avail_in, out_before = s->avail_out;
        if (isal_deflate(s) != COMP_OK)
            return 0;
        /* Done: all input taken, the flush block written, nothing held in
         * ISA-L's small temporary output buffer (avail_out > 0). */
        if (s->avail_in == 0 && s->internal_state.state == ZSTATE_NEW_HDR && s->avail_out > 0)
            break;
        if (s->avail_out == 0 || (s->avail_in == in_before && s->avail_out == out_before))
            return 0; /* out of room */
    }
    size_t n = s->total_out;
    if (n < sizeof sync_tail || memcmp(out + n - sizeof sync_tail, sync_tail, sizeof sync_tail) != 0)
        return 0; /* not a sync flush: never seen; the stored fallback stays correct */
    return n - sizeof sync_tail;
}

ssize_t rc_deflate_message(struct rc_deflater *d, const void *in, size_t len, void *out, size_t cap,
                           unsigned window_bits)
{
    if (!d || (!in && len) || !out || window_bits < 8 || window_bits > 15 || len > UINT32_MAX)
        return -EINVAL;

    size_t stored = stored_size(len);
    /* Compressed output is only worth it when shorter than stored blocks. */
    size_t avail = cap < stored ? cap : stored;

    if (len == 0) {
        /* §7.2.3.6: the empty message is the single byte 0x00 (an empty
         * stored block without its 00 00 FF FF). */
        if (cap < 1)
            return -ENOSPC;
        *(uint8_t *)out = 0x00;
        return 1;
    }

    size_t n = 0;
    if (d->ld && (window_bits == 15 || len <= ((size_t)1 << window_bits))) {
        n = deflate_libdeflate(d, in, len, out, avail);
    } else if (avail > sizeof sync_tail) {
        /* ISA-L writes the 4 tail bytes too: let it use up to cap. */
        size_t isal_avail = cap - sizeof sync_tail < avail ? cap - sizeof sync_tail : avail;
        n = deflate_isal(d, in, len, out, isal_avail, window_bits);
    }
    if (n > 0 && n < stored)
        return (ssize_t)n;
    if (cap < stored)
        return -ENOSPC;
    return (ssize_t)write_stored(in, len, out);
}

/* ---- inflate ---------------------------------------------------------------- */

struct rc_inflater {
    z_stream zs;
};

struct rc_inflater *rc_inflater_create(void)
{
    struct rc_inflater *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    if (inflateInit2(&z->zs, -15) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void rc_inflater_destroy(struct rc_inflater *z)
{
    if (!z)
        return;
    inflateEnd(&z->zs);
    free(z);
}

/*
 * How the message may end. The receiver appends 00 00 FF FF (§7.2.2); then
 * the stream must either
 *   - stop at a block boundary exactly after the appended bytes (the usual
 *     sync-flush ending: the tail completes an empty stored block), or
 *   - end with a BFINAL block (§7.2.3.4), after which only the tail may
 *     follow, optionally preceded by the one byte 0x00 that turns the tail
 *     into an empty stored block (the RFC's own example, libdeflate users).
 * Anything else — a message cut inside a block, bytes after the final block —
 * is -EINVAL.
 *
 * The output cap: zlib writes into out[0..cap); when that is full, it gets a
 * one-byte spare buffer, and the first byte written there means the message
 * is longer than cap: -E2BIG, after at most cap + 1 bytes of work however
 * large the bomb.
 */
ssize_t rc_inflate_message(struct rc_inflater *z, const void *in, size_t len, void *out, size_t cap)
{
    if (!z || (!in && len) || (!out && cap))
        return -EINVAL;
    /* A 0-byte payload: the tail alone is no complete DEFLATE block, but
     * zlib-based receivers (Python, Node's ws) take it as the empty message;
     * so do we. Senders use 0x00 (§7.2.3.6). */
    if (len == 0)
        return 0;

    z_stream *zs = &z->zs;
    if (inflateReset(zs) != Z_OK)
        return -EINVAL;

    const uint8_t *msg_next = in;
    size_t msg_left = len; /* bytes of the message not yet given to zlib */
    bool tail_given = false;
    uint8_t spare;
    bool spare_in_use = false;

    zs->next_in = NULL;
    zs->avail_in = 0;
    if (cap == 0) {
        zs->next_out = &spare;
        zs->avail_out = 1;
        spare_in_use = true;
    } else {
        zs->next_out = out;
        zs->avail_out = cap > UINT_MAX ? UINT_MAX : (uInt)cap;
    }

    for (;;) {
        if (zs->avail_in == 0) {
            if (msg_left > 0) {
                uInt n = msg_left > UINT_MAX ? UINT_MAX : (uInt)msg_left;
                zs->next_in = (Bytef *)(uintptr_t)msg_next;
                zs->avail_in = n;
                msg_next += n;
                msg_left -= n;
            } else if (!tail_given) {
                zs->next_in = (Bytef *)(uintptr_t)sync_tail;
                zs->avail_in = sizeof sync_tail;
                tail_given = true;
            } else {
                break; /* everything consumed */
            }
        }
        if (zs->avail_out == 0 && !spare_in_use) {
            if (zs->total_out < cap) { /* cap > UINT_MAX: next slice of out */
                size_t left = cap - zs->total_out;
                zs->next_out = (Bytef *)out + zs->total_out;
                zs->avail_out = left > UINT_MAX ? UINT_MAX : (uInt)left;
            } else {
                zs->next_out = &spare;
                zs->avail_out = 1;
                spare_in_use = true;
            }
        }

        /* Z_BLOCK on the tail: stop at the block boundary it must reach. */
        int rc = inflate(zs, tail_given ? Z_BLOCK : Z_SYNC_FLUSH);
        if (spare_in_use && zs->avail_out == 0)
            return -E2BIG;
        switch (rc) {
        case Z_OK:
            continue;
        case Z_BUF_ERROR: /* no progress: needs input or output, given above */
            if (zs->avail_in > 0 && zs->avail_out > 0)
                return -EINVAL; /* cannot happen; never spin */
            continue;
        case Z_STREAM_END: {
            size_t rest = zs->avail_in + (tail_given ? 0 : msg_left);
            if (tail_given) {
                if (rest != 0)
                    return -EINVAL; /* ended inside the appended tail */
            } else if (rest > 1 || (rest == 1 && *(msg_left ? msg_next : zs->next_in) != 0x00)) {
                return -EINVAL; /* data after the final block */
            }
            return (ssize_t)zs->total_out;
        }
        case Z_MEM_ERROR:
            return -ENOMEM;
        default: /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR */
            return -EINVAL;
        }
    }

    /*
     * Everything consumed without Z_STREAM_END. Accept only at a block
     * boundary (data_type bit 128), and then either after the final block
     * (bit 64: a BFINAL block ended exactly with the tail, e.g. the payload
     * 0x01) or with no bits left over (the tail's empty stored block).
     */
    int dt = zs->data_type;
    if (!(dt & 128) || (!(dt & 64) && (dt & 63) != 0))
        return -EINVAL;
    return (ssize_t)zs->total_out;
}
