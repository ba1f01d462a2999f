/* mock_llm.c - an OpenAI-compatible mock chat server with fault injection,
 * used by llmrelay's tests and benchmarks.  Build:
 *   cc -O2 -g -Wall -Wextra -o build/mock-llm tools/mock_*.c -lm
 *
 * Single-threaded epoll server on 127.0.0.1 only (see mock_net.c), HTTP/1.1
 * keep-alive (HTTP/1.0 too), Content-Length and chunked request bodies,
 * Expect: 100-continue, headers <= 64 KiB (431), body <= 16 MiB (413),
 * malformed requests -> 400 + close.  Pipelined requests are answered in order.
 *
 * Endpoints
 *   POST any path ending in /chat/completions (Azure's /openai/deployments/M/...
 *     too)   chat.completion or SSE; /stats says the last one's path?query in last_target
 *        ("stream": true at top level).  content = "echo: " + raw JSON text
 *        of the last "content" string in the body (<= 200 bytes, never cut
 *        inside an escape / UTF-8 sequence), or "hello from <name>".
 *        prompt_tokens = body bytes/4, completion_tokens = content bytes/4
 *        (both >= 1).  Headers: x-request-id: <name>-<n> (n = 1, 2, ...).
 *        SSE: role chunk, one chunk per word (word + following spaces), a
 *        finish chunk, a usage chunk when "include_usage": true, [DONE];
 *        sent with chunked transfer-encoding.
 *   POST any path ending in /embeddings   {"object":"list","data":[{"object":
 *        "embedding","index":i,"embedding":[floats]}],"model","usage":
 *        {"prompt_tokens","total_tokens"}}: one embedding per "input" element
 *        (a string or one token list: 1; ["a","b"] or [[1],[2]]: 2), of
 *        "dimensions" floats (1..4096, default 8), in [-1, 1), a hash of the
 *        input's JSON text and the index (same input, same vectors);
 *        "encoding_format": "base64" (the Node SDK's default): the same
 *        values as little-endian float32, base64.  Never streamed ("stream"
 *        is ignored).
 *   POST any path ending in /responses   {"id":"resp_<name>-<n>","object":
 *        "response","created_at","status":"completed","model","output":[{
 *        "type":"message","id":"msg_<name>-<n>","status","role":"assistant",
 *        "content":[{"type":"output_text","text":"echo: <input>",
 *        "annotations":[]}]}],"error":null,"incomplete_details":null,"usage":
 *        {"input_tokens","output_tokens","total_tokens"}}.  The echoed text
 *        is the "input" string, else the last "content" or "text" string of
 *        the input items.  "stream": true: named SSE events (event: + data:,
 *        each data with "type" and "sequence_number" 0, 1, ...):
 *        response.created (the response, status "in_progress", no usage),
 *        one response.output_text.delta per word ("delta"),
 *        response.output_text.done ("text"), response.completed (the whole
 *        response); no [DONE].  --responses-status failed|incomplete: the
 *        answer's status, and the terminal event is response.failed (no
 *        output, "error":{"code":"server_error",...}) or
 *        response.incomplete ("incomplete_details":{"reason":
 *        "max_output_tokens"}).
 *   POST any path ending in /completions (not /chat/completions)
 *        {"id":"cmpl-<name>-<n>","object":"text_completion","created","model",
 *        "choices":[{"text":"echo: <prompt>","index":0,"logprobs":null,
 *        "finish_reason":"stop"}],"usage":{...}}; "stream": true: one
 *        text_completion chunk per word, a finish chunk, a usage chunk with
 *        "include_usage", [DONE].
 *   Usage (all four, so costs are hand-computable): prompt/input tokens =
 *        request body bytes / 4, completion/output tokens = echoed text bytes
 *        ("echo: " included) / 4, both rounded down and >= 1; total = sum
 *        (embeddings: total = prompt, no completion tokens).  Without the
 *        text to echo: "hello from <name>".  Every answer of the four (errors
 *        too) carries x-request-id: <name>-<n>, n counting them all; all the
 *        flags below that say "chat" apply to the four alike, except
 *        --pad-bytes and --stream-multiline-data (chat only).
 *   GET /health      {"status":"ok","name":...}
 *   GET /v1/models   (also /models) the --models list or "mock-model"
 *   GET /stats[?reset=1]  counters (below); reset=1 zeroes them after use
 *   anything else    404 OpenAI error JSON (code "unknown_url")
 *
 * Flags (each takes a value; --flag V or --flag=V; bad flag -> usage, exit 2)
 *   --port N (0 = any)  --port-file F (written atomically via F.tmp)
 *   --name NAME ([A-Za-z0-9._-], default mock)   --models a,b,c
 *   --seed N            PRNG seed for the *-rate faults (default 42)
 *   --pad-bytes N       every chat answer carries a "padding" field of N bytes
 *   --latency-ms MS     every chat answer (errors and resets too) is sent MS
 *                       after the request was read (timer, non-blocking)
 *   --rps R --burst B   token bucket over chat requests (B default ceil(R))
 *   --rps-schedule T:R,T:R,...  instead of --rps: the bucket refills at R
 *                       req/s from T seconds on (the first T is 0, then
 *                       increasing; <= 64 phases), T counted from the FIRST
 *                       CHAT REQUEST (so other servers may start meanwhile);
 *                       --burst stays (default ceil of the first R); 429
 *                       headers use the current R (tools/mock_rate.c)
 *   --rl-headers full|retry-after|none   429 / 200 rate-limit headers
 *   --fail-rate P --fail-first N --fail-status 5xx --fail-body json|html
 *   --throttle-first N --throttle-ms MS (default 1000)
 *   --reset-rate P      TCP RST instead of an answer
 *   --hang-rate P --hang-first N   never answer (until the client closes)
 *   --bad-marker S      400 when the body contains S
 *   --bad-status 4xx --bad-code C --bad-param P   that answer's status
 *                       (default 400), error.code and error.param (default
 *                       null; [A-Za-z0-9._-])
 *   --auth-key K        401 unless "Authorization: Bearer K" (echoes the key)
 *   --auth-header NAME  with --auth-key: the key is expected as the whole
 *                       value of header NAME (api-key, x-api-key, ...) instead
 *                       (echoed on 401 too)
 *   Stream faults (apply to every streamed answer):
 *   --stream-chunk-ms MS     wait MS between SSE events
 *   --stream-cut-after K     after K events close the connection (no final
 *                            chunk: the client sees a truncated body)
 *   --stream-end-after K     after K events end the body cleanly, without a
 *                            finish chunk or [DONE] (a truncated answer)
 *   --stream-error-after K   after K events send an OpenAI-style error event
 *                            ({"error":{...}}; Responses: "event: error" with
 *                            {"type":"error","code":"server_error",...}) and
 *                            end the body
 *   --responses-status S     completed (default), failed or incomplete: the
 *                            status of every Responses answer (above)
 *   --ignore-stream 1        answer "stream": true with one chat.completion JSON
 *                            body, like servers that do not stream
 *   --stream-stall-after K   after K events stop sending, keep the socket
 *                            open (counted in hangs)
 *   --stream-multiline-data 1  send each chat.completion.chunk's JSON over
 *                            four data: lines, split where a newline is JSON
 *                            whitespace (SSE joins them with "\n": same JSON)
 *   --abuse MODE        hostile HTTP/1.1 framing instead of every chat 200
 *                       (tools/mock_abuse.c; counted in "abuses", not in
 *                       "status"; other connections are served meanwhile):
 *     chunk-size-endless  200, Content-Type: application/json, Transfer-
 *                         Encoding: chunked, then '1's with no CRLF as fast
 *                         as the peer reads, until it closes
 *     headers-drip        the status line, then one header byte every 2 s
 *     continue-endless    "HTTP/1.1 100 Continue" + blank line every 50 ms
 *     trailers-endless    a chunked chat answer up to "0\r\n", then a
 *                         trailer line "X-T: y" every 100 ms
 *     header-line-huge    a 200 KiB "X-Huge: aaa..." header line, then the
 *                         normal answer (counted in "status" too)
 *     The endless modes end only when the peer closes; at most ~64 KiB of
 *     output waits per connection whatever the peer reads.
 *   --parent-pid P      exit like on SIGTERM once process P is gone (used by
 *                       spec/support/mock.lua so no mock outlives its tests)
 *
 * Chat request pipeline (first match wins):
 *   count request -> auth (401) -> bad-marker (400) -> model (404)
 *   -> hang-first / hang-rate -> reset-rate -> throttle-first (429)
 *   -> rps bucket (429) -> fail-first / fail-rate (--fail-status) -> 200
 *   (or the --abuse framing).
 *   Every "-first N" counts the requests that REACH its step, so
 *   --throttle-first 1 --fail-first 1 gives 429, 500, 200.  A "-rate" draws
 *   from the PRNG only when its probability is > 0 (one PRNG stream shared
 *   by all rates: same flags + same seed = same fault sequence).  The model
 *   check applies only when the body names a model.  The -first counters,
 *   the bucket, its schedule's clock and request ids are not affected by
 *   /stats?reset=1.
 *   Rate-limit headers (--rl-headers full): 429 from the bucket carries
 *   Retry-After (ceil s, >= 1), retry-after-ms, x-ratelimit-limit-requests
 *   (R*60), x-ratelimit-remaining-requests: 0, x-ratelimit-reset-requests
 *   (Go duration until the bucket is full); answers that passed the bucket
 *   carry limit/remaining/reset.  throttle-first 429s carry retry-after-ms and
 *   Retry-After (full), Retry-After only (retry-after), nothing (none).
 *
 * /stats: {"name","requests","connections","open_connections","open_sockets",
 *   "status":{"<code>":n},"resets","hangs","streams","auth_failures",
 *   "stream_cuts","abuses","last_target","paths","rps","rps_clock",
 *   "rps_phases"}.  paths: {"<path>": n} model requests per request path as
 *   received, without the query (64 distinct paths, then "(other)").  rps: the
 *   bucket's rate now (0: no limit); rps_clock: seconds since the first chat
 *   request (-1 before it); rps_phases: [{"from","rps","passed","limited"}]
 *   per schedule phase (one for --rps), requests that passed the bucket and
 *   requests it answered 429 while the phase was current (zeroed by reset=1;
 *   the clock is not).  Only model requests (the four POSTs above, "chat"
 *   in this comment) count in requests/status; a
 *   status is counted when the answer is sent (hangs, resets and endless
 *   abuses have none).  A
 *   connection is counted in connections/open_connections when its FIRST CHAT
 *   request arrives, so the short-lived curl connections used for /stats,
 *   /health or /v1/models never show up there; open_sockets counts every
 *   open socket (including the one asking for /stats).
 * SIGTERM/SIGINT: print the stats JSON as one line on stdout and exit 0.
 */
#include "mock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

struct config cfg;
struct stats st;

static uint64_t rng, seq, hang_used, throttle_used, fail_used;
static struct buf jb; /* response body scratch */

/* ------------------------------------------------------------ statistics */

/* the request target (path?query) of the last chat request, for /stats */
static char last_target[512];
static size_t last_target_len;

void stats_json(struct buf *b)
{
    buf_printf(b,
               "{\"name\":\"%s\",\"requests\":%llu,\"connections\":%llu,"
               "\"open_connections\":%ld,\"open_sockets\":%ld,\"status\":{",
               cfg.name, (unsigned long long)st.requests,
               (unsigned long long)st.connections, st.open_connections,
               st.open_sockets);
    const char *sep = "";
    for (int s = 100; s < 600; s++)
        if (st.status[s]) {
            buf_printf(b, "%s\"%d\":%llu", sep, s,
                       (unsigned long long)st.status[s]);
            sep = ",";
        }
    buf_printf(b,
               "},\"resets\":%llu,\"hangs\":%llu,\"streams\":%llu,"
               "\"auth_failures\":%llu,\"stream_cuts\":%llu,\"abuses\":%llu",
               (unsigned long long)st.resets, (unsigned long long)st.hangs,
               (unsigned long long)st.streams,
               (unsigned long long)st.auth_failures,
               (unsigned long long)st.cuts, (unsigned long long)st.abuses);
    buf_puts(b, ",\"last_target\":\"");
    buf_json(b, last_target, last_target_len);
    buf_puts(b, "\"");
    paths_json(b);
    rate_stats_json(b);
    buf_puts(b, "}");
}

static void stats_reset(void)
{
    long oc = st.open_connections, os = st.open_sockets;
    memset(&st, 0, sizeof st);
    rate_stats_reset();
    paths_reset();
    st.open_connections = oc;
    st.open_sockets = os;
}

/* ---------------------------------------------------------------- replies */

static double rnd01(void) /* splitmix64 */
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int chance(double p) { return p > 0 && rnd01() < p; }

static int path_is(const char *p, size_t n, const char *w)
{
    return strlen(w) == n && memcmp(p, w, n) == 0;
}


/* the query string has the parameter kv ("name=value") */
static int query_has(const char *q, size_t n, const char *kv)
{
    size_t kl = strlen(kv);
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && q[e] != '&')
            e++;
        if (e - i == kl && memcmp(q + i, kv, kl) == 0)
            return 1;
        i = e + 1;
    }
    return 0;
}

/* render a complete reply (body in jb) into c->pre; counted: a chat answer
 * (counted in stats.status when sent) */
static void reply(struct conn *c, int status, const char *ctype,
                  const char *extra, int counted)
{
    http_head(&c->pre, status, ctype, (long long)jb.len, c->rclose,
              c->req.minor == 0, extra);
    buf_put(&c->pre, jb.p, jb.len);
    c->rkind = RK_BUF;
    c->rstatus = counted ? status : 0;
}

static void reply_err(struct conn *c, int status, const char *msg,
                      size_t msg_len, const char *type, const char *code,
                      const char *extra)
{
    jb.len = 0;
    error_json(&jb, msg, msg_len, type, code, NULL);
    reply(c, status, "application/json", extra, extra != NULL); /* chat
                                            answers always pass headers */
}

static void auth_fail(struct conn *c, const char *base, const char *hdrs)
{
    struct req *r = &c->req;
    struct buf m = {0};
    st.auth_failures++;
    if (!r->has_auth) {
        buf_puts(&m, "You didn't provide an API key. You need to provide "
                     "your API key in an Authorization header using Bearer "
                     "auth (i.e. Authorization: Bearer YOUR_KEY).");
    } else {
        const char *k = base + r->auth_off;
        size_t kl = r->auth_len;
        if (kl >= 7 && strncasecmp(k, "Bearer ", 7) == 0) {
            k += 7;
            kl -= 7;
        }
        buf_puts(&m, "Incorrect API key provided: ");
        buf_json(&m, k, kl);
    }
    reply_err(c, 401, m.p, m.len, "invalid_request_error", "invalid_api_key",
              hdrs);
    buf_free(&m);
}

static void fail_reply(struct conn *c, const char *hdrs)
{
    int s = cfg.fail_status;
    if (!cfg.fail_html) {
        reply_err(c, s, "mock failure", 12, "server_error", NULL, hdrs);
        return;
    }
    jb.len = 0;
    buf_printf(&jb,
               "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
               "<center><h1>%d %s</h1></center>\r\n<hr><center>%s</center>\r\n"
               "</body>\r\n</html>\r\n",
               s, http_reason(s), s, http_reason(s), cfg.name);
    reply(c, s, "text/html; charset=utf-8", hdrs, 1);
}

static void model_request(struct conn *c, char *base, int api)
{
    struct req *r = &c->req;
    const char *body = base + r->body_off;
    size_t blen = r->body_len;
    st.requests++;
    rate_anchor();
    unsigned long long n = ++seq;
    if (!c->counted) {
        c->counted = 1;
        st.connections++;
        st.open_connections++;
    }
    c->rdelay_ms = cfg.latency_ms;
    struct chatinfo ci;
    chat_scan(body, blen, &ci);
    char id[NAME_MAX_LEN + 48], h[1024];
    snprintf(id, sizeof id, "%s-%llu", cfg.name, n);
    snprintf(h, sizeof h, "x-request-id: %s\r\n", id);
    char model[MODEL_MAX + 8];
    size_t ml = ci.has_model ? json_cut(ci.model, ci.model_len, MODEL_MAX) : 4;
    copy_clean(model, ci.has_model ? ci.model : "mock", ml);
    model[ml] = 0;

    if (cfg.auth_key) {
        size_t kl = strlen(cfg.auth_key);
        const char *a = base + r->auth_off;
        size_t skip = cfg.auth_header ? 0 : 7; /* "Bearer " */
        if (!r->has_auth || r->auth_len != kl + skip ||
            memcmp(a, "Bearer ", skip) != 0 || memcmp(a + skip, cfg.auth_key, kl)) {
            auth_fail(c, base, h);
            return;
        }
    }
    if (cfg.bad_marker &&
        memmem(body, blen, cfg.bad_marker, strlen(cfg.bad_marker))) {
        const char *m = "bad request marker found";
        jb.len = 0;
        error_json(&jb, m, strlen(m), "invalid_request_error", cfg.bad_code,
                   cfg.bad_param);
        reply(c, cfg.bad_status, "application/json", h, 1);
        return;
    }
    if (cfg.nmodels && ci.has_model) {
        int known = 0;
        for (int i = 0; i < cfg.nmodels && !known; i++)
            known = strlen(cfg.models[i]) == ci.model_len &&
                    !memcmp(cfg.models[i], ci.model, ci.model_len);
        if (!known) {
            char m[MODEL_MAX + 64];
            int ln = snprintf(m, sizeof m, "The model `%s` does not exist",
                              model);
            reply_err(c, 404, m, (size_t)ln, "invalid_request_error",
                      "model_not_found", h);
            return;
        }
    }
    if ((uint64_t)cfg.hang_first > hang_used || chance(cfg.hang_rate)) {
        if ((uint64_t)cfg.hang_first > hang_used)
            hang_used++;
        st.hangs++;
        c->rkind = RK_HANG;
        return;
    }
    if (chance(cfg.reset_rate)) {
        c->rkind = RK_RESET;
        return;
    }
    if ((uint64_t)cfg.throttle_first > throttle_used) {
        throttle_used++;
        size_t hl = strlen(h);
        long ra = (cfg.throttle_ms + 999) / 1000;
        if (cfg.rl_mode == RL_FULL)
            snprintf(h + hl, sizeof h - hl,
                     "retry-after-ms: %ld\r\nRetry-After: %ld\r\n",
                     cfg.throttle_ms, ra);
        else if (cfg.rl_mode == RL_RETRY_AFTER)
            snprintf(h + hl, sizeof h - hl, "Retry-After: %ld\r\n", ra);
        const char *m = "Rate limit reached for requests";
        reply_err(c, 429, m, strlen(m), "requests", "rate_limit_exceeded", h);
        return;
    }
    if (cfg.rps > 0 && !rate_admit(h, sizeof h)) {
        const char *m = "Rate limit reached for requests";
        reply_err(c, 429, m, strlen(m), "requests", "rate_limit_exceeded", h);
        return;
    }
    if ((uint64_t)cfg.fail_first > fail_used || chance(cfg.fail_rate)) {
        if ((uint64_t)cfg.fail_first > fail_used)
            fail_used++;
        fail_reply(c, h);
        return;
    }

    /* the echoed text: chat the last "content"; Responses the "input"
     * string, else the last "content" / "text" string of its items;
     * completions the "prompt" string; embeddings hash their input */
    const char *et = NULL;
    size_t etl = 0;
    if (api == API_CHAT && ci.has_content) {
        et = ci.content;
        etl = ci.content_len;
    } else if (api == API_RESPONSES && ci.has_input) {
        et = ci.input;
        etl = ci.input_len;
    } else if (api == API_RESPONSES && (ci.has_content || ci.has_text)) {
        et = ci.text_last ? ci.text : ci.content;
        etl = ci.text_last ? ci.text_len : ci.content_len;
    } else if ((api == API_COMPLETIONS || api == API_EMBEDDINGS) &&
               (ci.has_prompt || ci.has_input)) {
        et = api == API_COMPLETIONS ? ci.prompt : ci.input;
        etl = api == API_COMPLETIONS ? ci.prompt_len : ci.input_len;
        if (!et)
            etl = 0;
    }
    struct stream sv;
    memset(&sv, 0, sizeof sv);
    struct stream *s = &sv;
    size_t cl;
    if (et) {
        memcpy(s->content, "echo: ", 6);
        cl = 6 + copy_clean(s->content + 6, et, json_cut(et, etl, ECHO_MAX));
    } else {
        cl = (size_t)snprintf(s->content, sizeof s->content, "hello from %s",
                              cfg.name);
    }
    size_t ptok = blen / 4 ? blen / 4 : 1, ctok = cl / 4 ? cl / 4 : 1;
    static const char *const prefix[] = {"chatcmpl-", "", "resp_", "cmpl-"};
    snprintf(s->id, sizeof s->id, "%s%s", prefix[api], id);
    s->created = (long)time(NULL);
    memcpy(s->model, model, ml + 1);
    s->content_len = cl;
    s->prompt_tokens = ptok;
    s->completion_tokens = api == API_EMBEDDINGS ? 0 : ctok;
    s->include_usage = ci.include_usage;
    s->api = api;
    s->chunked = r->minor == 1;
    int stream = ci.stream && !cfg.ignore_stream && api != API_EMBEDDINGS;
    if (cfg.abuse || !stream) {
        jb.len = 0;
        if (api == API_CHAT)
            chat_render(&jb, s->id, s->created, model, s->content, cl, ptok,
                        ctok, (size_t)cfg.pad_bytes);
        else if (api == API_EMBEDDINGS)
            embeddings_render(&jb, model, embed_count(body, blen, &ci),
                              ci.dimensions > 0 && ci.dimensions <= 4096
                                  ? ci.dimensions : 8,
                              ci.base64,
                              ci.input_any ? body + ci.input_off : model,
                              ci.input_any ? json_value_len(body + ci.input_off,
                                                            blen - ci.input_off)
                                           : ml,
                              ptok);
        else if (api == API_RESPONSES)
            responses_render(&jb, s, cfg.responses_status
                                         ? cfg.responses_status : "completed");
        else
            completions_render(&jb, s->id, s->created, model, s->content, cl,
                               ptok, ctok);
        if (cfg.abuse) {
            st.abuses++;
            abuse_begin(c, &jb, h);
        } else {
            reply(c, 200, "application/json", h, 1);
        }
        return;
    }
    s = malloc(sizeof *s);
    if (!s)
        abort();
    memcpy(s, &sv, sizeof *s);
    if (!s->chunked)
        c->rclose = 1; /* HTTP/1.0: close-delimited body */
    free(c->strm);
    c->strm = s;
    size_t hl = strlen(h);
    snprintf(h + hl, sizeof h - hl, "Cache-Control: no-cache\r\n");
    http_head(&c->pre, 200, "text/event-stream", s->chunked ? -1 : -2,
              c->rclose, 0, h);
    c->rkind = RK_STREAM;
    c->rstatus = 200;
}

void app_handle(struct conn *c, char *base)
{
    struct req *r = &c->req;
    const char *p = base + r->path_off;
    size_t pl = r->path_len;
    c->rclose = !r->keep_alive;
    int api = r->method == M_POST ? api_of_path(p, pl) : -1;
    if (api >= 0) {
        size_t tl = r->query_len ? pl + 1 + r->query_len : pl;
        last_target_len = tl < sizeof last_target ? tl : sizeof last_target;
        memcpy(last_target, p, last_target_len); /* the query follows the path and "?" */
        paths_count(p, pl);
        model_request(c, base, api);
        return;
    }
    jb.len = 0;
    if (r->method == M_GET && path_is(p, pl, "/health")) {
        buf_printf(&jb, "{\"status\":\"ok\",\"name\":\"%s\"}", cfg.name);
    } else if (r->method == M_GET && (path_is(p, pl, "/v1/models") ||
                                      path_is(p, pl, "/models"))) {
        buf_puts(&jb, "{\"object\":\"list\",\"data\":[");
        for (int i = 0; i < (cfg.nmodels ? cfg.nmodels : 1); i++)
            buf_printf(&jb,
                       "%s{\"id\":\"%s\",\"object\":\"model\","
                       "\"owned_by\":\"mock\"}",
                       i ? "," : "", cfg.nmodels ? cfg.models[i] : "mock-model");
        buf_puts(&jb, "]}");
    } else if (r->method == M_GET && path_is(p, pl, "/stats")) {
        stats_json(&jb);
        if (query_has(base + r->query_off, r->query_len, "reset=1") ||
            query_has(base + r->query_off, r->query_len, "reset=true"))
            stats_reset();
    } else {
        struct buf m = {0};
        buf_puts(&m, "Unknown request URL: ");
        buf_json(&m, base + r->lead, r->meth_len);
        buf_puts(&m, " ");
        buf_json(&m, p, pl > 200 ? 200 : pl);
        buf_puts(&m, ". Please check the URL for typos.");
        reply_err(c, 404, m.p, m.len, "invalid_request_error", "unknown_url",
                  NULL);
        buf_free(&m);
        return;
    }
    reply(c, 200, "application/json", NULL, 0);
}

void app_fired(struct conn *c)
{
    if (c->rkind == RK_RESET) {
        st.resets++;
        return;
    }
    if (c->rstatus > 0 && c->rstatus < 600)
        st.status[c->rstatus]++;
    if (c->rkind == RK_STREAM)
        st.streams++;
}

int main(int argc, char **argv)
{
    parse_flags(argc, argv);
    rate_init();
    rng = cfg.seed;
    struct rlimit rl; /* thousands of connections: lift the soft fd limit */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int port = net_listen(cfg.port);
    if (port == -2) {
        fputs("mock-llm: --parent-pid: no such process\n", stderr);
        return 1;
    }
    if (port < 0) {
        perror("mock-llm: listen");
        return 1;
    }
    if (cfg.port_file) {
        size_t l = strlen(cfg.port_file);
        char *tmp = malloc(l + 5);
        memcpy(tmp, cfg.port_file, l);
        memcpy(tmp + l, ".tmp", 5);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 ||
            rename(tmp, cfg.port_file) != 0) {
            perror("mock-llm: port file");
            return 1;
        }
        free(tmp);
    }
    printf("listening 127.0.0.1:%d\n", port);
    fflush(stdout);
    net_loop();
    struct buf b = {0};
    stats_json(&b);
    printf("%.*s\n", (int)b.len, b.p);
    fflush(stdout);
    buf_free(&b);
    buf_free(&jb);
    net_cleanup();
    for (int i = 0; i < cfg.nmodels; i++)
        free(cfg.models[i]);
    free(cfg.models);
    return 0;
}
