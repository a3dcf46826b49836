/*
 * perf/redis_pub.c — Redis PUBLISH load for perf/bench_redis.py.
 *
 * Publishes {"topic":"T","seq":N,"ts":<unix µs>,"pad":"xx…"} on channel
 * <prefix>T (default prefix "ringcast:", the channel ringcast subscribes for
 * topic T) over one raw RESP connection, seq counting up from 1, ts the
 * CLOCK_REALTIME microseconds at the instant the command is built, so
 * perf/loadgen.c can check every delivery's sequence and measure
 * PUBLISH → client latency. redis-benchmark cannot do this: its payload is
 * the same for every command.
 *
 *   --rate max  pipelined, as fast as Redis takes them: up to --window
 *               commands without a reply, built --batch at a time (one ts per
 *               batch). With --omem-cap B (default 4 MiB) a second connection
 *               runs CLIENT LIST TYPE pubsub every --check-ms and stops
 *               publishing while any subscriber connection's output buffer in
 *               Redis (omem) is above B: the publisher then runs at the speed
 *               the subscriber (ringcast) drains, and Redis never hits its
 *               client-output-buffer-limit for pub/sub clients (32 MiB hard,
 *               8 MiB for 60 s by default), which would disconnect the
 *               subscriber and lose messages. paused_s says how long that
 *               throttle held the publisher back: > 0 means the subscriber,
 *               not Redis or this program, set the pace. --omem-cap 0: off.
 *   --rate R    R messages/s on a fixed schedule (absolute deadlines, one
 *               PUBLISH per tick, no batching), ts stamped as each is sent.
 *
 * Runs --duration seconds (0: until SIGTERM/SIGINT), then waits up to 2 s
 * for outstanding replies and prints one JSON object on stdout: sent,
 * replies, errors, zero_receivers (PUBLISH answered 0: nobody subscribed
 * yet), receivers (sum of the replies), elapsed_s, rate, paused_s,
 * omem_checks, max_omem, late_ticks.
 *
 * Build: cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -o perf/build/redis_pub perf/redis_pub.c
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#define OUT_CAP (1u << 20)   /* pending command bytes */
#define IN_CAP (256u * 1024) /* reply bytes read at once */
#define MSG_MAX (1u << 20)

static struct {
    const char *host;
    int port;
    const char *topic;
    const char *prefix;
    double rate; /* 0 = max */
    size_t size;
    double duration_s;
    long window;
    int batch;
    size_t omem_cap;
    double check_ms;
} opt = {"127.0.0.1", 6379, NULL, "ringcast:", 0, 256, 0, 4096, 64, 4u << 20, 5};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("redis_pub: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(bool nonblock)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    char port[16];
    snprintf(port, sizeof port, "%d", opt.port);
    int rc = getaddrinfo(opt.host, port, &hints, &ai);
    if (rc != 0)
        die("%s: %s", opt.host, gai_strerror(rc));
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die("connect %s:%d: %s", opt.host, opt.port, strerror(errno));
    freeaddrinfo(ai);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (nonblock)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* --- the command being built -------------------------------------- */

static char *g_out;
static size_t g_out_len, g_out_off;
static char g_chan[512];
static size_t g_chan_len;
static uint64_t g_seq;

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_str(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Appends one PUBLISH <channel> <message> to g_out. */
static void append_publish(uint64_t ts)
{
    static char msg[MSG_MAX];
    char *m = msg;
    m = put_str(m, "{\"topic\":\"", 10);
    m = put_str(m, opt.topic, strlen(opt.topic));
    m = put_str(m, "\",\"seq\":", 8);
    m = put_u64(m, ++g_seq);
    m = put_str(m, ",\"ts\":", 6);
    m = put_u64(m, ts);
    size_t head = (size_t)(m - msg);
    /* ,"pad":"x…"} makes the message exactly --size bytes when it fits */
    if (opt.size >= head + 10) {
        m = put_str(m, ",\"pad\":\"", 8);
        size_t n = opt.size - head - 10;
        memset(m, 'x', n);
        m += n;
        m = put_str(m, "\"}", 2);
    } else {
        *m++ = '}';
    }
    size_t mlen = (size_t)(m - msg);

    char *p = g_out + g_out_len;
    p = put_str(p, "*3\r\n$7\r\nPUBLISH\r\n$", 18);
    p = put_u64(p, g_chan_len);
    p = put_str(p, "\r\n", 2);
    p = put_str(p, g_chan, g_chan_len);
    p = put_str(p, "\r\n$", 3);
    p = put_u64(p, mlen);
    p = put_str(p, "\r\n", 2);
    p = put_str(p, msg, mlen);
    p = put_str(p, "\r\n", 2);
    g_out_len = (size_t)(p - g_out);
}

static size_t cmd_bound(void)
{
    return 64 + g_chan_len + opt.size + 128;
}

/* --- replies -------------------------------------------------------- */

static struct {
    uint64_t replies, errors, zero, receivers;
} g_st;
static char g_in[IN_CAP];
static size_t g_in_len;

/* Consumes whole reply lines from g_in (PUBLISH answers :N or -ERR …). */
static void parse_replies(void)
{
    size_t i = 0;
    for (;;) {
        char *nl = memchr(g_in + i, '\n', g_in_len - i);
        if (nl == NULL)
            break;
        char *line = g_in + i;
        if (line[0] == ':') {
            uint64_t v = strtoull(line + 1, NULL, 10);
            g_st.receivers += v;
            if (v == 0)
                g_st.zero++;
        } else {
            if (g_st.errors < 5)
                fprintf(stderr, "redis_pub: reply %.*s\n", (int)(nl - line), line);
            g_st.errors++;
        }
        g_st.replies++;
        i = (size_t)(nl - g_in) + 1;
    }
    memmove(g_in, g_in + i, g_in_len - i);
    g_in_len -= i;
}

/* Reads what is there; returns bytes read (0: nothing now), -1 on EOF/error. */
static ssize_t read_replies(int fd)
{
    ssize_t total = 0;
    for (;;) {
        ssize_t n = read(fd, g_in + g_in_len, sizeof g_in - g_in_len);
        if (n > 0) {
            g_in_len += (size_t)n;
            total += n;
            parse_replies();
            if (g_in_len == sizeof g_in)
                die("reply line longer than %u bytes", IN_CAP);
            continue;
        }
        if (n == 0)
            return -1;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return total;
        return -1;
    }
}

static ssize_t write_out(int fd)
{
    ssize_t total = 0;
    while (g_out_off < g_out_len) {
        ssize_t n = write(fd, g_out + g_out_off, g_out_len - g_out_off);
        if (n > 0) {
            g_out_off += (size_t)n;
            total += n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return -1;
    }
    if (g_out_off == g_out_len)
        g_out_off = g_out_len = 0;
    else if (g_out_off > OUT_CAP / 2) {
        memmove(g_out, g_out + g_out_off, g_out_len - g_out_off);
        g_out_len -= g_out_off;
        g_out_off = 0;
    }
    return total;
}

/* --- the throttle ----------------------------------------------------- */

/* Largest omem= among the pub/sub clients Redis lists (blocking query). */
static size_t pubsub_omem(int fd)
{
    static const char q[] = "CLIENT LIST TYPE pubsub\r\n";
    if (write(fd, q, sizeof q - 1) != (ssize_t)(sizeof q - 1))
        die("CLIENT LIST: write: %s", strerror(errno));
    static char buf[1 << 20];
    size_t len = 0, need = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            die("CLIENT LIST: read: %s", n == 0 ? "EOF" : strerror(errno));
        len += (size_t)n;
        buf[len] = 0;
        if (need == 0) {
            char *nl = strstr(buf, "\r\n");
            if (nl == NULL)
                continue;
            if (buf[0] != '$')
                die("CLIENT LIST: %s", buf);
            need = (size_t)(nl - buf) + 2 + strtoull(buf + 1, NULL, 10) + 2;
            if (need >= sizeof buf)
                die("CLIENT LIST reply too long");
        }
        if (len >= need)
            break;
    }
    size_t max = 0;
    for (char *p = buf; (p = strstr(p, " omem=")) != NULL; p += 6) {
        size_t v = strtoull(p + 6, NULL, 10);
        if (v > max)
            max = v;
    }
    return max;
}

/* --- main ---------------------------------------------------------- */

static void usage(void)
{
    fputs("usage: redis_pub --topic T [--host H] [--port P] [--prefix ringcast:] [--rate max|R]\n"
          "                 [--size BYTES] [--duration S] [--window N] [--batch N]\n"
          "                 [--omem-cap BYTES] [--check-ms MS]\n",
          stderr);
    exit(2);
}

static double num(const char *name, const char *v, double lo)
{
    char *end;
    double d = strtod(v, &end);
    if (*v == 0 || *end != 0 || !(d >= lo))
        die("%s: bad value '%s'", name, v);
    return d;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"topic", 1, 0, 't'}, {"prefix", 1, 0, 'x'},
        {"rate", 1, 0, 'r'}, {"size", 1, 0, 's'}, {"duration", 1, 0, 'd'}, {"window", 1, 0, 'w'},
        {"batch", 1, 0, 'b'}, {"omem-cap", 1, 0, 'o'}, {"check-ms", 1, 0, 'c'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = (int)num("--port", optarg, 1); break;
        case 't': opt.topic = optarg; break;
        case 'x': opt.prefix = optarg; break;
        case 'r': opt.rate = strcmp(optarg, "max") == 0 ? 0 : num("--rate", optarg, 0.001); break;
        case 's': opt.size = (size_t)num("--size", optarg, 0); break;
        case 'd': opt.duration_s = num("--duration", optarg, 0); break;
        case 'w': opt.window = (long)num("--window", optarg, 1); break;
        case 'b': opt.batch = (int)num("--batch", optarg, 1); break;
        case 'o': opt.omem_cap = (size_t)num("--omem-cap", optarg, 0); break;
        case 'c': opt.check_ms = num("--check-ms", optarg, 0.1); break;
        default: usage();
        }
    }
    if (opt.topic == NULL || optind != argc)
        usage();
    g_chan_len = (size_t)snprintf(g_chan, sizeof g_chan, "%s%s", opt.prefix, opt.topic);
    if (g_chan_len >= sizeof g_chan)
        die("channel name too long");
    if (opt.size > MSG_MAX - 64)
        die("--size too large");
    if (cmd_bound() * (size_t)opt.batch > OUT_CAP / 2)
        die("--size × --batch too large");
    g_out = malloc(OUT_CAP);
    if (g_out == NULL)
        die("out of memory");

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int fd = dial(true);
    int ctl = opt.rate == 0 && opt.omem_cap ? dial(false) : -1;

    double t0 = mono_s(), cpu0 = cpu_s();
    double end = opt.duration_s > 0 ? t0 + opt.duration_s : 0;
    double next_check = t0, paused_since = 0, paused_s = 0, interval = opt.rate > 0 ? 1.0 / opt.rate : 0;
    double next_tick = t0;
    bool paused = false;
    uint64_t checks = 0, late = 0;
    size_t max_omem = 0;
    const char *fail = NULL;

    while (!g_stop) {
        double now = mono_s();
        if (end && now >= end)
            break;
        if (ctl >= 0 && now >= next_check) {
            size_t om = pubsub_omem(ctl);
            checks++;
            if (om > max_omem)
                max_omem = om;
            bool p = om > opt.omem_cap;
            if (p && !paused)
                paused_since = now;
            else if (!p && paused)
                paused_s += now - paused_since;
            paused = p;
            now = mono_s();
            next_check = now + opt.check_ms / 1000.0;
        }
        if (opt.rate == 0) {
            if (!paused) {
                long outstanding = (long)(g_seq - g_st.replies);
                while (outstanding < opt.window && g_out_len + cmd_bound() * (size_t)opt.batch < OUT_CAP) {
                    uint64_t ts = real_us();
                    for (int i = 0; i < opt.batch; i++)
                        append_publish(ts);
                    outstanding += opt.batch;
                }
            }
        } else {
            while (now >= next_tick && g_out_len + cmd_bound() < OUT_CAP) {
                append_publish(real_us());
                next_tick += interval;
                if (now - next_tick > interval) { /* more than one tick behind: count it */
                    late++;
                }
            }
        }
        ssize_t w = write_out(fd);
        ssize_t r = read_replies(fd);
        if (w < 0 || r < 0) {
            fail = "connection to Redis lost";
            break;
        }
        if (w == 0 && r == 0) {
            /* Nothing moved: sleep until the socket is ready, the next tick or the next check. */
            struct pollfd pfd = {.fd = fd, .events = POLLIN | (g_out_len > g_out_off ? POLLOUT : 0)};
            double until = opt.rate > 0 ? next_tick : now + 0.001;
            if (ctl >= 0 && next_check < until)
                until = next_check;
            if (end && end < until)
                until = end;
            double dt = until - mono_s();
            if (dt < 0)
                dt = 0;
            struct timespec ts = {(time_t)dt, (long)((dt - (double)(time_t)dt) * 1e9)};
            ppoll(&pfd, 1, &ts, NULL);
        }
    }
    double t1 = mono_s();
    if (paused)
        paused_s += t1 - paused_since;
    /* Send what is built, then collect the outstanding replies (2 s at most). */
    double stop_by = t1 + 2;
    while (fail == NULL && g_st.replies < g_seq && mono_s() < stop_by) {
        if (write_out(fd) < 0 || read_replies(fd) < 0) {
            fail = "connection to Redis lost";
            break;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN | (g_out_len > g_out_off ? POLLOUT : 0)};
        poll(&pfd, 1, 10);
    }
    double el = t1 - t0;
    printf("{\"sent\":%" PRIu64 ",\"replies\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"zero_receivers\":%" PRIu64
           ",\"receivers\":%" PRIu64 ",\"elapsed_s\":%.6f,\"rate\":%.1f,\"paused_s\":%.6f,\"omem_checks\":%" PRIu64
           ",\"max_omem\":%zu,\"late_ticks\":%" PRIu64 ",\"cpu_s\":%.6f,\"failure\":%s%s%s}\n",
           g_seq, g_st.replies, g_st.errors, g_st.zero, g_st.receivers, el, el > 0 ? (double)g_seq / el : 0.0,
           paused_s, checks, max_omem, late, cpu_s() - cpu0, fail ? "\"" : "", fail ? fail : "null",
           fail ? "\"" : "");
    fflush(stdout);
    return fail || g_st.errors ? 1 : 0;
}
