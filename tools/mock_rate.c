/* mock_rate.c - the mock's rate limit: one token bucket over chat requests
 * whose refill rate follows a schedule of phases (--rps R is the schedule
 * "0:R"), the rate-limit headers it adds to answers, and its statistics.
 *
 * The schedule's clock starts at the first chat request (so a harness may
 * take its time starting other servers) and is not reset by /stats?reset=1.
 * The bucket holds at most --burst tokens whatever the phase; between two
 * requests it refills by the integral of the rate over the phases crossed. */
#include "mock.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct phase {
    double from_s, rps;
    uint64_t passed, limited; /* requests that passed / got 429 in the phase */
};

static struct phase sched[RATE_PHASES_MAX];
static int nsched;                /* 0: no rate limit */
static double clock0 = -1;        /* now_us() seconds of the first chat request */
static double tokens, last_refill; /* last_refill: schedule clock seconds */

/* "T:R,T:R,...": T seconds (the first 0, then increasing), R req/s > 0.
 * Returns NULL or why the value is refused. */
const char *rate_schedule(const char *v)
{
    int n = 0;
    const char *s = v;
    if (nsched)
        return "given twice, or with --rps (the schedule 0:R)";
    for (;;) {
        if (n == RATE_PHASES_MAX)
            return "at most 64 phases";
        char *e;
        errno = 0;
        double t = strtod(s, &e);
        if (e == s || *e != ':' || errno || !(t >= 0 && t <= 31536000))
            return "expected T:R,T:R,... with T seconds in 0..31536000";
        if (n == 0 ? t != 0 : t <= sched[n - 1].from_s)
            return "the first T must be 0 and each next T larger";
        s = e + 1;
        errno = 0;
        double r = strtod(s, &e);
        if (e == s || (*e && *e != ',') || errno || !(r >= 1e-6 && r <= 1e9))
            return "each R must be a rate in 1e-6..1e9 requests per second";
        sched[n].from_s = t;
        sched[n].rps = r;
        n++;
        if (!*e)
            break;
        s = e + 1;
    }
    nsched = n;
    cfg.rps = sched[0].rps;
    return NULL;
}

const char *rate_constant(double rps)
{
    if (nsched)
        return "given twice, or with --rps-schedule";
    sched[0].from_s = 0;
    sched[0].rps = cfg.rps = rps;
    nsched = 1;
    return NULL;
}

void rate_init(void)
{
    tokens = (double)cfg.burst;
}

/* the schedule's clock in seconds, -1 before the first chat request */
static double clock_s(void)
{
    return clock0 < 0 ? -1 : (double)now_us() / 1e6 - clock0;
}

void rate_anchor(void)
{
    if (clock0 < 0)
        clock0 = (double)now_us() / 1e6;
}

static int phase_at(double t)
{
    int i = 0;
    while (i + 1 < nsched && sched[i + 1].from_s <= t)
        i++;
    return i;
}

/* requests the schedule allows from clock a to b (a <= b) */
static double allowance(double a, double b)
{
    double sum = 0;
    for (int i = 0; i < nsched; i++) {
        double lo = fmax(a, sched[i].from_s);
        double hi = i + 1 < nsched ? fmin(b, sched[i + 1].from_s) : b;
        if (hi > lo)
            sum += (hi - lo) * sched[i].rps;
    }
    return sum;
}

double rate_current(void)
{
    return nsched ? sched[phase_at(fmax(0, clock_s()))].rps : 0;
}

int rate_admit(char *h, size_t hs)
{
    double now = clock_s();
    if (now < 0) { /* the caller counts the request first: cannot happen */
        rate_anchor();
        now = 0;
    }
    if (now > last_refill)
        tokens = fmin((double)cfg.burst, tokens + allowance(last_refill, now));
    last_refill = fmax(last_refill, now);
    struct phase *p = &sched[phase_at(now)];
    size_t hl = strlen(h);
    long long lim = llround(p->rps * 60);
    char full[64], ms[64];
    if (tokens < 1) {
        p->limited++;
        double wait = (1 - tokens) / p->rps; /* at the current phase's rate */
        go_duration(full, sizeof full, ((double)cfg.burst - tokens) / p->rps);
        fmt_ms(ms, sizeof ms, wait * 1000);
        if (cfg.rl_mode == RL_FULL)
            snprintf(h + hl, hs - hl,
                     "Retry-After: %.0f\r\nretry-after-ms: %s\r\n"
                     "x-ratelimit-limit-requests: %lld\r\n"
                     "x-ratelimit-remaining-requests: 0\r\n"
                     "x-ratelimit-reset-requests: %s\r\n",
                     fmax(1.0, ceil(wait - 1e-9)), ms, lim, full);
        else if (cfg.rl_mode == RL_RETRY_AFTER)
            snprintf(h + hl, hs - hl, "Retry-After: 1\r\n");
        return 0;
    }
    p->passed++;
    tokens -= 1;
    go_duration(full, sizeof full, ((double)cfg.burst - tokens) / p->rps);
    if (cfg.rl_mode == RL_FULL)
        snprintf(h + hl, hs - hl,
                 "x-ratelimit-limit-requests: %lld\r\n"
                 "x-ratelimit-remaining-requests: %lld\r\n"
                 "x-ratelimit-reset-requests: %s\r\n",
                 lim, (long long)floor(tokens), full);
    return 1;
}

void rate_stats_json(struct buf *b)
{
    buf_printf(b, ",\"rps\":%.17g,\"rps_clock\":%.6f,\"rps_phases\":[",
               rate_current(), clock_s());
    for (int i = 0; i < nsched; i++)
        buf_printf(b,
                   "%s{\"from\":%.17g,\"rps\":%.17g,\"passed\":%llu,"
                   "\"limited\":%llu}",
                   i ? "," : "", sched[i].from_s, sched[i].rps,
                   (unsigned long long)sched[i].passed,
                   (unsigned long long)sched[i].limited);
    buf_puts(b, "]");
}

void rate_stats_reset(void)
{
    for (int i = 0; i < nsched; i++)
        sched[i].passed = sched[i].limited = 0;
}
