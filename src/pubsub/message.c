/*
 * message.c — the one check for everything that becomes a frame (see
 * ringcast/message.h). Called by the shard's publish for every message,
 * whatever path it came by. Thread: any.
 */
#include "ringcast/message.h"

#include "ringcast/proto.h" /* rc_topic_name_valid */
#include "ringcast/ws.h"    /* rc_utf8_validate */

const char *rc_message_check(struct rc_message *m, uint64_t max_len) {
    if (!m->broadcast && !rc_topic_name_valid(m->topic, m->topic_len)) return "invalid topic name";
    if (m->len > max_len) return "data larger than --max-message-bytes";
    if (m->len && rc_utf8_validate(RC_UTF8_ACCEPT, m->data, m->len) != RC_UTF8_ACCEPT)
        return "data is not valid UTF-8 (text frames must be)";
    m->checked = true;
    return NULL;
}
