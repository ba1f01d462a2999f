/* The request state machine: pick an endpoint, send, classify the outcome,
 * then finish, fail over at once, or wait for the earliest usable moment.
 * Sans-I/O: executors (libcurl in C, cosockets in Lua) do the sending; the
 * relay only decides. One relay serves many requests; requests are memory
 * the executor owns and hands in. */
#ifndef LR_RELAY_H
#define LR_RELAY_H
#include <stdint.h>

#include "backoff.h"
#include "errors.h"
#include "fallback.h"
#include "hints.h"
#include "pool.h"

typedef struct lr_relay_cfg {
  int max_attempts;         /* >= 1 */
  lr_backoff_cfg backoff;
  double budget;            /* retries allowed as a share of first attempts in the last 10 s (plus a
                               floor of 10); retries after a failure that never reached a server are
                               free; < 0: no budget */
  int concurrency;          /* attempts in flight across the relay */
  double attempt_timeout_s; /* timeout.total: one attempt at most */
} lr_relay_cfg;

typedef enum { LR_REQ_NEW, LR_REQ_READY, LR_REQ_WAITING, LR_REQ_SENDING, LR_REQ_DONE } lr_req_state;

/* Request priorities: higher goes first; FIFO within a priority. */
#define LR_PRIORITY_MIN (-10)
#define LR_PRIORITY_MAX 10
#define LR_POLL_BATCH 256 /* requests (results, decisions, events) one poll hands over at most, in the bindings and executors */

typedef struct lr_req {
  /* Read by executors. */
  lr_req_state state;
  int endpoint;             /* SENDING: the endpoint of this attempt */
  int attempts;             /* attempts sent so far, the current one included */
  double attempt_timeout_s; /* SENDING: what this attempt may take (timeout.total, cut by the deadline) */
  double sent_at;
  lr_error_kind kind;       /* DONE: LR_E_NONE on success */
  int status;               /* the last HTTP status seen, 0 if none */
  int last_endpoint;        /* the endpoint of the last attempt, -1 if none */
  double retry_after_s;     /* DONE with an error: when trying again may help; < 0 unknown */
  double latency_s;         /* DONE: the last attempt's latency */
  char message[200];        /* DONE with an error: what happened, for people */
  char request_id[LR_REQUEST_ID_MAX + 1]; /* the last answer's x-request-id, or "" */
  int model;                /* the logical model (an lr_models index; -1: none, or a name no endpoint lists)
                               it is sent for now: its original one, or a fallback */
  lr_verdict verdict;       /* after a report: what the attempt said about its endpoint's health */
  int probe;                /* SENDING: the attempt is a half-open breaker probe */
  int api;                  /* its lr_api: the path it goes to on each endpoint (lr_relay_route_api) */
  void *udata;              /* the executor's */

  /* Private to relay.c. */
  uint64_t allowed, tried;
  uint64_t only;  /* the endpoints it may use at all (opts.endpoints), for a fallback's model */
  int base_attempts; /* attempts made before its current model */
  lr_fallback_state fb;
  double tokens, deadline, wake_at, timeout_s;
  int free_retry; /* the last failure put no load on a server: its retry is outside the budget */
  int partial;    /* while reporting: the attempt was a stream that had sent events */
  int rounds, new_round_on_wake;
  int send_undo;  /* what the current attempt took from the server's published budget */
  int prio; /* index of its ready queue: priority - LR_PRIORITY_MIN */
  struct lr_req *prev, *next;
  int heap_idx;
} lr_req;

typedef struct lr_outcome {
  int status;               /* HTTP status of the final response; 0 when none came */
  lr_error_kind transport;  /* LR_E_NONE when an answer came, else CONNECT, TIMEOUT, HTTP (body over the cap),
                               CANCELLED; for streams also SERVER_ERROR (an error event), DECODE (an event that
                               is not a JSON object) */
  int body_ok;              /* for 2xx: the body is what was asked for (a JSON object, a complete stream) */
  const lr_hints *hints;    /* the answer's headers, or NULL */
  const char *message;      /* transport error text, or NULL */
  int not_sent;             /* 1: the request never reached the server (refused, DNS, TLS handshake) */
  double usage_tokens;      /* for 2xx: the answer's usage.total_tokens; < 0 unknown */
  int committed;            /* a stream whose events the caller already has: a failure cannot be
                               retried, it ends the request as stream_interrupted */
  int partial;              /* a stream that sent events (not yet taken): if the failure ends the
                               request, it ends as stream_interrupted and the executor delivers them */
  int context_exceeded;     /* a 400 whose upstream error code is context_length_exceeded (outcome.c) */
} lr_outcome;

typedef enum { LR_EV_RETRY, LR_EV_FAILOVER, LR_EV_BREAKER, LR_EV_THROTTLE, LR_EV_FALLBACK } lr_event_type;

typedef struct lr_event {
  lr_event_type type;
  int endpoint;       /* RETRY: the endpoint that failed; FAILOVER: from; BREAKER, THROTTLE: which;
                         FALLBACK: the last endpoint tried (-1: none) */
  int to;             /* FAILOVER: the new endpoint; BREAKER: the new lr_breaker_state; FALLBACK: the new model */
  int from;           /* BREAKER: the old state; FALLBACK: the model that failed (lr_models indexes) */
  int attempt;        /* RETRY, FAILOVER: the attempt about to be made */
  int status;         /* the HTTP status behind it, 0 if none */
  lr_error_kind kind; /* RETRY, FAILOVER, FALLBACK: what failed */
  double delay_s;     /* RETRY: the wait; THROTTLE: for how long the endpoint rests */
  void *udata;        /* RETRY, FAILOVER, FALLBACK: the request's udata */
} lr_event;

typedef struct lr_relay lr_relay;

lr_relay *lr_relay_new(const lr_relay_cfg *cfg, const lr_endpoint_cfg *eps, int n, lr_strategy strategy,
                       const lr_breaker_cfg *bcfg, uint64_t seed, double now);
void lr_relay_free(lr_relay *rl);
lr_pool *lr_relay_pool(lr_relay *rl);
/* The retry budget across a fleet: this relay's first attempts and retries
 * since it was made (the executor tells the fleet the differences) and in
 * the budget's window; and the other members' in that window, which the
 * budget then counts with its own. */
void lr_relay_budget(lr_relay *rl, double now, double *total_first, double *total_retry, double *window_first,
                     double *window_retry);
void lr_relay_budget_others(lr_relay *rl, double first, double retry);
int lr_relay_in_flight(const lr_relay *rl);
/* Requests submitted and not yet handed back as DONE. */
long lr_relay_active(const lr_relay *rl);

/* Starts a request. `allowed`: the endpoints that may serve it (bit i =
 * endpoint i); none -> it finishes as invalid_request. deadline: absolute
 * monotonic time, INFINITY for none. timeout_s: per attempt, <= 0 for the
 * relay's default. priority: LR_PRIORITY_MIN..MAX (clamped), 0 normal. */
void lr_relay_submit(lr_relay *rl, lr_req *r, uint64_t allowed, double tokens, double deadline,
                     double timeout_s, int priority, void *udata);

/* Right after lr_relay_submit: the request's logical model (an lr_models
 * index, -1 none) and the endpoints it may use at all (all ones: any),
 * which a fallback's model is served within. */
void lr_relay_route(lr_req *r, int model, uint64_t only);
/* Right after lr_relay_route: the request is for api (an lr_api), which only
 * the endpoints in by_api serve (a fallback's model too); when none of the
 * endpoints serving its model does, its message says so. */
void lr_relay_route_api(lr_req *r, int api, uint64_t by_api, int model_served);
/* The fallbacks between models (fallback.h), which the relay owns. */
lr_fallbacks *lr_relay_fallbacks(lr_relay *rl);
/* The name a SENDING request's body must carry on endpoint i (*len its
 * length): the endpoint's name for the request's model; NULL when the
 * request has no model the pool knows (its body goes as it is). */
const char *lr_relay_wire_model(lr_relay *rl, const lr_req *r, int i, size_t *len);

/* A request's own restriction (opts.endpoints): `only` holds 1-based endpoint
 * numbers, one a byte; NULL leaves `serving` as it is. Returns serving & the
 * named endpoints; *empty_by_only is set when the restriction alone left none
 * (see lr_relay_explain_only). */
uint64_t lr_relay_only(uint64_t serving, const unsigned char *only, size_t n, int *empty_by_only);
/* After lr_relay_submit of a request lr_relay_only emptied: its message says
 * the named endpoints serve none of it, not that no endpoint does. */
void lr_relay_explain_only(lr_req *r);

/* Advances the relay: returns up to `max` requests the executor must act on,
 * each either SENDING (send attempt r->attempts to r->endpoint now) or DONE
 * (deliver the result; the relay forgets it). *next_wake: when to poll again
 * if nothing else happens (INFINITY: only a report or submit can help). */
int lr_relay_poll(lr_relay *rl, double now, lr_req **out, int max, double *next_wake);

/* The attempt of a SENDING request ended. */
void lr_relay_report(lr_relay *rl, lr_req *r, const lr_outcome *o, double now);

/* The executor did not send the attempt after all (state shared with other
 * processes refused it): the attempt is not counted, the request goes back
 * to the front of its queue, and its endpoint is not picked again before
 * `until`. */
void lr_relay_unsend(lr_relay *rl, lr_req *r, double until, double now);

/* Ends a request now as `cancelled` (or with `kind`, e.g. LR_E_DEADLINE).
 * Returns its previous state: if SENDING, the executor must abort the
 * transfer itself. The request is not handed back by poll. */
lr_req_state lr_relay_cancel(lr_relay *rl, lr_req *r, lr_error_kind kind, double now);

/* Events (only recorded while enabled): copies out up to max, oldest first. */
void lr_relay_enable_events(lr_relay *rl, int on);
int lr_relay_events(lr_relay *rl, lr_event *out, int max);

#endif
