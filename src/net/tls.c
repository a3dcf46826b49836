/*
 * tls.c — wss:// and https:// on the io_uring path, with wolfSSL driven by
 * custom I/O callbacks over the connection's own buffers.
 *
 * Place in the data flow:
 *
 *   recv CQE (ciphertext, provided buffer) ─► rc_tls_on_recv
 *        wolfSSL_accept / wolfSSL_read pull it through tls_recv_cb
 *        ─► plaintext (shard scratch) ─► rc_conn_on_plain (HTTP, WebSocket)
 *
 *   send queue (shared plaintext frames, views, responses) ─► rc_tls_flush
 *        gathered into 16 KiB records, wolfSSL_write → tls_send_cb appends
 *        ciphertext to the connection's `out` ─► one SEND in flight
 *
 * So a broadcast frame (and its deflated variant) is still built once; each
 * TLS connection encrypts from the shared bytes into its own records, and
 * the plaintext references are released as soon as they are encrypted.
 * Per connection, only the WOLFSSL object stays while idle: ciphertext
 * buffers exist only while bytes are in flight.
 *
 * Nothing blocks: wolfSSL never sees a socket (no wolfSSL_set_fd); the
 * callbacks return WANT_READ when the bytes of this completion are used up,
 * and the handshake is re-driven by the next recv completion. Handshakes
 * time out through the connection's deadline.
 *
 * Certificates: one WOLFSSL_CTX per load; the main thread builds a new one
 * on SIGHUP and hands each shard its own reference through the shard's
 * inbox (RC_MSG_TLS_CTX); connections keep the context they started with
 * (wolfSSL counts its references), so a reload never touches them.
 *
 * Thread: the owning shard, except rc_tls_global_init/rc_tls_ctx_load/
 * rc_tls_reload (main thread).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfio.h>

#include "shard.h"
#include "ringcast/util.h"

#define TLS_RECORD 16384           /* plaintext bytes per record we write */
#define TLS_TAG 16                 /* AEAD tag */
#define TLS_MAX_IN (16384 + 256)   /* largest ciphertext body a peer may send (RFC 8446 §5.2) */
enum { CT_ALERT = 21, CT_HANDSHAKE = 22, CT_APPDATA = 23 };
#define TLS_FLUSH_MAX (256u << 10) /* plaintext encrypted per flush, bounds ciphertext per connection */

/*
 * Server cipher order. Debian's wolfSSL has no AES-NI, so ChaCha20-Poly1305
 * goes first (measured: perf/bench_tls_ciphers.md); AES-GCM stays for
 * clients without ChaCha. TLS 1.2 suites only with forward secrecy.
 */
static const char CIPHERS[] = "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
                              "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                              "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                              "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";

struct rc_tls {
    WOLFSSL *ssl;
    const uint8_t *in; /* the recv buffer being fed, during one rc_tls_on_recv */
    size_t in_len;
    uint8_t *cin; /* ciphertext wolfSSL has not asked for yet, kept across recvs */
    uint32_t cin_len, cin_cap;
    uint8_t *out; /* ciphertext to send: [out_head, out_len) */
    uint32_t out_head, out_len, out_cap;
    bool started; /* bytes arrived: the first ones decide plain HTTP vs TLS */
    bool handshake_done;
    bool plain_http; /* a plaintext request on the TLS port: answered in clear, then closed */
    bool close_notify_sent;

    /* Record boundaries of the bytes fed to wolfSSL: the hand-off below
     * happens only between two records. */
    uint8_t trk_hdr[5], trk_hdr_len;
    uint32_t trk_left;

    /* After the hand-off (ChaCha20-Poly1305 sessions): wolfSSL is freed and
     * records are sealed and opened here with the session's traffic keys. */
    bool offloaded, tls13;
    uint8_t key_tx[32], key_rx[32], iv_tx[12], iv_rx[12];
    uint64_t seq_tx, seq_rx;
};

/* ---- I/O callbacks: wolfSSL's only view of the connection ---- */

static int tls_recv_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx) {
    (void)ssl;
    struct rc_conn *c = ctx;
    struct rc_tls *t = c->tls;
    size_t want = (size_t)sz, got = 0;
    if (t->cin_len) {
        got = RC_MIN(want, (size_t)t->cin_len);
        memcpy(buf, t->cin, got);
        memmove(t->cin, t->cin + got, t->cin_len - got);
        t->cin_len -= (uint32_t)got;
    }
    if (got < want && t->in_len) {
        size_t n = RC_MIN(want - got, t->in_len);
        memcpy(buf + got, t->in, n);
        t->in += n;
        t->in_len -= n;
        got += n;
    }
    if (got) return (int)got;
    if (c->flags & RC_CF_PEER_EOF) return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    return WOLFSSL_CBIO_ERR_WANT_READ;
}

static int out_reserve(struct rc_tls *t, size_t more) {
    if (t->out_head && t->out_head == t->out_len) t->out_head = t->out_len = 0;
    if ((size_t)t->out_len + more <= t->out_cap) return 0;
    size_t cap = t->out_cap ? t->out_cap : 4096;
    while (cap < (size_t)t->out_len + more) cap *= 2;
    if (cap > UINT32_MAX) return -ENOMEM;
    uint8_t *p = realloc(t->out, cap);
    if (!p) return -ENOMEM;
    t->out = p;
    t->out_cap = (uint32_t)cap;
    return 0;
}

static int tls_send_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx) {
    (void)ssl;
    struct rc_conn *c = ctx;
    struct rc_tls *t = c->tls;
    if (out_reserve(t, (size_t)sz) < 0) return WOLFSSL_CBIO_ERR_GENERAL;
    memcpy(t->out + t->out_len, buf, (size_t)sz);
    t->out_len += (uint32_t)sz;
    return sz; /* always all of it: the ring sends it later */
}

/* ---- contexts ---- */

static void log_wolfssl_error(const char *what, int err, char *out, size_t cap) {
    char buf[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)err, buf, sizeof buf);
    snprintf(out, cap, "%s: %s (%d)", what, buf, err);
}

/* Why a PEM file did not load: unreadable (errno) or not what was expected. */
static void file_error(const char *what, const char *path, int r, const char *expected, char *err, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, cap, "cannot read the %s %s: %s", what, path, strerror(errno));
        return;
    }
    fclose(f);
    if (r < 0) {
        char buf[WOLFSSL_MAX_ERROR_SZ];
        wolfSSL_ERR_error_string_n((unsigned long)r, buf, sizeof buf);
        snprintf(err, cap, "cannot load the %s %s: %s", what, path, buf);
    } else {
        snprintf(err, cap, "cannot load the %s %s: %s", what, path, expected);
    }
}

void rc_tls_global_init(void) { wolfSSL_Init(); }

void rc_tls_global_cleanup(void) { wolfSSL_Cleanup(); }

WOLFSSL_CTX *rc_tls_ctx_load(const char *cert, const char *key, char *err, size_t errcap) {
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (!ctx) {
        snprintf(err, errcap, "out of memory creating the TLS context");
        return NULL;
    }
    int r;
    if ((r = wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2)) != WOLFSSL_SUCCESS) {
        log_wolfssl_error("setting TLS 1.2 as the minimum", r, err, errcap);
        goto fail;
    }
    if ((r = wolfSSL_CTX_use_certificate_chain_file(ctx, cert)) != WOLFSSL_SUCCESS) {
        file_error("certificate", cert, r, "no valid PEM certificate in it", err, errcap);
        goto fail;
    }
    if ((r = wolfSSL_CTX_use_PrivateKey_file(ctx, key, WOLFSSL_FILETYPE_PEM)) != WOLFSSL_SUCCESS) {
        file_error("private key", key, r, "no valid PEM private key in it (encrypted keys are not supported)", err, errcap);
        goto fail;
    }
    if ((r = wolfSSL_CTX_check_private_key(ctx)) != WOLFSSL_SUCCESS) {
        snprintf(err, errcap, "the private key in %s does not match the certificate in %s", key, cert);
        goto fail;
    }
    if ((r = wolfSSL_CTX_set_cipher_list(ctx, CIPHERS)) != WOLFSSL_SUCCESS) {
        log_wolfssl_error("setting the cipher list", r, err, errcap);
        goto fail;
    }
    wolfSSL_CTX_SetIORecv(ctx, tls_recv_cb);
    wolfSSL_CTX_SetIOSend(ctx, tls_send_cb);
    return ctx;
fail:
    wolfSSL_CTX_free(ctx);
    return NULL;
}

/*
 * Debian's wolfSSL 5.5.4 (OPENSSL_EXTRA + SRP) frees ctx->srp in
 * wolfSSL_CTX_free before it looks at the reference count, so two threads
 * dropping references to one context at once free it twice (seen as
 * "double free or corruption" at exit and on SIGHUP with 2 shards). Context
 * references are taken and dropped only at start-up, reload and exit, so
 * one process-wide lock around them costs nothing on any hot path.
 */
static pthread_mutex_t ctx_ref_lock = PTHREAD_MUTEX_INITIALIZER;

void rc_tls_ctx_release(WOLFSSL_CTX *ctx) {
    if (!ctx) return;
    pthread_mutex_lock(&ctx_ref_lock);
    wolfSSL_CTX_free(ctx);
    pthread_mutex_unlock(&ctx_ref_lock);
}

int rc_tls_ctx_hold(WOLFSSL_CTX *ctx) {
    pthread_mutex_lock(&ctx_ref_lock);
    int r = wolfSSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&ctx_ref_lock);
    return r == WOLFSSL_SUCCESS ? 0 : -ENOMEM;
}

/* ---- connections ---- */

int rc_tls_conn_init(struct rc_shard *s, struct rc_conn *c) {
    struct rc_tls *t = calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    t->ssl = wolfSSL_new(s->tls_ctx);
    if (!t->ssl) {
        free(t);
        return -ENOMEM;
    }
    wolfSSL_SetIOReadCtx(t->ssl, c);
    wolfSSL_SetIOWriteCtx(t->ssl, c);
    /* ALPN: http/1.1 when the client offers it; anything else goes on
     * without ALPN rather than failing the handshake. */
    char proto[] = "http/1.1";
    wolfSSL_UseALPN(t->ssl, proto, sizeof proto - 1, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
    c->tls = t;
    RC_METRIC_ADD(&s->metrics, tls_connections, 1);
    return 0;
}

void rc_tls_conn_free(struct rc_shard *s, struct rc_conn *c) {
    struct rc_tls *t = c->tls;
    if (!t) return;
    if (t->ssl) wolfSSL_free(t->ssl);
    free(t->cin);
    free(t->out);
    free(t);
    c->tls = NULL;
    RC_METRIC_SUB(&s->metrics, tls_connections, 1);
}

bool rc_tls_out_pending(const struct rc_conn *c) { return c->tls && c->tls->out_len > c->tls->out_head; }

/* Puts c on the flush list when it has ciphertext to send. */
static void kick(struct rc_shard *s, struct rc_conn *c) {
    if (!rc_tls_out_pending(c) || (c->flags & (RC_CF_SENDING | RC_CF_DIRTY))) return;
    c->flags |= RC_CF_DIRTY;
    c->next_dirty = s->dirty;
    s->dirty = c;
}

static bool looks_like_http(const uint8_t *p, size_t n) {
    static const char *const methods[] = {"GET ", "POST", "PUT ", "HEAD", "DELE", "OPTI", "PATC", "CONN", "TRAC", "PRI "};
    if (n < 4) return n > 0 && p[0] >= 'A' && p[0] <= 'Z';
    for (size_t i = 0; i < RC_ARRAY_LEN(methods); i++)
        if (!memcmp(p, methods[i], 4)) return true;
    return false;
}

/* A plaintext HTTP request on the TLS port: one clear answer, then close. */
static void answer_plain_http(struct rc_shard *s, struct rc_conn *c) {
    struct rc_tls *t = c->tls;
    static const char body[] = "{\"error\":\"this port speaks TLS: use https:// or wss://\",\"status\":400}";
    char resp[512];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     sizeof body - 1, body);
    RC_METRIC_ADD(&s->metrics, tls_plain_http_total, 1);
    RC_INFO("conn %u: plain HTTP on the TLS port: answered 400", c->idx);
    t->plain_http = true;
    if (out_reserve(t, (size_t)n) < 0) {
        rc_conn_abort(s, c);
        return;
    }
    memcpy(t->out + t->out_len, resp, (size_t)n);
    t->out_len += (uint32_t)n;
    c->flags |= RC_CF_END_AFTER_SEND | RC_CF_DECODER_DEAD;
    kick(s, c);
}

static void handshake_failed(struct rc_shard *s, struct rc_conn *c, int err) {
    char why[200];
    log_wolfssl_error("TLS handshake failed", err, why, sizeof why);
    RC_METRIC_ADD(&s->metrics, tls_handshake_failures_total, 1);
    RC_INFO("conn %u: %s", c->idx, why);
    c->flags |= RC_CF_DECODER_DEAD;
    if (rc_tls_out_pending(c)) { /* the alert goes out first */
        c->flags |= RC_CF_END_AFTER_SEND;
        kick(s, c);
    } else {
        rc_conn_abort(s, c);
    }
}

/* ---- the record layer after the hand-off ----
 *
 * A WOLFSSL object costs ~56 KiB per connection in Debian's build (session
 * with room for a certificate chain, peer certificate, …) and stays for the
 * connection's life. Once the handshake is over, a ChaCha20-Poly1305 session
 * needs only its two keys, two IVs and two sequence numbers (RFC 8446 §5.2-3,
 * RFC 7905): the shard takes them from wolfSSL (the ATOMIC_USER getters
 * Debian's build exports), frees the WOLFSSL object and seals/opens records
 * itself with wolfCrypt's ChaCha20-Poly1305, straight from the shared frames
 * into the connection's ciphertext buffer. AES-GCM sessions (clients without
 * ChaCha) stay on wolfSSL. A TLS 1.3 KeyUpdate from the client after the
 * hand-off cannot be followed (no traffic secrets): that connection closes.
 */

static void track(struct rc_tls *t, const uint8_t *p, size_t n) {
    while (n) {
        if (t->trk_left) {
            size_t k = RC_MIN(n, (size_t)t->trk_left);
            t->trk_left -= (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        t->trk_hdr[t->trk_hdr_len++] = *p++;
        n--;
        if (t->trk_hdr_len == 5) {
            t->trk_left = (uint32_t)t->trk_hdr[3] << 8 | t->trk_hdr[4];
            t->trk_hdr_len = 0;
        }
    }
}

static void make_nonce(uint8_t out[12], const uint8_t iv[12], uint64_t seq) {
    memcpy(out, iv, 12);
    for (int i = 0; i < 8; i++) out[4 + i] ^= (uint8_t)(seq >> (56 - 8 * i));
}

/* Seals one record of `type` holding the n pieces (total bytes) into out. */
static int seal(struct rc_tls *t, uint8_t type, const struct iovec *v, int n, size_t total) {
    size_t clen = total + (t->tls13 ? 1 : 0) + TLS_TAG;
    if (out_reserve(t, 5 + clen) < 0) return -ENOMEM;
    uint8_t *h = t->out + t->out_len;
    h[0] = t->tls13 ? CT_APPDATA : type;
    h[1] = 3;
    h[2] = 3;
    h[3] = (uint8_t)(clen >> 8);
    h[4] = (uint8_t)clen;
    uint8_t aad[13], nonce[12];
    size_t aadlen = 5;
    if (t->tls13) {
        memcpy(aad, h, 5);
    } else { /* RFC 5246 6.2.3.3: seq_num + type + version + plaintext length */
        for (int i = 0; i < 8; i++) aad[i] = (uint8_t)(t->seq_tx >> (56 - 8 * i));
        aad[8] = type;
        aad[9] = 3;
        aad[10] = 3;
        aad[11] = (uint8_t)(total >> 8);
        aad[12] = (uint8_t)total;
        aadlen = 13;
    }
    make_nonce(nonce, t->iv_tx, t->seq_tx);
    ChaChaPoly_Aead a;
    if (wc_ChaCha20Poly1305_Init(&a, t->key_tx, nonce, CHACHA20_POLY1305_AEAD_ENCRYPT) ||
        wc_ChaCha20Poly1305_UpdateAad(&a, aad, (word32)aadlen))
        return -EIO;
    uint8_t *o = h + 5;
    for (int i = 0; i < n; i++) {
        if (v[i].iov_len && wc_ChaCha20Poly1305_UpdateData(&a, v[i].iov_base, o, (word32)v[i].iov_len)) return -EIO;
        o += v[i].iov_len;
    }
    if (t->tls13 && wc_ChaCha20Poly1305_UpdateData(&a, &type, o++, 1)) return -EIO; /* TLSInnerPlaintext.type */
    if (wc_ChaCha20Poly1305_Final(&a, o)) return -EIO;
    t->out_len += (uint32_t)(5 + clen);
    t->seq_tx++;
    return 0;
}

/* Takes the session over from wolfSSL when that is possible now: a
 * ChaCha20-Poly1305 session, nothing buffered anywhere, between records. */
static void try_offload(struct rc_shard *s, struct rc_conn *c) {
    struct rc_tls *t = c->tls;
    WOLFSSL *ssl = t->ssl;
    if (t->offloaded || !t->handshake_done || t->cin_len || t->in_len || t->trk_left || t->trk_hdr_len) return;
    if (wolfSSL_pending(ssl) || wolfSSL_GetBulkCipher(ssl) != wolfssl_chacha) return;
    int v = wolfSSL_GetVersion(ssl);
    if ((v != WOLFSSL_TLSV1_3 && v != WOLFSSL_TLSV1_2) || wolfSSL_GetKeySize(ssl) != 32 || wolfSSL_GetIVSize(ssl) != 12)
        return;
    word64 stx = 0, srx = 0;
    const unsigned char *ktx = wolfSSL_GetServerWriteKey(ssl), *krx = wolfSSL_GetClientWriteKey(ssl);
    const unsigned char *itx = wolfSSL_GetServerWriteIV(ssl), *irx = wolfSSL_GetClientWriteIV(ssl);
    /* (These return !seq on success in 5.5.4, a negative code on bad arguments.) */
    if (!ktx || !krx || !itx || !irx || wolfSSL_GetSequenceNumber(ssl, &stx) < 0 ||
        wolfSSL_GetPeerSequenceNumber(ssl, &srx) < 0)
        return;
    memcpy(t->key_tx, ktx, 32);
    memcpy(t->key_rx, krx, 32);
    memcpy(t->iv_tx, itx, 12);
    memcpy(t->iv_rx, irx, 12);
    t->seq_tx = stx;
    t->seq_rx = srx;
    t->tls13 = v == WOLFSSL_TLSV1_3;
    t->offloaded = true;
    wolfSSL_free(ssl);
    t->ssl = NULL;
    RC_METRIC_ADD(&s->metrics, tls_offloads_total, 1);
}

/* Opens one complete record (rec: header + body, writable) and hands its
 * plaintext on. Returns false when the connection ended. */
static bool open_record(struct rc_shard *s, struct rc_conn *c, uint8_t *rec, size_t body) {
    struct rc_tls *t = c->tls;
    size_t plen;
    uint8_t aad[13], nonce[12], type = rec[0];
    size_t aadlen = 5;
    uint8_t *p = rec + 5;
    if (body < TLS_TAG + (t->tls13 ? 1u : 0u)) goto bad;
    plen = body - TLS_TAG;
    if (t->tls13) {
        if (type != CT_APPDATA) goto bad;
        memcpy(aad, rec, 5);
    } else {
        for (int i = 0; i < 8; i++) aad[i] = (uint8_t)(t->seq_rx >> (56 - 8 * i));
        aad[8] = type;
        aad[9] = rec[1];
        aad[10] = rec[2];
        aad[11] = (uint8_t)(plen >> 8);
        aad[12] = (uint8_t)plen;
        aadlen = 13;
    }
    make_nonce(nonce, t->iv_rx, t->seq_rx);
    if (wc_ChaCha20Poly1305_Decrypt(t->key_rx, nonce, aad, (word32)aadlen, p, (word32)plen, p + plen, p) != 0) {
        RC_DEBUG("conn %u: TLS record failed authentication", c->idx);
        goto bad;
    }
    t->seq_rx++;
    if (t->tls13) { /* strip the zero padding; the last non-zero byte is the real type */
        while (plen && p[plen - 1] == 0) plen--;
        if (!plen) goto bad;
        type = p[--plen];
    }
    switch (type) {
    case CT_APPDATA:
        if (plen) rc_conn_on_plain(s, c, p, plen);
        return c->state != RC_CONN_DEAD;
    case CT_ALERT:
        if (plen >= 2 && p[1] == 0) { /* close_notify: the peer is done sending */
            rc_conn_on_eof(s, c);
            return false;
        }
        RC_DEBUG("conn %u: TLS alert %u from the client", c->idx, plen >= 2 ? p[1] : 0);
        rc_conn_abort(s, c);
        return false;
    case CT_HANDSHAKE: /* TLS 1.3 KeyUpdate (or anything post-handshake) */
        RC_INFO("conn %u: post-handshake TLS message (type %u) after the record hand-off: closing", c->idx,
                plen ? p[0] : 0);
        rc_conn_abort(s, c);
        return false;
    default:
        break;
    }
bad:
    rc_conn_abort(s, c);
    return false;
}

/* Appends n bytes of input to the carry (the recv buffer they sit in is
 * recycled); with nothing to keep, an empty carry's memory goes: idle
 * connections hold no input buffer. Returns 0 or -ENOMEM. */
static int carry_rest(struct rc_tls *t, const uint8_t *p, size_t n) {
    if (!n) {
        if (!t->cin_len && t->cin) {
            free(t->cin);
            t->cin = NULL;
            t->cin_cap = 0;
        }
        return 0;
    }
    size_t need = (size_t)t->cin_len + n;
    if (need > t->cin_cap) {
        uint8_t *q = realloc(t->cin, need);
        if (!q) return -ENOMEM;
        t->cin = q;
        t->cin_cap = (uint32_t)need;
    }
    memcpy(t->cin + t->cin_len, p, n);
    t->cin_len = (uint32_t)need;
    return 0;
}

static void offloaded_recv(struct rc_shard *s, struct rc_conn *c, const uint8_t *data, size_t len) {
    struct rc_tls *t = c->tls;
    uint8_t *scratch = (uint8_t *)s->tls_plain; /* holds one record: 5 + TLS_MAX_IN */
    for (;;) {
        if (c->state == RC_CONN_DEAD || c->state == RC_CONN_LINGER || (c->flags & RC_CF_DECODER_DEAD)) return;
        size_t have = t->cin_len + len;
        if (have < 5) break;
        uint8_t hdr[5];
        for (size_t i = 0; i < 5; i++) hdr[i] = i < t->cin_len ? t->cin[i] : data[i - t->cin_len];
        size_t body = (size_t)hdr[3] << 8 | hdr[4];
        if (body > TLS_MAX_IN || hdr[1] != 3) {
            RC_DEBUG("conn %u: bad TLS record header", c->idx);
            rc_conn_abort(s, c);
            return;
        }
        if (have < 5 + body) break;
        size_t from_carry = RC_MIN((size_t)t->cin_len, 5 + body), from_data = 5 + body - from_carry;
        if (from_carry) { /* (t->cin is NULL while empty) */
            memcpy(scratch, t->cin, from_carry);
            memmove(t->cin, t->cin + from_carry, t->cin_len - from_carry);
            t->cin_len -= (uint32_t)from_carry;
        }
        memcpy(scratch + from_carry, data, from_data);
        data += from_data;
        len -= from_data;
        if (!open_record(s, c, scratch, body)) return;
    }
    if (carry_rest(t, data, len) < 0) { /* a partial record waits for its rest */
        rc_conn_abort(s, c);
        return;
    }
    kick(s, c);
}

void rc_tls_on_recv(struct rc_shard *s, struct rc_conn *c, const uint8_t *data, size_t len) {
    struct rc_tls *t = c->tls;
    if (c->state == RC_CONN_DEAD || c->state == RC_CONN_LINGER || (c->flags & RC_CF_DECODER_DEAD)) return;
    if (t->offloaded) {
        offloaded_recv(s, c, data, len);
        return;
    }
    if (!t->started) {
        t->started = true;
        if (looks_like_http(data, len)) { /* a request line where a TLS record (0x16) belongs */
            answer_plain_http(s, c);
            return;
        }
    }
    track(t, data, len);
    t->in = data;
    t->in_len = len;
    if (!t->handshake_done) {
        int r = wolfSSL_accept(t->ssl);
        if (r != WOLFSSL_SUCCESS) {
            int err = wolfSSL_get_error(t->ssl, r);
            if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) {
                kick(s, c);
                goto keep_rest;
            }
            t->in_len = 0;
            handshake_failed(s, c, err);
            return;
        }
        t->handshake_done = true;
        RC_METRIC_ADD(&s->metrics, tls_handshakes_total, 1);
        /* From here on the HTTP request timeout applies, as on plain TCP. */
        rc_conn_set_deadline(s, c, s->now_ms + s->cfg->request_timeout_ms);
        kick(s, c); /* the server's last flight (and TLS 1.3 tickets) */
    }
    for (;;) {
        if (c->state == RC_CONN_DEAD || c->state == RC_CONN_LINGER || (c->flags & RC_CF_DECODER_DEAD)) break;
        int n = wolfSSL_read(t->ssl, s->tls_plain, TLS_RECORD);
        if (n > 0) {
            rc_conn_on_plain(s, c, (uint8_t *)s->tls_plain, (size_t)n);
            continue;
        }
        int err = wolfSSL_get_error(t->ssl, n);
        if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) break;
        if (err == WOLFSSL_ERROR_ZERO_RETURN) { /* close_notify: the peer is done sending */
            t->in_len = 0;
            rc_conn_on_eof(s, c);
            return;
        }
        char why[200];
        log_wolfssl_error("TLS read failed", err, why, sizeof why);
        RC_DEBUG("conn %u: %s", c->idx, why);
        t->in_len = 0;
        rc_conn_abort(s, c);
        return;
    }
    kick(s, c); /* alerts, key updates */
keep_rest:
    /* Bytes wolfSSL did not ask for yet (the recv buffer is recycled). */
    if (c->state != RC_CONN_DEAD && carry_rest(t, t->in, t->in_len) < 0) {
        rc_conn_abort(s, c);
        return;
    }
    t->in = NULL;
    t->in_len = 0;
    if (c->state != RC_CONN_DEAD && t->handshake_done) try_offload(s, c);
}

/*
 * Encrypts queued plaintext (up to TLS_FLUSH_MAX) when no ciphertext is
 * waiting, then sends the ciphertext: one SEND in flight. The queue's
 * references are dropped as soon as their bytes are encrypted.
 */
void rc_tls_flush(struct rc_shard *s, struct rc_conn *c) {
    struct rc_tls *t = c->tls;
    if (!rc_tls_out_pending(c) && t->handshake_done && !t->plain_http) {
        size_t done = 0;
        while (!rc_sendq_empty(&c->sq) && done < TLS_FLUSH_MAX) {
            struct iovec iov[RC_SEND_IOV_MAX];
            size_t total;
            int n = rc_sendq_fill_iov(&c->sq, iov, RC_SEND_IOV_MAX, &total, NULL);
            if (t->offloaded) { /* seal straight from the shared buffers: no staging copy */
                struct iovec part[RC_SEND_IOV_MAX];
                int k = 0;
                size_t take = 0;
                for (int i = 0; i < n && take < TLS_RECORD; i++, k++) {
                    part[k].iov_base = iov[i].iov_base;
                    part[k].iov_len = RC_MIN(iov[i].iov_len, (size_t)TLS_RECORD - take);
                    take += part[k].iov_len;
                }
                if (take && seal(t, CT_APPDATA, part, k, take) < 0) {
                    rc_conn_abort(s, c);
                    return;
                }
                rc_sendq_consume(&c->sq, &s->sq_pool, take);
                RC_METRIC_SUB(&s->metrics, queued_bytes, (uint64_t)take);
                done += take;
                continue;
            }
            /* Gather small buffers into one record; a big one goes as is. */
            size_t take = 0;
            const void *src;
            if (n == 1 || iov[0].iov_len >= TLS_RECORD) {
                src = iov[0].iov_base;
                take = RC_MIN(iov[0].iov_len, (size_t)TLS_FLUSH_MAX);
            } else {
                for (int i = 0; i < n && take < TLS_RECORD; i++) {
                    size_t k = RC_MIN(iov[i].iov_len, (size_t)TLS_RECORD - take);
                    memcpy(s->tls_stage + take, iov[i].iov_base, k);
                    take += k;
                }
                src = s->tls_stage;
            }
            if (take == 0) { /* empty buffers at the head: drop them */
                rc_sendq_consume(&c->sq, &s->sq_pool, 0);
                continue;
            }
            int w = wolfSSL_write(t->ssl, src, (int)take);
            if (w != (int)take) {
                char why[200];
                log_wolfssl_error("TLS write failed", wolfSSL_get_error(t->ssl, w), why, sizeof why);
                RC_DEBUG("conn %u: %s", c->idx, why);
                rc_conn_abort(s, c);
                return;
            }
            rc_sendq_consume(&c->sq, &s->sq_pool, take);
            RC_METRIC_SUB(&s->metrics, queued_bytes, (uint64_t)take);
            done += take;
        }
    }
    if (!rc_tls_out_pending(c)) return;
    struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
    io_uring_prep_send(sqe, c->fd, t->out + t->out_head, t->out_len - t->out_head, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_SEND, c->idx, c->gen));
    c->flags |= RC_CF_SENDING;
    c->sending_nodes = 0; /* nothing in the queue is in flight: it is all still plaintext */
    c->inflight++;
}

/* A SEND of ciphertext completed with res bytes (or an error). Returns
 * true when everything, ciphertext and queue, has been sent. */
bool rc_tls_on_send(struct rc_shard *s, struct rc_conn *c, int res) {
    struct rc_tls *t = c->tls;
    (void)s;
    t->out_head += (uint32_t)res;
    if (t->out_head >= t->out_len) {
        t->out_head = t->out_len = 0;
        if (t->out_cap > 4 * TLS_RECORD || rc_sendq_empty(&c->sq)) { /* idle connections hold no output buffer */
            free(t->out);
            t->out = NULL;
            t->out_cap = 0;
        }
    }
    return !rc_tls_out_pending(c) && rc_sendq_empty(&c->sq);
}

bool rc_tls_close_notify(struct rc_shard *s, struct rc_conn *c) {
    struct rc_tls *t = c->tls;
    if (!t || !t->handshake_done || t->close_notify_sent || t->plain_http) return false;
    t->close_notify_sent = true;
    if (t->offloaded) {
        uint8_t alert[2] = {1, 0}; /* warning, close_notify */
        struct iovec v = {alert, 2};
        if (seal(t, CT_ALERT, &v, 1, 2) < 0) return false;
    } else {
        wolfSSL_shutdown(t->ssl); /* writes the alert through tls_send_cb; the peer's reply is not awaited */
    }
    if (!rc_tls_out_pending(c)) return false;
    kick(s, c);
    return true;
}

void rc_tls_on_eof(struct rc_shard *s, struct rc_conn *c) {
    /* A connect + close without a byte (a TCP health check) is no failure. */
    if (!c->tls || !c->tls->started || c->tls->handshake_done || c->tls->plain_http) return;
    RC_METRIC_ADD(&s->metrics, tls_handshake_failures_total, 1);
    RC_INFO("conn %u: the client closed during the TLS handshake", c->idx);
}

bool rc_tls_handshake_done(const struct rc_conn *c) { return c->tls && c->tls->handshake_done; }
