/* mock_flags.c - command line parsing of the llmrelay mock server; the flags
 * are documented at the top of mock_llm.c.  Parsing is strict: an unknown
 * flag, a missing or out-of-range value prints the usage and exits 2. */
#include "mock.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ flags */

static void usage(FILE *f)
{
    fputs(
        "usage: mock-llm [--port N] [--port-file F] [--name NAME]\n"
        "  [--models a,b] [--seed N] [--latency-ms MS] [--pad-bytes N]\n"
        "  [--rps R | --rps-schedule T:R,T:R,...] [--burst B]\n"
        "  [--rl-headers full|retry-after|none]\n"
        "  [--fail-rate P] [--fail-first N] [--fail-status 5xx]\n"
        "  [--fail-body json|html] [--throttle-first N] [--throttle-ms MS]\n"
        "  [--reset-rate P] [--hang-rate P] [--hang-first N]\n"
        "  [--bad-marker S] [--bad-status 4xx] [--bad-code C] [--bad-param P]\n"
        "  [--auth-key K] [--auth-header NAME] [--stream-chunk-ms MS]\n"
        "  [--stream-cut-after K] [--stream-stall-after K] [--stream-end-after K]\n"
        "  [--stream-error-after K] [--ignore-stream 0|1] [--parent-pid P]\n"
        "  [--stream-multiline-data 0|1] [--abuse MODE]\n"
        "  [--responses-status completed|failed|incomplete]\n",
        f);
}

static void bad(const char *flag, const char *why)
{
    fprintf(stderr, "mock-llm: %s: %s\n", flag, why);
    usage(stderr);
    exit(2);
}

static long num(const char *f, const char *v, long lo, long hi)
{
    char *e;
    errno = 0;
    long x = strtol(v, &e, 10);
    if (!*v || *e || errno || x < lo || x > hi)
        bad(f, "expected an integer in range");
    return x;
}

static double real(const char *f, const char *v, double lo, double hi)
{
    char *e;
    errno = 0;
    double x = strtod(v, &e);
    if (!*v || *e || errno || !(x >= lo && x <= hi))
        bad(f, "expected a number in range");
    return x;
}

static int name_ok(const char *s, size_t n)
{
    if (!n || n > NAME_MAX_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789._-", s[i]))
            return 0;
    return 1;
}

static void parse_models(const char *f, const char *v)
{
    size_t n = strlen(v);
    if (!n)
        bad(f, "empty list");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x21 || c == 0x7f || c == '"' || c == '\\')
            bad(f, "model names must be printable without quotes/backslashes");
    }
    cfg.nmodels = 1;
    for (size_t i = 0; i < n; i++)
        cfg.nmodels += v[i] == ',';
    cfg.models = calloc((size_t)cfg.nmodels, sizeof *cfg.models);
    int k = 0;
    for (const char *s = v;; k++) {
        const char *e = strchr(s, ',');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (!l || l > MODEL_MAX)
            bad(f, "empty or too long model name");
        cfg.models[k] = strndup(s, l);
        if (!e)
            break;
        s = e + 1;
    }
}

void parse_flags(int argc, char **argv)
{
    cfg.name = "mock";
    cfg.seed = 42;
    cfg.fail_status = 500;
    cfg.bad_status = 400;
    cfg.throttle_ms = 1000;
    cfg.cut_after = cfg.stall_after = cfg.end_after = cfg.error_after = -1;
    long burst = -1;
    for (int i = 1; i < argc; i++) {
        char *f = argv[i], *v, *eq;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(f, "--", 2) != 0)
            bad(f, "unexpected argument");
        if ((eq = strchr(f, '='))) {
            *eq = 0;
            v = eq + 1;
        } else {
            if (i + 1 >= argc)
                bad(f, "missing value");
            v = argv[++i];
        }
        const char *o = f + 2;
        if (!strcmp(o, "port"))
            cfg.port = (int)num(f, v, 0, 65535);
        else if (!strcmp(o, "port-file") && *v)
            cfg.port_file = v;
        else if (!strcmp(o, "name")) {
            if (!name_ok(v, strlen(v)))
                bad(f, "1-64 chars of [A-Za-z0-9._-]");
            cfg.name = v;
        } else if (!strcmp(o, "models") && !cfg.models)
            parse_models(f, v);
        else if (!strcmp(o, "seed")) {
            char *e;
            errno = 0;
            cfg.seed = strtoull(v, &e, 10);
            if (!*v || *e || errno || *v == '-')
                bad(f, "expected an unsigned integer");
        } else if (!strcmp(o, "pad-bytes"))
            cfg.pad_bytes = num(f, v, 0, 64 * 1024 * 1024);
        else if (!strcmp(o, "latency-ms"))
            cfg.latency_ms = num(f, v, 0, 86400000);
        else if (!strcmp(o, "rps")) {
            const char *why = rate_constant(real(f, v, 1e-6, 1e9));
            if (why)
                bad(f, why);
        } else if (!strcmp(o, "rps-schedule")) {
            const char *why = rate_schedule(v);
            if (why)
                bad(f, why);
        } else if (!strcmp(o, "burst"))
            burst = num(f, v, 1, 1000000000);
        else if (!strcmp(o, "rl-headers")) {
            if (!strcmp(v, "full"))
                cfg.rl_mode = RL_FULL;
            else if (!strcmp(v, "retry-after"))
                cfg.rl_mode = RL_RETRY_AFTER;
            else if (!strcmp(v, "none"))
                cfg.rl_mode = RL_NONE;
            else
                bad(f, "full, retry-after or none");
        } else if (!strcmp(o, "fail-rate"))
            cfg.fail_rate = real(f, v, 0, 1);
        else if (!strcmp(o, "fail-status"))
            cfg.fail_status = (int)num(f, v, 500, 599);
        else if (!strcmp(o, "fail-body")) {
            if (strcmp(v, "json") && strcmp(v, "html"))
                bad(f, "json or html");
            cfg.fail_html = !strcmp(v, "html");
        } else if (!strcmp(o, "fail-first"))
            cfg.fail_first = num(f, v, 0, 2000000000);
        else if (!strcmp(o, "throttle-first"))
            cfg.throttle_first = num(f, v, 0, 2000000000);
        else if (!strcmp(o, "throttle-ms"))
            cfg.throttle_ms = num(f, v, 0, 86400000);
        else if (!strcmp(o, "reset-rate"))
            cfg.reset_rate = real(f, v, 0, 1);
        else if (!strcmp(o, "hang-rate"))
            cfg.hang_rate = real(f, v, 0, 1);
        else if (!strcmp(o, "hang-first"))
            cfg.hang_first = num(f, v, 0, 2000000000);
        else if (!strcmp(o, "bad-marker") && *v)
            cfg.bad_marker = v;
        else if (!strcmp(o, "bad-status"))
            cfg.bad_status = (int)num(f, v, 400, 499);
        else if (!strcmp(o, "bad-code") || !strcmp(o, "bad-param")) {
            for (const char *k = v; *k; k++)
                if (!isalnum((unsigned char)*k) && !strchr("._-", *k))
                    bad(f, "[A-Za-z0-9._-]");
            if (!*v)
                bad(f, "a non-empty word");
            *(o[4] == 'c' ? &cfg.bad_code : &cfg.bad_param) = v;
        }
        else if (!strcmp(o, "auth-key") && *v) {
            for (const char *k = v; *k; k++)
                if ((unsigned char)*k <= 0x20 || *k == 0x7f)
                    bad(f, "no spaces or control characters");
            cfg.auth_key = v;
        } else if (!strcmp(o, "auth-header") && *v) {
            for (const char *k = v; *k; k++)
                if (!is_tchar((unsigned char)*k))
                    bad(f, "a header name (token characters)");
            cfg.auth_header = v;
        } else if (!strcmp(o, "stream-chunk-ms"))
            cfg.chunk_ms = num(f, v, 0, 86400000);
        else if (!strcmp(o, "stream-cut-after"))
            cfg.cut_after = num(f, v, 0, 1000000000);
        else if (!strcmp(o, "stream-stall-after"))
            cfg.stall_after = num(f, v, 0, 1000000000);
        else if (!strcmp(o, "stream-end-after"))
            cfg.end_after = num(f, v, 0, 1000000000);
        else if (!strcmp(o, "stream-error-after"))
            cfg.error_after = num(f, v, 0, 1000000000);
        else if (!strcmp(o, "ignore-stream"))
            cfg.ignore_stream = num(f, v, 0, 1);
        else if (!strcmp(o, "stream-multiline-data"))
            cfg.multiline_data = num(f, v, 0, 1);
        else if (!strcmp(o, "responses-status")) {
            if (strcmp(v, "completed") && strcmp(v, "failed") &&
                strcmp(v, "incomplete"))
                bad(f, "completed, failed or incomplete");
            cfg.responses_status = strcmp(v, "completed") ? v : NULL;
        } else if (!strcmp(o, "abuse")) {
            int m = abuse_mode(v);
            if (m < 0)
                bad(f, "chunk-size-endless, headers-drip, continue-endless, "
                       "trailers-endless or header-line-huge");
            cfg.abuse = m;
        } else if (!strcmp(o, "parent-pid"))
            cfg.parent_pid = num(f, v, 1, 2147483647);
        else
            bad(argv[i], "unknown flag, repeated --models or empty value");
    }
    if (burst > 0 && cfg.rps <= 0)
        bad("--burst", "requires --rps or --rps-schedule");
    cfg.burst = burst > 0 ? burst : (long)fmax(1.0, ceil(cfg.rps));
}
