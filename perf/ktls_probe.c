/*
 * perf/ktls_probe.c — does this kernel offer kernel TLS (the "tls" TCP ULP)?
 *
 * Kernel TLS would let ringcast hand the record encryption of shared
 * broadcast frames to the kernel: after the wolfSSL handshake the traffic
 * keys are installed on the socket (setsockopt SOL_TLS TLS_TX/TLS_RX) and
 * the shard sends plaintext frames with SEND/SENDMSG as on a plain
 * connection (no per-connection ciphertext buffer, no wolfSSL_write; with
 * a NIC offload not even the CPU encrypts). The first step is attaching the
 * ULP to a connected TCP socket, which is what this probe tries:
 *
 *   1. prints /proc/sys/net/ipv4/tcp_available_ulp
 *   2. connects a loopback TCP pair (127.0.0.1, ephemeral port)
 *   3. setsockopt(fd, SOL_TCP, TCP_ULP, "tls", 3) on the client side
 *   4. if that worked: setsockopt(fd, SOL_TLS, TLS_TX, ...) with a dummy
 *      TLS 1.3 key for AES-GCM-128 and for ChaCha20-Poly1305 (each on its
 *      own fresh socket), to tell which ciphers the kernel would take
 *
 * The last line is "ktls: available" or "ktls: unavailable (<reason>)";
 * exit status 0 if available, 1 if not, 2 if the probe itself failed.
 *
 * Build and run:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra perf/ktls_probe.c -o perf/build/ktls_probe
 *   perf/build/ktls_probe
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef SOL_TLS
#define SOL_TLS 282
#endif

static const char *errname(int e)
{
    switch (e) {
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case ENOTCONN: return "ENOTCONN";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EINVAL: return "EINVAL";
    case EBUSY: return "EBUSY";
    case EPERM: return "EPERM";
    default: return "errno";
    }
}

/* A connected loopback pair: *cli and *srv (the accepted side). 0 or -1. */
static int tcp_pair(int *cli, int *srv)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) < 0) {
        perror("ktls_probe: listener");
        return -1;
    }
    *cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*cli < 0 || connect(*cli, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("ktls_probe: connect");
        return -1;
    }
    *srv = accept(l, NULL, NULL);
    close(l);
    if (*srv < 0) {
        perror("ktls_probe: accept");
        return -1;
    }
    return 0;
}

/* setsockopt TCP_ULP "tls" on a fresh connected socket; returns 0 or errno,
 * and the socket in *fd (the caller closes it and *peer). */
static int attach_ulp(int *fd, int *peer)
{
    if (tcp_pair(fd, peer) < 0)
        return -1;
    return setsockopt(*fd, SOL_TCP, TCP_ULP, "tls", 3) == 0 ? 0 : errno;
}

static void try_cipher(const char *name, const void *info, socklen_t len)
{
    int fd, peer;
    int e = attach_ulp(&fd, &peer);
    if (e == 0)
        e = setsockopt(fd, SOL_TLS, TLS_TX, info, len) == 0 ? 0 : errno;
    if (e == 0)
        printf("setsockopt(SOL_TLS, TLS_TX, TLS 1.3 %s): ok\n", name);
    else if (e > 0)
        printf("setsockopt(SOL_TLS, TLS_TX, TLS 1.3 %s): -1 %s (%s)\n", name, errname(e), strerror(e));
    close(fd);
    close(peer);
}

int main(void)
{
    char ulps[256] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    if (f != NULL) {
        if (fgets(ulps, sizeof ulps, f) == NULL)
            ulps[0] = 0;
        fclose(f);
        ulps[strcspn(ulps, "\n")] = 0;
        printf("/proc/sys/net/ipv4/tcp_available_ulp: %s\n", ulps[0] ? ulps : "(empty)");
    } else {
        printf("/proc/sys/net/ipv4/tcp_available_ulp: unreadable (%s)\n", strerror(errno));
    }
    f = fopen("/proc/sys/kernel/osrelease", "r");
    char rel[128] = "?";
    if (f != NULL) {
        if (fgets(rel, sizeof rel, f) == NULL)
            strcpy(rel, "?");
        fclose(f);
        rel[strcspn(rel, "\n")] = 0;
    }
    printf("kernel: %s\n", rel);

    int fd, peer;
    int e = attach_ulp(&fd, &peer);
    if (e < 0) {
        printf("ktls: probe failed (no loopback TCP pair)\n");
        return 2;
    }
    close(fd);
    close(peer);
    if (e != 0) {
        printf("setsockopt(fd, SOL_TCP, TCP_ULP, \"tls\") on a connected loopback socket: -1 %s (%s)\n", errname(e),
               strerror(e));
        printf("ktls: unavailable (%s: %s)\n", errname(e),
               e == ENOENT ? "no \"tls\" ULP registered: CONFIG_TLS off or the tls module not loaded"
                           : strerror(e));
        return 1;
    }
    printf("setsockopt(fd, SOL_TCP, TCP_ULP, \"tls\") on a connected loopback socket: ok\n");

    struct tls12_crypto_info_aes_gcm_128 gcm;
    memset(&gcm, 0, sizeof gcm);
    gcm.info.version = TLS_1_3_VERSION;
    gcm.info.cipher_type = TLS_CIPHER_AES_GCM_128;
    try_cipher("AES-GCM-128", &gcm, sizeof gcm);
#ifdef TLS_CIPHER_CHACHA20_POLY1305
    struct tls12_crypto_info_chacha20_poly1305 cc;
    memset(&cc, 0, sizeof cc);
    cc.info.version = TLS_1_3_VERSION;
    cc.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
    try_cipher("ChaCha20-Poly1305", &cc, sizeof cc);
#else
    printf("setsockopt(SOL_TLS, TLS_TX, TLS 1.3 ChaCha20-Poly1305): not in these kernel headers\n");
#endif
    printf("ktls: available\n");
    return 0;
}
