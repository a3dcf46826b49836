/* bench_tls_ciphers.c — TLS 1.3 record cost on Debian's wolfSSL (libwolfssl-dev 5.5.4).
 *
 * What ringcast's TLS path pays per delivery: every TLS connection encrypts the
 * shared plaintext frame into its own records (wolfSSL_write), so the cipher
 * suite decides the per-delivery CPU. Compared in one run, side by side:
 *
 *   TLS13-CHACHA20-POLY1305-SHA256, TLS13-AES128-GCM-SHA256, TLS13-AES256-GCM-SHA384
 *
 * Two WOLFSSL objects (server, client) talk through in-memory custom I/O
 * callbacks (wolfSSL_CTX_SetIORecv/SetIOSend + wolfSSL_SetIOReadCtx/WriteCtx,
 * the same pattern ringcast uses over its io_uring buffers; no sockets). After
 * the handshake the server wolfSSL_write()s 256 B, 1 KiB and 16 KiB records in
 * batches; the client wolfSSL_read()s them back (checked byte for byte on the
 * first batch of every cell). Encrypt (server write) and decrypt (client read)
 * are timed separately.
 *
 * Handshakes/s: full TLS 1.3 handshakes (no resumption), fresh WOLFSSL pair
 * each, RSA-2048 vs ECDSA P-256 server certificate (self-signed, generated
 * with the openssl CLI into a mkdtemp() directory under /tmp at start), cipher
 * ChaCha20-Poly1305; server-side CPU (time inside wolfSSL_accept) reported
 * apart from the whole (both sides, one thread).
 *
 * Build and run (see perf/bench_tls_ciphers.md):
 *   cc -O2 -std=c11 -D_GNU_SOURCE perf/bench_tls_ciphers.c -o perf/build/bench_tls_ciphers -lwolfssl
 *   perf/build/bench_tls_ciphers [seconds-per-cell, default 0.5]
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfio.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ in-memory pipe */

typedef struct {
    unsigned char *buf;
    size_t cap, rd, wr;
    int discard; /* count written bytes but keep none (not used for timing cells) */
    uint64_t total;
} pipe_t;

static void pipe_init(pipe_t *p, size_t cap) {
    p->buf = malloc(cap);
    p->cap = cap;
    p->rd = p->wr = 0;
    p->discard = 0;
    p->total = 0;
    if (!p->buf) {
        perror("malloc");
        exit(1);
    }
}

static void pipe_free(pipe_t *p) { free(p->buf); }

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx) {
    (void)ssl;
    pipe_t *p = ctx;
    p->total += (uint64_t)sz;
    if (p->discard) return sz;
    if (p->rd == p->wr) p->rd = p->wr = 0;
    if (p->wr + (size_t)sz > p->cap) {
        if (p->rd) {
            memmove(p->buf, p->buf + p->rd, p->wr - p->rd);
            p->wr -= p->rd;
            p->rd = 0;
        }
        while (p->wr + (size_t)sz > p->cap) {
            p->cap *= 2;
            p->buf = realloc(p->buf, p->cap);
            if (!p->buf) {
                perror("realloc");
                exit(1);
            }
        }
    }
    memcpy(p->buf + p->wr, buf, (size_t)sz);
    p->wr += (size_t)sz;
    return sz;
}

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx) {
    (void)ssl;
    pipe_t *p = ctx;
    size_t avail = p->wr - p->rd;
    if (avail == 0) return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = avail < (size_t)sz ? avail : (size_t)sz;
    memcpy(buf, p->buf + p->rd, n);
    p->rd += n;
    return (int)n;
}

/* ------------------------------------------------------------ helpers */


/* This thread's CPU time: what a shard spends, unaffected by waiting for a
 * CPU when other processes run (the figures are medians of many batches). */
static double thread_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what, WOLFSSL *ssl, int ret) {
    char msg[WOLFSSL_MAX_ERROR_SZ] = "";
    int err = ssl ? wolfSSL_get_error(ssl, ret) : ret;
    wolfSSL_ERR_error_string_n((unsigned long)err, msg, sizeof msg);
    fprintf(stderr, "bench_tls_ciphers: %s failed: ret %d err %d (%s)\n", what, ret, err, msg);
    exit(1);
}

static char g_dir[64];

static void make_certs(void) {
    strcpy(g_dir, "/tmp/bench_tls_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        exit(1);
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/rsa.key -out %s/rsa.pem -days 2 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1 && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s/ec.key "
             "-out %s/ec.pem -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1",
             g_dir, g_dir, g_dir, g_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_tls_ciphers: openssl failed to make certificates: %s\n", cmd);
        exit(1);
    }
}

static void remove_certs(void) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_tls_ciphers: could not remove %s\n", g_dir);
}

typedef struct {
    WOLFSSL_CTX *sctx, *cctx;
} ctxs_t;

static ctxs_t make_ctxs(const char *kind, const char *cipher) {
    ctxs_t c;
    char cert[128], key[128];
    snprintf(cert, sizeof cert, "%s/%s.pem", g_dir, kind);
    snprintf(key, sizeof key, "%s/%s.key", g_dir, kind);
    c.sctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
    c.cctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    if (!c.sctx || !c.cctx) die("wolfSSL_CTX_new", NULL, 0);
    int r;
    if ((r = wolfSSL_CTX_use_certificate_chain_file(c.sctx, cert)) != WOLFSSL_SUCCESS) die("use_certificate_chain_file", NULL, r);
    if ((r = wolfSSL_CTX_use_PrivateKey_file(c.sctx, key, WOLFSSL_FILETYPE_PEM)) != WOLFSSL_SUCCESS) die("use_PrivateKey_file", NULL, r);
    if ((r = wolfSSL_CTX_load_verify_locations(c.cctx, cert, NULL)) != WOLFSSL_SUCCESS) die("load_verify_locations", NULL, r);
    wolfSSL_CTX_set_verify(c.cctx, WOLFSSL_VERIFY_PEER, NULL);
    if ((r = wolfSSL_CTX_set_cipher_list(c.sctx, cipher)) != WOLFSSL_SUCCESS) die("set_cipher_list(server)", NULL, r);
    if ((r = wolfSSL_CTX_set_cipher_list(c.cctx, cipher)) != WOLFSSL_SUCCESS) die("set_cipher_list(client)", NULL, r);
    wolfSSL_CTX_SetIORecv(c.sctx, io_recv);
    wolfSSL_CTX_SetIOSend(c.sctx, io_send);
    wolfSSL_CTX_SetIORecv(c.cctx, io_recv);
    wolfSSL_CTX_SetIOSend(c.cctx, io_send);
    return c;
}

static void free_ctxs(ctxs_t *c) {
    wolfSSL_CTX_free(c->sctx);
    wolfSSL_CTX_free(c->cctx);
}

typedef struct {
    WOLFSSL *srv, *cli;
    pipe_t s2c, c2s;
} pair_t;

static int want_io(WOLFSSL *ssl, int ret) {
    int e = wolfSSL_get_error(ssl, ret);
    return e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE;
}

/* Full handshake; *srv_ns gets the time spent inside wolfSSL_accept. */
static void pair_open(pair_t *p, ctxs_t *c, double *srv_ns) {
    pipe_init(&p->s2c, 1 << 16);
    pipe_init(&p->c2s, 1 << 16);
    p->srv = wolfSSL_new(c->sctx);
    p->cli = wolfSSL_new(c->cctx);
    if (!p->srv || !p->cli) die("wolfSSL_new", NULL, 0);
    wolfSSL_SetIOReadCtx(p->srv, &p->c2s);
    wolfSSL_SetIOWriteCtx(p->srv, &p->s2c);
    wolfSSL_SetIOReadCtx(p->cli, &p->s2c);
    wolfSSL_SetIOWriteCtx(p->cli, &p->c2s);
    if (wolfSSL_check_domain_name(p->cli, "localhost") != WOLFSSL_SUCCESS) die("check_domain_name", NULL, 0);
    int cdone = 0, sdone = 0;
    double s_ns = 0;
    for (int round = 0; !(cdone && sdone); round++) {
        if (round > 20) die("handshake (no progress)", NULL, 0);
        if (!cdone) {
            int r = wolfSSL_connect(p->cli);
            if (r == WOLFSSL_SUCCESS) cdone = 1;
            else if (!want_io(p->cli, r)) die("wolfSSL_connect", p->cli, r);
        }
        if (!sdone) {
            double t0 = thread_ns();
            int r = wolfSSL_accept(p->srv);
            s_ns += thread_ns() - t0;
            if (r == WOLFSSL_SUCCESS) sdone = 1;
            else if (!want_io(p->srv, r)) die("wolfSSL_accept", p->srv, r);
        }
    }
    /* the client may still have NewSessionTicket bytes to read; drain them */
    if (srv_ns) *srv_ns = s_ns;
}

static void pair_close(pair_t *p) {
    wolfSSL_free(p->srv);
    wolfSSL_free(p->cli);
    pipe_free(&p->s2c);
    pipe_free(&p->c2s);
}

/* ------------------------------------------------------------ record cells */

#define NCIPHERS 3
#define NSIZES 3
static const char *CIPHERS[NCIPHERS] = {"TLS13-CHACHA20-POLY1305-SHA256", "TLS13-AES128-GCM-SHA256",
                                        "TLS13-AES256-GCM-SHA384"};
static const char *SHORT[NCIPHERS] = {"CHACHA20-POLY1305", "AES128-GCM", "AES256-GCM"};
static const int SIZES[NSIZES] = {256, 1024, 16384};

typedef struct {
    double enc_ns, dec_ns; /* per record */
    uint64_t wire;         /* bytes on the wire per record */
} cell_t;

static cell_t run_cell(ctxs_t *c, int size, double seconds) {
    pair_t p;
    pair_open(&p, c, NULL);
    const char *neg = wolfSSL_get_cipher_name(p.srv);
    (void)neg;
    unsigned char *msg = malloc((size_t)size), *in = malloc((size_t)size);
    for (int i = 0; i < size; i++) msg[i] = (unsigned char)("{\"topic\":\"BTC\",\"px\":1.0}"[i % 24] ^ (i >> 8));
    /* drain the session ticket the server sent after the handshake */
    {
        char tmp[1];
        int r = wolfSSL_read(p.cli, tmp, 0);
        (void)r;
    }
    const int batch = size >= 16384 ? 16 : 128;
    uint64_t n = 0;
    enum { MAXS = 1 << 16 };
    static double enc_s[MAXS], dec_s[MAXS];
    size_t ns = 0;
    uint64_t wire_n = 0;
    int checked = 0;
    double t_end = thread_ns() + seconds * 1e9;
    while ((thread_ns() < t_end || n == 0) && ns < MAXS) {
        uint64_t w0 = p.s2c.total;
        double t0 = thread_ns();
        for (int i = 0; i < batch; i++) {
            int r = wolfSSL_write(p.srv, msg, size);
            if (r != size) die("wolfSSL_write", p.srv, r);
        }
        double t1 = thread_ns();
        for (int i = 0; i < batch; i++) {
            int got = 0;
            while (got < size) {
                int r = wolfSSL_read(p.cli, in + got, size - got);
                if (r <= 0) die("wolfSSL_read", p.cli, r);
                got += r;
            }
            if (!checked && memcmp(in, msg, (size_t)size) != 0) {
                fprintf(stderr, "bench_tls_ciphers: decrypted record differs from what was written\n");
                exit(1);
            }
        }
        checked = 1;
        double t2 = thread_ns();
        enc_s[ns] = (t1 - t0) / batch;
        dec_s[ns] = (t2 - t1) / batch;
        ns++;
        wire_n += p.s2c.total - w0;
        n += (uint64_t)batch;
        if (p.s2c.rd != p.s2c.wr) {
            fprintf(stderr, "bench_tls_ciphers: %zu bytes left unread in the pipe\n", p.s2c.wr - p.s2c.rd);
            exit(1);
        }
    }
    free(msg);
    free(in);
    pair_close(&p);
    return (cell_t){median(enc_s, ns), median(dec_s, ns), wire_n / n};
}

/* ------------------------------------------------------------ handshakes */

typedef struct {
    double hs_per_s;    /* complete handshakes (both sides, one thread) per second */
    double srv_us;      /* server-side µs per handshake (inside wolfSSL_accept) */
    double cpu_us;      /* process CPU µs per handshake (both sides) */
    char group[48];     /* key exchange group */
    char cipher[48];
} hs_t;

static hs_t run_handshakes(const char *kind, double seconds) {
    ctxs_t c = make_ctxs(kind, CIPHERS[0]);
    hs_t h = {0};
    /* warm-up + names */
    {
        pair_t p;
        pair_open(&p, &c, NULL);
        const char *g = wolfSSL_get_curve_name(p.srv);
        snprintf(h.group, sizeof h.group, "%s", g ? g : "?");
        snprintf(h.cipher, sizeof h.cipher, "%s", wolfSSL_get_cipher_name(p.srv));
        pair_close(&p);
    }
    enum { MAXH = 1 << 14 };
    static double srv_s[MAXH], all_s[MAXH];
    size_t n = 0;
    double t_end = thread_ns() + seconds * 1e9;
    while ((thread_ns() < t_end || n < 5) && n < MAXH) {
        pair_t p;
        double s, t0 = thread_ns();
        pair_open(&p, &c, &s);
        pair_close(&p);
        all_s[n] = thread_ns() - t0;
        srv_s[n] = s;
        n++;
    }
    h.srv_us = median(srv_s, n) / 1e3;
    h.cpu_us = median(all_s, n) / 1e3;
    h.hs_per_s = 1e6 / h.cpu_us;
    free_ctxs(&c);
    return h;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 0.5;
    if (seconds <= 0) seconds = 0.5;
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) die("wolfSSL_Init", NULL, 0);
    make_certs();

    printf("wolfSSL %s, TLS 1.3, in-memory I/O callbacks, %.2f s CPU per cell, RSA-2048 server cert for records;\n"
           "times are this thread's CPU time, medians over batches (records) or handshakes\n",
           wolfSSL_lib_version(), seconds);

    cell_t cells[NCIPHERS][NSIZES];
    for (int ci = 0; ci < NCIPHERS; ci++) {
        ctxs_t c = make_ctxs("rsa", CIPHERS[ci]);
        /* check the negotiated suite really is the one asked for */
        pair_t p;
        pair_open(&p, &c, NULL);
        if (strcmp(wolfSSL_get_cipher_name(p.srv), CIPHERS[ci]) != 0) {
            fprintf(stderr, "bench_tls_ciphers: negotiated %s, wanted %s\n", wolfSSL_get_cipher_name(p.srv), CIPHERS[ci]);
            exit(1);
        }
        pair_close(&p);
        for (int si = 0; si < NSIZES; si++) cells[ci][si] = run_cell(&c, SIZES[si], seconds);
        free_ctxs(&c);
    }

    printf("\nrecord encryption (server wolfSSL_write) — ns per record / plaintext MB/s\n\n");
    printf("| record | wire B |");
    for (int ci = 0; ci < NCIPHERS; ci++) printf(" %s |", SHORT[ci]);
    printf("\n|---|---|");
    for (int ci = 0; ci < NCIPHERS; ci++) printf("---|");
    printf("\n");
    for (int si = 0; si < NSIZES; si++) {
        printf("| %d B | %llu |", SIZES[si], (unsigned long long)cells[0][si].wire);
        for (int ci = 0; ci < NCIPHERS; ci++)
            printf(" %.0f ns / %.0f MB/s |", cells[ci][si].enc_ns, SIZES[si] / cells[ci][si].enc_ns * 1e3);
        printf("\n");
    }
    printf("\nrecord decryption (client wolfSSL_read) — ns per record / plaintext MB/s\n\n");
    printf("| record |");
    for (int ci = 0; ci < NCIPHERS; ci++) printf(" %s |", SHORT[ci]);
    printf("\n|---|");
    for (int ci = 0; ci < NCIPHERS; ci++) printf("---|");
    printf("\n");
    for (int si = 0; si < NSIZES; si++) {
        printf("| %d B |", SIZES[si]);
        for (int ci = 0; ci < NCIPHERS; ci++)
            printf(" %.0f ns / %.0f MB/s |", cells[ci][si].dec_ns, SIZES[si] / cells[ci][si].dec_ns * 1e3);
        printf("\n");
    }

    hs_t rsa = run_handshakes("rsa", seconds * 3), ec = run_handshakes("ec", seconds * 3);
    printf("\nfull TLS 1.3 handshakes (no resumption), %s, client verifies the server cert\n\n", rsa.cipher);
    printf("| server cert | key exchange | handshakes/s (both sides, 1 core) | server CPU µs/handshake | both sides CPU µs |\n");
    printf("|---|---|---|---|---|\n");
    printf("| RSA-2048 | %s | %.0f | %.0f | %.0f |\n", rsa.group, rsa.hs_per_s, rsa.srv_us, rsa.cpu_us);
    printf("| ECDSA P-256 | %s | %.0f | %.0f | %.0f |\n", ec.group, ec.hs_per_s, ec.srv_us, ec.cpu_us);
    printf("\nserver-only handshakes/s per core: RSA-2048 %.0f, ECDSA P-256 %.0f\n", 1e6 / rsa.srv_us, 1e6 / ec.srv_us);

    remove_certs();
    wolfSSL_Cleanup();
    return 0;
}
