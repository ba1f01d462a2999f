/* mock.h - shared declarations of the llmrelay mock OpenAI server.
 *
 * Files:  mock_llm.c  main, statistics, routes and fault decisions
 *         mock_flags.c command line parsing
 *         mock_net.c  epoll loop, connections, timer heap, I/O state machine
 *         mock_http.c buffers, HTTP/1.x request parser, response heads
 *         mock_chat.c JSON scanning of requests, chat/stream rendering
 *         mock_apis.c embeddings, Responses, completions rendering and streams
 *         mock_abuse.c hostile response framing (--abuse)
 *         mock_timer.c the timer heap of mock_net.c
 *         mock_rate.c  the rate limit: token bucket, --rps-schedule, headers
 * See the header of mock_llm.c for behaviour and flags.
 */
#ifndef LLMRELAY_MOCK_H
#define LLMRELAY_MOCK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, accept4, strndup */
#endif

#include <stddef.h>
#include <stdint.h>

#define HDR_CAP (64u * 1024u)          /* request line + header block */
#define BODY_CAP (16u * 1024u * 1024u) /* decoded request body */
#define ECHO_MAX 200                   /* echoed content bytes */
#define MODEL_MAX 256                  /* echoed model bytes */
#define NAME_MAX_LEN 64

/* ---- growable byte buffer (mock_http.c) ---- */
struct buf {
    char *p;
    size_t len, cap;
};
void buf_reserve(struct buf *b, size_t extra);
void buf_put(struct buf *b, const void *s, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_json(struct buf *b, const char *s, size_t n); /* JSON-escaped */
void buf_free(struct buf *b);

/* ---- HTTP request parser (mock_http.c) ---- */
/* A token character of a header name (RFC 9110). */
int is_tchar(unsigned char c);
enum { M_OTHER, M_GET, M_POST };
enum { P_NEED, P_DONE, P_ERR };

struct req {
    int phase;          /* 0 head, 1 body */
    size_t lead, scan;  /* skipped empty lines; header-end search position */
    int method;
    size_t meth_len;    /* method token at offset lead */
    size_t path_off, path_len, query_off, query_len;
    int minor;          /* HTTP/1.<minor> */
    int keep_alive, expect_continue, want_continue, chunked;
    long long clen;     /* -1: no Content-Length */
    int has_auth;
    size_t auth_off, auth_len;
    size_t body_off, body_len, consumed;
    int err_status;
    int cstate;         /* chunked decoder */
    size_t crd, cwr, crem, tr_start;
};
void req_reset(struct req *r);
/* Parse the request starting at base (avail bytes; base is modified in place
 * when decoding chunked bodies).  Offsets in r are relative to base. */
int req_parse(struct req *r, char *base, size_t avail);
const char *http_reason(int status);
/* clen >= 0: Content-Length; -1: chunked; -2: no length (close-delimited) */
void http_head(struct buf *b, int status, const char *ctype, long long clen,
               int close, int http10, const char *extra);

/* ---- chat helpers (mock_chat.c) ---- */
/* the model APIs the mock serves, by the end of the POST path */
enum { API_CHAT, API_EMBEDDINGS, API_RESPONSES, API_COMPLETIONS };
struct chatinfo {
    const char *content, *model, *input, *prompt, *text;
    size_t content_len, model_len, input_len, prompt_len, text_len;
    int has_content, has_model, stream, include_usage;
    int has_input, has_prompt, has_text; /* depth-1 "input" / "prompt"
                                            strings; the last "text" string */
    int text_last;      /* the last "text" string follows the last "content" */
    size_t input_off;   /* offset of the depth-1 "input" value (any type) */
    int input_any;      /* a depth-1 "input" key was seen */
    long dimensions;    /* depth-1 "dimensions" number, 0 = absent */
    int base64;         /* depth-1 "encoding_format": "base64" */
};
void chat_scan(const char *b, size_t n, struct chatinfo *ci);
size_t json_cut(const char *s, size_t n, size_t max);
size_t copy_clean(char *dst, const char *src, size_t n);
void go_duration(char *out, size_t sz, double seconds);
void fmt_ms(char *out, size_t sz, double ms);
void error_json(struct buf *b, const char *msg, size_t msg_len,
                const char *type, const char *code, const char *param);

struct stream {
    char id[NAME_MAX_LEN + 48];
    long created;
    char model[MODEL_MAX + 8];
    char content[ECHO_MAX + NAME_MAX_LEN + 16];
    size_t content_len, prompt_tokens, completion_tokens;
    int include_usage, chunked;
    int phase;
    size_t pos;
    long events; /* SSE events emitted so far */
    int api;     /* API_* */
    long seq;    /* Responses: sequence_number of the next event */
};
void chat_render(struct buf *b, const char *id, long created,
                 const char *model, const char *content, size_t content_len,
                 size_t ptok, size_t ctok, size_t pad);
/* Append the next SSE event (or the final chunked terminator) to out.
 * Returns 1 when an event was appended, 0 when the stream is finished. */
int stream_next(struct stream *s, struct buf *out, struct buf *tmp);
/* frame the event text t into out (chunked or not), count it */
void stream_emit(struct stream *s, struct buf *out, const struct buf *t);

/* ---- other model APIs (mock_apis.c) ---- */
int api_of_path(const char *p, size_t n); /* API_*, or -1 */
const char *api_object(int api);          /* "chat.completion", "list", ... */
/* how many embeddings an embeddings request asks for (>= 1) */
size_t embed_count(const char *b, size_t n, const struct chatinfo *ci);
size_t json_value_len(const char *b, size_t n); /* the JSON value at b */
void embeddings_render(struct buf *b, const char *model, size_t count,
                       long dims, int base64, const char *seed,
                       size_t seed_len, size_t ptok);
void responses_render(struct buf *b, const struct stream *s, const char *status);
void completions_render(struct buf *b, const char *id, long created,
                        const char *model, const char *text, size_t text_len,
                        size_t ptok, size_t ctok);
int responses_next(struct stream *s, struct buf *out, struct buf *t);
/* the --stream-error-after event of s's API (without chunk framing) */
void stream_error_event(const struct stream *s, struct buf *t);

/* ---- configuration and statistics (mock_llm.c) ---- */
enum { RL_FULL, RL_RETRY_AFTER, RL_NONE };
struct config {
    int port;
    const char *port_file, *name;
    char **models;
    int nmodels;
    uint64_t seed;
    long latency_ms;
    long pad_bytes; /* extra bytes in every chat answer (body-cap tests) */
    double rps;
    long burst;
    int rl_mode;
    double fail_rate, reset_rate, hang_rate;
    int fail_status, fail_html;
    long fail_first, throttle_first, throttle_ms, hang_first;
    const char *bad_marker, *auth_key, *auth_header;
    const char *bad_code, *bad_param; /* the --bad-marker answer's error.code, .param (NULL: null) */
    int bad_status;                   /* the --bad-marker answer's status (400) */
    long chunk_ms, cut_after, stall_after; /* stream faults, -1/0 = off */
    long end_after, error_after;          /* stream faults, -1 = off */
    long ignore_stream;                   /* 1: answer "stream": true with one JSON body */
    long multiline_data;                  /* 1: each JSON chunk over several data: lines */
    const char *responses_status; /* NULL: completed; "failed" | "incomplete" */
    long parent_pid; /* exit when this process is gone (0 = off) */
    int abuse;       /* --abuse: AB_* (0 = off) */
};
struct stats {
    uint64_t requests, connections, resets, hangs, streams, auth_failures,
        cuts, abuses;
    uint64_t status[600];
    long open_connections, open_sockets;
};
#define PATHS_MAX 64
#define PATH_KEY_MAX 256
/* requests per path of the model APIs (mock_llm.c) */
void paths_count(const char *p, size_t n);
void paths_json(struct buf *b); /* ,"paths":{...} */
void paths_reset(void);
extern struct config cfg;
extern struct stats st;
void stats_json(struct buf *b);
void parse_flags(int argc, char **argv); /* mock_flags.c */

/* ---- connections (mock_net.c) ---- */
enum { ST_READ, ST_DELAY, ST_STREAM, ST_HANG, ST_CLOSING, ST_ABUSE };
enum { RK_BUF, RK_STREAM, RK_RESET, RK_HANG, RK_ABUSE };
struct conn {
    int tag; /* must be first: distinguishes conns from other epoll objects */
    int fd, state;
    uint32_t events;
    struct buf in, out;
    size_t in_start, out_off;
    struct req req;
    int counted, close_after, peer_eof, st_wait;
    int64_t deadline; /* monotonic microseconds */
    long hidx;        /* index in timer heap, -1 if none */
    size_t aidx;      /* index in the list of open connections */
    /* the reply decided for the current request (filled by app_handle) */
    int rkind, rstatus, rclose;
    long rdelay_ms;
    struct buf pre;   /* rendered response (RK_BUF) or stream head */
    struct stream *strm;
    long abuse_n;     /* abusive steps sent so far (ST_ABUSE) */
};
int net_listen(int port);
void net_loop(void); /* returns on SIGTERM/SIGINT */
void net_cleanup(void);
int64_t now_us(void);

/* ---- timer heap (mock_timer.c) ---- */
void timer_set(struct conn *c, int64_t deadline);
void timer_clear(struct conn *c);
struct conn *timer_first(void); /* earliest deadline, NULL if none */
void timer_cleanup(void);

/* ---- hostile framing (mock_abuse.c) ---- */
enum { AB_NONE, AB_CHUNK_SIZE, AB_HEADERS_DRIP, AB_CONTINUE, AB_TRAILERS,
       AB_HEADER_HUGE };
int abuse_mode(const char *name); /* AB_*, or -1 for an unknown name */
/* Render the start of an abused 200 answer to a chat request into c->pre
 * (body: the chat answer it would have been, hdrs: its extra headers) and
 * set c->rkind: RK_ABUSE when the abuse goes on (mock_net.c then calls
 * abuse_pump), RK_BUF when the answer is complete. */
void abuse_begin(struct conn *c, const struct buf *body, const char *hdrs);
/* Append the next abusive bytes to c->out; returns how many microseconds to
 * wait before the next call, 0 for "once c->out has been written". */
int64_t abuse_pump(struct conn *c);

/* ---- rate limit (mock_rate.c) ---- */
#define RATE_PHASES_MAX 64
/* --rps R / --rps-schedule T:R,...: set the schedule (and cfg.rps to its
 * first rate); NULL, or why the value is refused */
const char *rate_constant(double rps);
const char *rate_schedule(const char *v);
void rate_init(void);   /* after parse_flags: the bucket starts full */
void rate_anchor(void); /* a chat request arrived: starts the clock once */
/* the bucket's step for a chat request: 1 = passes, 0 = 429; appends the
 * rate-limit headers of --rl-headers to h (size hs) */
int rate_admit(char *h, size_t hs);
double rate_current(void); /* req/s now, 0 without a rate limit */
void rate_stats_json(struct buf *b); /* ,"rps":..,"rps_clock":..,"rps_phases":[..] */
void rate_stats_reset(void);

/* implemented by mock_llm.c, called by mock_net.c */
void app_handle(struct conn *c, char *base); /* request complete: decide */
void app_fired(struct conn *c);              /* reply being sent now */

#endif
