/*
 * utf8.c — incremental UTF-8 validator (RFC 3629) for WebSocket text
 * messages and close reasons.
 *
 * Place in the data flow: rc_ws_decode() runs every chunk of an
 * uncompressed text message through rc_utf8_validate() as it passes, so an
 * invalid byte fails the connection at once (Autobahn case 6 "fail fast");
 * the permessage-deflate layer runs it over inflated output.
 *
 * Owns nothing and keeps no state beyond the caller's uint32_t; any thread
 * may call it.
 *
 * Design: Bjoern Hoehrmann's DFA. Each byte maps to one of 12 classes, and
 * the state is kept pre-multiplied by 12 so the next state is a single
 * table lookup at state + class. State 0 is ACCEPT (on a character
 * boundary), 12 is REJECT (sticky). The other states remember how many
 * continuation bytes are still needed and, right after the four lead bytes
 * whose second byte is restricted, which range that byte must fall in —
 * that restriction is what rules out overlongs, surrogates and code points
 * above U+10FFFF without ever decoding a code point.
 */
#include <stdint.h>
#include <string.h>

#include "ringcast/ws.h"

/* Byte classes. */
enum {
    C_ASCII = 0, /* 00..7F */
    C_CONT_LO,   /* 80..8F continuation */
    C_CONT_MID,  /* 90..9F continuation */
    C_CONT_HI,   /* A0..BF continuation */
    C_BAD,       /* C0, C1 (always overlong), F5..FF (beyond U+10FFFF) */
    C_LEAD2,     /* C2..DF: U+0080..U+07FF */
    C_E0,        /* E0: second byte A0..BF (else overlong) */
    C_LEAD3,     /* E1..EC, EE, EF */
    C_ED,        /* ED: second byte 80..9F (else surrogate U+D800..DFFF) */
    C_F0,        /* F0: second byte 90..BF (else overlong) */
    C_LEAD4,     /* F1..F3 */
    C_F4,        /* F4: second byte 80..8F (else > U+10FFFF) */
};

/* States, pre-multiplied by the number of classes. */
enum {
    S_ACCEPT = 0,   /* == RC_UTF8_ACCEPT */
    S_REJECT = 12,  /* == RC_UTF8_REJECT */
    S_NEED1 = 24,   /* one continuation byte (80..BF) to go */
    S_NEED2 = 36,   /* two to go */
    S_NEED3 = 48,   /* three to go */
    S_E0 = 60,      /* after E0: A0..BF, then one more */
    S_ED = 72,      /* after ED: 80..9F, then one more */
    S_F0 = 84,      /* after F0: 90..BF, then two more */
    S_F4 = 96,      /* after F4: 80..8F, then two more */
};

_Static_assert(S_ACCEPT == RC_UTF8_ACCEPT && S_REJECT == RC_UTF8_REJECT,
               "validator states must match ws.h");

#define R16(c) c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c

static const uint8_t byte_class[256] = {
    /* 00..7F */
    R16(C_ASCII), R16(C_ASCII), R16(C_ASCII), R16(C_ASCII),
    R16(C_ASCII), R16(C_ASCII), R16(C_ASCII), R16(C_ASCII),
    /* 80..8F */ R16(C_CONT_LO),
    /* 90..9F */ R16(C_CONT_MID),
    /* A0..BF */ R16(C_CONT_HI), R16(C_CONT_HI),
    /* C0..CF */ C_BAD, C_BAD, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2,
    C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2, C_LEAD2,
    /* D0..DF */ R16(C_LEAD2),
    /* E0..EF */ C_E0, C_LEAD3, C_LEAD3, C_LEAD3, C_LEAD3, C_LEAD3, C_LEAD3, C_LEAD3,
    C_LEAD3, C_LEAD3, C_LEAD3, C_LEAD3, C_LEAD3, C_ED, C_LEAD3, C_LEAD3,
    /* F0..FF */ C_F0, C_LEAD4, C_LEAD4, C_LEAD4, C_F4, C_BAD, C_BAD, C_BAD,
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
};

#undef R16

#define X S_REJECT

/* next_state[state + class]; X = REJECT. */
static const uint8_t next_state[108] = {
    /*           ASCII     80-8F     90-9F     A0-BF     bad LEAD2    E0    LEAD3    ED    F0    LEAD4    F4 */
    /* ACCEPT */ S_ACCEPT, X,        X,        X,        X,  S_NEED1, S_E0, S_NEED2, S_ED, S_F0, S_NEED3, S_F4,
    /* REJECT */ X,        X,        X,        X,        X,  X,       X,    X,       X,    X,    X,       X,
    /* NEED1  */ X,        S_ACCEPT, S_ACCEPT, S_ACCEPT, X,  X,       X,    X,       X,    X,    X,       X,
    /* NEED2  */ X,        S_NEED1,  S_NEED1,  S_NEED1,  X,  X,       X,    X,       X,    X,    X,       X,
    /* NEED3  */ X,        S_NEED2,  S_NEED2,  S_NEED2,  X,  X,       X,    X,       X,    X,    X,       X,
    /* E0     */ X,        X,        X,        S_NEED1,  X,  X,       X,    X,       X,    X,    X,       X,
    /* ED     */ X,        S_NEED1,  S_NEED1,  X,        X,  X,       X,    X,       X,    X,    X,       X,
    /* F0     */ X,        X,        S_NEED2,  S_NEED2,  X,  X,       X,    X,       X,    X,    X,       X,
    /* F4     */ X,        S_NEED2,  X,        X,        X,  X,       X,    X,       X,    X,    X,       X,
};

#undef X

#define ASCII_MASK8 UINT64_C(0x8080808080808080)

uint32_t rc_utf8_validate(uint32_t state, const uint8_t *p, size_t n)
{
    size_t i = 0;

    if (state == S_REJECT)
        return state;
    while (i < n) {
        /* Text is mostly ASCII: on a character boundary skip eight ASCII
         * bytes per step (memcpy keeps the unaligned load well-defined). */
        if (state == S_ACCEPT) {
            while (n - i >= 8) {
                uint64_t word;
                memcpy(&word, p + i, sizeof word);
                if (word & ASCII_MASK8)
                    break;
                i += 8;
            }
            if (i == n)
                break;
        }
        state = next_state[state + byte_class[p[i]]];
        if (state == S_REJECT)
            return state;
        i++;
    }
    return state;
}
