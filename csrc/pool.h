/* The endpoint pool: per-endpoint health (EWMA latency, success rate),
 * throttle, breaker and limiter state, and endpoint selection.
 * Sans-I/O: every call takes `now` (monotonic seconds) and an RNG. */
#ifndef LR_POOL_H
#define LR_POOL_H
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "breaker.h"
#include "hints.h"
#include "limiter.h"
#include "models.h"
#include "ratelearn.h"
#include "rng.h"

#define LR_MAX_ENDPOINTS 64
typedef char lr_models_cover_the_pool[LR_MODELS_MAX_EP == LR_MAX_ENDPOINTS ? 1 : -1];
/* Until an endpoint is known to be reachable (a connection to it was made,
 * or it answered), at most this many attempts are in flight to it: a dead or
 * black-holed endpoint in a pool that starts with a burst then costs a few
 * attempts, not a share of the whole burst. */
#define LR_WARMUP_IN_FLIGHT 4

/* Until an endpoint has answered once, it carries at most as many attempts
 * as the most any sibling carried when its own first answer came back, or
 * carries now (and at least LR_WARMUP_IN_FLIGHT). Without this, once the siblings' answers
 * tell them to slow down (a 429, x-ratelimit-remaining: 0), every request
 * flows to the one endpoint whose answers are merely late, and all of them
 * meet its empty bucket; a hung endpoint would swallow the pool. */

/* LR_STRATEGY_COST: the cheapest usable endpoint serving the request's model
 * (lr_models_rank: input + output USD per 1M tokens; an endpoint without a
 * price for it ranks after every priced one), the weighted rule among equals. */
typedef enum {
  LR_STRATEGY_WEIGHTED = 0,
  LR_STRATEGY_ROUND_ROBIN = 1,
  LR_STRATEGY_PRIORITY = 2,
  LR_STRATEGY_COST = 3
} lr_strategy;

/* Why no endpoint could take a request now (bits, several may be set). */
enum {
  LR_BLOCK_CAPACITY = 1, /* every candidate is at max_concurrency: wait for a release */
  LR_BLOCK_LIMITER = 2,  /* configured rpm/tpm */
  LR_BLOCK_THROTTLE = 4, /* a server said 429 / Retry-After */
  LR_BLOCK_BREAKER = 8   /* circuit open (or half-open with its probes busy) */
};

/* What an attempt says about an endpoint's health. */
typedef enum { LR_VERDICT_SUCCESS, LR_VERDICT_FAILURE, LR_VERDICT_NEUTRAL } lr_verdict;

typedef struct lr_endpoint {
  double weight;          /* > 0 */
  int max_concurrency;    /* 0 = no limit */
  int in_flight;
  double latency_ewma_s;  /* < 0 until the first successful answer */
  double success_ewma;    /* 1 = every recent attempt succeeded; drifts back to 1 while idle */
  double success_at;      /* when success_ewma was last brought up to date */
  double throttled_until; /* no new request before this moment */
  double remaining;       /* requests the server said it still takes, less those sent since; < 0 unknown */
  double remaining_until; /* when that count expires (the server's reset) */
  double remaining_tokens;      /* x-ratelimit-remaining-tokens, less estimates sent since; < 0 unknown */
  double remaining_tokens_until; /* when that count expires (x-ratelimit-reset-tokens) */
  double limit;           /* adaptive in-flight limit (AIMD), 0 until the first 429 */
  double limit_cut_at;    /* when it was last cut: 429s of attempts sent before do not cut again */
  double last_pause_s;    /* the last pause a server asked for, which sets how fast the limit grows */
  lr_ratelearn learnt;    /* the request rate learnt from 429s of a server that publishes no limits */
  int learnt_cut;         /* a 429 asked the learner to adjust once the pause is known */
  double slot_interval;   /* 60 / x-ratelimit-limit-requests: the server's pace; 0 unknown */
  double next_slot_at;    /* with none remaining: when that pace frees the next request */
  long requests, successes, failures, throttles;
  int reachable;          /* a connection was made to it, or an attempt came back */
  int answered;           /* a server answer (any status) came back from it */
  int first_load;         /* attempts in flight when its first answer came back */
  double shared_block_until; /* state shared with other processes refused an attempt: none before this */
  double pub_cap;         /* the server's bucket: remaining + reset x its rate, at the last answer (0 unknown) */
  double pub_remaining;   /* the last x-ratelimit-remaining-requests, as published (< 0: none) */
  double pub_at;          /* when it came */
  /* leases of a fleet's shared budget (csrc/fleet.h); all zero when no fleet */
  int lease_on, tk_lease_on;
  double lease_left, lease_from, lease_until, lease_retry_at, lease_wanted_at;
  double tk_left, tk_until;
  double tk_need;         /* the most tokens a request found missing from the token lease */
  double told_thr, told_open; /* the throttle and open breaker last told to the fleet */
  int told_state;             /* the breaker state last told to the fleet */
  lr_breaker breaker;
  lr_limiter limiter;
} lr_endpoint;

typedef struct lr_pool {
  lr_endpoint ep[LR_MAX_ENDPOINTS];
  int n;
  lr_strategy strategy;
  int rr_next;
  int prober;  /* the one endpoint whose learnt rate probes upward; the others hold their pace */
  int first_load; /* the most any endpoint carried when its first answer came (0: none answered) */
  double bare_burst; /* the bucket the pool's first bare 429 measured (0: none yet): a prior for the others */
  lr_breaker_cfg breaker_cfg;
  lr_models models; /* the logical models, which endpoints serve each and under what name */
  uint64_t by_api[LR_API__COUNT]; /* the endpoints serving each api, as bit masks */
} lr_pool;

/* Per-endpoint settings for lr_pool_init. */
typedef struct lr_endpoint_cfg {
  double weight;
  int max_concurrency;
  double rpm, tpm; /* 0 = no limit */
  unsigned apis;   /* a bit (1u << lr_api) per api it serves; 0: every api */
} lr_endpoint_cfg;

void lr_pool_init(lr_pool *p, const lr_endpoint_cfg *eps, int n, lr_strategy strategy,
                  const lr_breaker_cfg *bcfg, double now);

/* Endpoint i serves only these models, as they are named (n == 0: every
 * model). Copies them; returns -1 when out of memory. lr_pool_free releases
 * the copies. Names served under another name: lr_models_serve(&p->models, ...). */
int lr_pool_set_models(lr_pool *p, int i, const char *const *models, int n);
void lr_pool_free(lr_pool *p);
/* The endpoints that serve the logical model `model` (NULL: any model), as a bit mask. */
uint64_t lr_pool_serving(const lr_pool *p, const char *model, size_t len);
/* The endpoints that serve api (an lr_api), as a bit mask. */
uint64_t lr_pool_serving_api(const lr_pool *p, int api);

/* Is endpoint i usable now for a request of `tokens`? If not, *usable_at is
 * the earliest moment it may be (INFINITY when only a release frees it) and
 * *why gets its LR_BLOCK_* bits. */
int lr_pool_usable(lr_pool *p, int i, double tokens, double now, double *usable_at, int *why);

/* Picks an endpoint among the `allowed` bit mask by the pool's strategy.
 * Returns its index, or -1 with *wake_at (earliest moment one of them may be
 * usable, INFINITY if only a release can help) and *why (LR_BLOCK_* bits). */
int lr_pool_pick(lr_pool *p, uint64_t allowed, double tokens, double now, lr_rng *rng,
                 double *wake_at, int *why);
/* The same for a request of logical model `model` (an lr_models index, -1
 * unknown), which strategy "cost" ranks the endpoints' prices by. */
int lr_pool_pick_model(lr_pool *p, uint64_t allowed, int model, double tokens, double now, lr_rng *rng,
                       double *wake_at, int *why);

/* An attempt goes to endpoint i: counts it, takes limiter tokens and, when
 * the breaker is half-open, a probe slot. Returns the breaker probe ticket. */
int lr_pool_on_send(lr_pool *p, int i, double tokens, double now);
/* The same; *undo records what it took from the server's published budget,
 * for lr_pool_unsend. */
int lr_pool_on_send_undoable(lr_pool *p, int i, double tokens, double now, int *undo);

/* The attempt's verdict. latency_s is used for successes only. Returns 1
 * when the breaker changed state. */
int lr_pool_on_result(lr_pool *p, int i, lr_verdict v, double latency_s, double now, int probe);

/* Learns from an answer (h, its headers, may be NULL; sent_at: when its
 * attempt was sent). While the server says no request remains
 * (x-ratelimit-remaining-requests: 0, or a 429), requests go at the server's
 * pace (one per 60/limit s) when the limit is known, else one at a time; so a
 * throttle's end releases waiting requests as the server frees them, not as
 * one burst that earns the next 429.
 * Adaptive concurrency: the first 429 sets an in-flight limit of half what was
 * in flight; each later 429 (of an attempt sent after the last cut) halves it;
 * while the limit is what holds requests back, each success raises it by
 * 1/limit (one per round trip), scaled down by how long the server's pauses
 * are compared with the latency, so a probe that earns a 1 s pause is rare. */
void lr_pool_learn(lr_pool *p, int i, const lr_hints *h, int status, double sent_at, double now);

/* An answer reported its real token usage: the configured tpm bucket is
 * charged (or refunded) the difference from the estimate. */
void lr_pool_on_usage(lr_pool *p, int i, double estimated, double actual, double now);

/* An attempt chosen for endpoint i was not sent after all (state shared with
 * other processes refused it): undoes lr_pool_on_send, and keeps i from
 * being picked again before `until`. */
void lr_pool_unsend(lr_pool *p, int i, double tokens, int probe, int undo, double until, double now);

/* A connection to endpoint i was made (the executor saw the request go out). */
void lr_pool_reached(lr_pool *p, int i);

/* A server asked for a pause: no new request to i for `seconds`. */
void lr_pool_throttle(lr_pool *p, int i, double now, double seconds);

/* A bare 429 (no pause asked, no limits published): no pause, the learnt
 * pace is cut instead (once per 429 of an attempt sent after the last cut,
 * as lr_pool_learn marked it; the rng spreads the endpoints' next probes). */
void lr_pool_rate_limited(lr_pool *p, int i, double now, lr_rng *rng);

/* success_ewma as of now (the idle drift applied). */
double lr_pool_success_rate(lr_pool *p, int i, double now);

#endif
