/* The request state machine. See relay.h and DESIGN.md "The request state machine". */
#include "relay.h"

#include "classify.h"
#include "queue.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_QUEUE 1024
#define BUDGET_SLICES 10      /* the retry budget looks at the last 10 one-second slices */
#define BUDGET_MIN_RETRIES 10 /* retries allowed per window on top of the share, so a quiet client can retry */
#define BLOCKED_SCAN 64       /* capacity-blocked requests looked at per poll before giving up */

#define N_PRIO (LR_PRIORITY_MAX - LR_PRIORITY_MIN + 1)

struct lr_relay {
  lr_relay_cfg cfg;
  lr_pool pool;
  lr_fallbacks fb;
  lr_rng rng;
  lr_req *ready_head[N_PRIO], *ready_tail[N_PRIO]; /* requests to decide for: FIFO per priority */
  lr_req *done_head, *done_tail;   /* finished, to hand back */
  lr_req_heap waiting;             /* waiting requests, min-heap on wake_at */
  int in_flight;
  long active;
  long budget_slice[BUDGET_SLICES];
  long budget_first[BUDGET_SLICES], budget_retry[BUDGET_SLICES];
  double total_first, total_retry;   /* since the relay was made (a fleet is told the differences) */
  double others_first, others_retry; /* the other members of a fleet, in the budget's window */
  int events_on;
  lr_event ev[EVENT_QUEUE];
  int ev_head, ev_n;
  int seen_state[LR_MAX_ENDPOINTS];
};

/* ---- ready lists (queue.c) ------------------------------------------- */

static void ready_push(lr_relay *rl, lr_req *r, int front) {
  lr_list_push(&rl->ready_head[r->prio], &rl->ready_tail[r->prio], r, front);
}

static void ready_unlink(lr_relay *rl, lr_req *r) {
  lr_list_unlink(&rl->ready_head[r->prio], &rl->ready_tail[r->prio], r);
}

/* ---- events ------------------------------------------------------------ */

static void emit(lr_relay *rl, const lr_event *e) {
  if (!rl->events_on) return;
  if (rl->ev_n == EVENT_QUEUE) { /* full: the oldest goes */
    rl->ev_head = (rl->ev_head + 1) % EVENT_QUEUE;
    rl->ev_n--;
  }
  rl->ev[(rl->ev_head + rl->ev_n) % EVENT_QUEUE] = *e;
  rl->ev_n++;
}

/* Breaker transitions happen inside the pool (some lazily, on a pick); report
 * every endpoint whose state moved since we last looked. */
static void emit_breaker_changes(lr_relay *rl) {
  for (int i = 0; i < rl->pool.n; i++) {
    int s = (int)rl->pool.ep[i].breaker.state;
    if (s != rl->seen_state[i]) {
      lr_event e = {.type = LR_EV_BREAKER, .endpoint = i, .to = s, .from = rl->seen_state[i]};
      rl->seen_state[i] = s;
      emit(rl, &e);
    }
  }
}

void lr_relay_enable_events(lr_relay *rl, int on) { rl->events_on = on; }

int lr_relay_events(lr_relay *rl, lr_event *out, int max) {
  int n = 0;
  while (n < max && rl->ev_n > 0) {
    out[n++] = rl->ev[rl->ev_head];
    rl->ev_head = (rl->ev_head + 1) % EVENT_QUEUE;
    rl->ev_n--;
  }
  return n;
}

/* ---- retry budget -------------------------------------------------------- */

static int budget_slot(lr_relay *rl, double now) {
  long s = (long)floor(now);
  int k = (int)(((s % BUDGET_SLICES) + BUDGET_SLICES) % BUDGET_SLICES);
  if (rl->budget_slice[k] != s) {
    rl->budget_slice[k] = s;
    rl->budget_first[k] = rl->budget_retry[k] = 0;
  }
  return k;
}

static int budget_allows(lr_relay *rl, double now) {
  if (rl->cfg.budget < 0) return 1;
  long s = (long)floor(now), first = 0, retry = 0;
  for (int k = 0; k < BUDGET_SLICES; k++)
    if (rl->budget_slice[k] > s - BUDGET_SLICES && rl->budget_slice[k] <= s) {
      first += rl->budget_first[k];
      retry += rl->budget_retry[k];
    }
  return (double)retry + rl->others_retry < BUDGET_MIN_RETRIES + rl->cfg.budget * ((double)first + rl->others_first);
}

void lr_relay_budget(lr_relay *rl, double now, double *total_first, double *total_retry, double *window_first,
                     double *window_retry) {
  long s = (long)floor(now), first = 0, retry = 0;
  for (int k = 0; k < BUDGET_SLICES; k++)
    if (rl->budget_slice[k] > s - BUDGET_SLICES && rl->budget_slice[k] <= s) {
      first += rl->budget_first[k];
      retry += rl->budget_retry[k];
    }
  *total_first = rl->total_first;
  *total_retry = rl->total_retry;
  *window_first = (double)first;
  *window_retry = (double)retry;
}

void lr_relay_budget_others(lr_relay *rl, double first, double retry) {
  rl->others_first = first > 0 ? first : 0;
  rl->others_retry = retry > 0 ? retry : 0;
}

/* ---- life cycle ---------------------------------------------------------- */

lr_relay *lr_relay_new(const lr_relay_cfg *cfg, const lr_endpoint_cfg *eps, int n, lr_strategy strategy,
                       const lr_breaker_cfg *bcfg, uint64_t seed, double now) {
  lr_relay *rl = calloc(1, sizeof *rl);
  if (!rl) return NULL;
  rl->cfg = *cfg;
  if (rl->cfg.max_attempts < 1) rl->cfg.max_attempts = 1;
  if (rl->cfg.concurrency < 1) rl->cfg.concurrency = 1;
  lr_pool_init(&rl->pool, eps, n, strategy, bcfg, now);
  lr_rng_seed(&rl->rng, seed);
  for (int k = 0; k < BUDGET_SLICES; k++) rl->budget_slice[k] = -1;
  return rl;
}

void lr_relay_free(lr_relay *rl) {
  if (!rl) return;
  lr_pool_free(&rl->pool);
  lr_fallbacks_free(&rl->fb);
  lr_heap_free(&rl->waiting);
  free(rl);
}

lr_pool *lr_relay_pool(lr_relay *rl) { return &rl->pool; }
lr_fallbacks *lr_relay_fallbacks(lr_relay *rl) { return &rl->fb; }
int lr_relay_in_flight(const lr_relay *rl) { return rl->in_flight; }
long lr_relay_active(const lr_relay *rl) { return rl->active; }

static void finish(lr_relay *rl, lr_req *r, lr_error_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A request that would end with kind tries its next fallback model instead
 * (fallback.h says when), at once: 1 when it does. */
static int fall_back(lr_relay *rl, lr_req *r, lr_error_kind kind) {
  int which = r->partial ? -1 : lr_fallback_list_for(kind, r->fb.context_exceeded);
  for (int to; which >= 0 && (to = lr_fallback_next(&rl->fb, which, &r->fb)) >= 0;) {
    uint64_t allowed = lr_models_serving(&rl->pool.models, rl->pool.n, to) & r->only;
    if (!allowed) continue;
    lr_event e = {.type = LR_EV_FALLBACK, .endpoint = r->last_endpoint, .from = r->model, .to = to,
                  .status = r->status, .kind = kind, .udata = r->udata};
    emit(rl, &e);
    r->model = to;
    r->allowed = allowed;
    r->tried = 0;
    r->rounds = 0;
    r->base_attempts = r->attempts;
    r->retry_after_s = -1; /* the old model's wait says nothing of the new one */
    r->fb.context_exceeded = 0;
    r->state = LR_REQ_READY;
    ready_push(rl, r, 1);
    return 1;
  }
  return 0;
}

static void finish(lr_relay *rl, lr_req *r, lr_error_kind kind, const char *fmt, ...) {
  if (kind != LR_E_NONE && fall_back(rl, r, kind)) return;
  if (r->partial && kind != LR_E_NONE) kind = LR_E_STREAM_INTERRUPTED; /* some of the answer came */
  r->partial = 0;
  r->state = LR_REQ_DONE;
  r->kind = kind;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
  }
  lr_list_push(&rl->done_head, &rl->done_tail, r, 0);
}

void lr_relay_submit(lr_relay *rl, lr_req *r, uint64_t allowed, double tokens, double deadline,
                     double timeout_s, int priority, void *udata) {
  memset(r, 0, sizeof *r);
  r->udata = udata;
  r->endpoint = r->last_endpoint = -1;
  r->retry_after_s = -1;
  r->latency_s = -1;
  r->heap_idx = -1;
  r->model = r->fb.origin = -1;
  r->only = ~(uint64_t)0;
  uint64_t all = rl->pool.n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << rl->pool.n) - 1);
  r->allowed = allowed & all;
  r->tokens = tokens > 0 ? tokens : 0;
  if (priority < LR_PRIORITY_MIN) priority = LR_PRIORITY_MIN;
  if (priority > LR_PRIORITY_MAX) priority = LR_PRIORITY_MAX;
  r->prio = priority - LR_PRIORITY_MIN;
  r->deadline = deadline;
  r->timeout_s = timeout_s > 0 ? timeout_s : rl->cfg.attempt_timeout_s;
  r->attempt_timeout_s = r->timeout_s;
  rl->active++;
  if (!r->allowed) {
    finish(rl, r, LR_E_INVALID_REQUEST, "no endpoint serves this request's model");
    return;
  }
  r->state = LR_REQ_READY;
  ready_push(rl, r, 0);
}

void lr_relay_route(lr_req *r, int model, uint64_t only) {
  r->model = r->fb.origin = model;
  r->only = only;
}

void lr_relay_route_api(lr_req *r, int api, uint64_t by_api, int model_served) {
  r->api = api;
  r->only &= by_api;
  if (r->state == LR_REQ_DONE && r->kind == LR_E_INVALID_REQUEST && model_served)
    snprintf(r->message, sizeof r->message, "no endpoint serves the %s api (see endpoints[i].apis)",
             lr_api_name((lr_api)api));
}

const char *lr_relay_wire_model(lr_relay *rl, const lr_req *r, int i, size_t *len) {
  return lr_models_wire(&rl->pool.models, i, r->model, len);
}

uint64_t lr_relay_only(uint64_t serving, const unsigned char *only, size_t n, int *empty_by_only) {
  *empty_by_only = 0;
  if (!only) return serving;
  uint64_t mask = 0;
  for (size_t k = 0; k < n; k++)
    if (only[k] >= 1 && only[k] <= LR_MAX_ENDPOINTS) mask |= (uint64_t)1 << (only[k] - 1);
  *empty_by_only = serving != 0 && (serving & mask) == 0;
  return serving & mask;
}

void lr_relay_explain_only(lr_req *r) {
  if (r->state == LR_REQ_DONE && r->kind == LR_E_INVALID_REQUEST)
    snprintf(r->message, sizeof r->message, "none of the endpoints in opts.endpoints serves this request's model");
}

/* ---- deciding ------------------------------------------------------------- */

typedef enum { D_SEND, D_DONE, D_WAIT, D_BLOCKED } decision;

static lr_error_kind blocked_kind(int why, lr_error_kind fallback) {
  if (why & LR_BLOCK_THROTTLE) return LR_E_RATE_LIMITED;
  if (why & LR_BLOCK_BREAKER) return LR_E_CIRCUIT_OPEN;
  if (why & LR_BLOCK_LIMITER) return LR_E_RATE_LIMITED;
  return fallback;
}

static const char *blocked_text(int why) {
  if (why & LR_BLOCK_THROTTLE) return "every endpoint is rate limited";
  if (why & LR_BLOCK_BREAKER) return "every endpoint's circuit is open";
  if (why & LR_BLOCK_LIMITER) return "every endpoint is at its configured rate limit";
  return "backing off";
}

static void send_to(lr_relay *rl, lr_req *r, int i, double now) {
  int k = budget_slot(rl, now);
  if (r->attempts == 0) {
    rl->budget_first[k]++;
    rl->total_first++;
  } else if (!r->free_retry) {
    rl->budget_retry[k]++;
    rl->total_retry++;
  }
  if (r->attempts > 0 && r->last_endpoint >= 0 && r->last_endpoint != i) {
    lr_event e = {.type = LR_EV_FAILOVER, .endpoint = r->last_endpoint, .to = i, .attempt = r->attempts + 1,
                  .status = r->status, .kind = r->kind, .udata = r->udata};
    emit(rl, &e);
  }
  r->attempts++;
  r->endpoint = i;
  r->attempt_timeout_s = r->timeout_s;
  if (r->deadline - now < r->attempt_timeout_s) r->attempt_timeout_s = r->deadline - now;
  r->state = LR_REQ_SENDING;
  r->sent_at = now;
  r->probe = lr_pool_on_send_undoable(&rl->pool, i, r->tokens, now, &r->send_undo);
  rl->in_flight++;
}

static decision decide(lr_relay *rl, lr_req *r, double now) {
  lr_error_kind last = r->attempts ? r->kind : LR_E_NONE;
  if (now >= r->deadline) {
    finish(rl, r, LR_E_DEADLINE, "deadline passed after %d attempt%s", r->attempts,
           r->attempts == 1 ? "" : "s");
    return D_DONE;
  }
  double wake = INFINITY;
  int why = 0, new_round = 0;
  uint64_t cand = r->allowed & ~r->tried;
  if (cand) {
    int i = lr_pool_pick_model(&rl->pool, cand, r->model, r->tokens, now, &rl->rng, &wake, &why);
    if (i >= 0) {
      if (r->attempts > 0 && !r->free_retry && !budget_allows(rl, now)) {
        finish(rl, r, last, "retry budget exhausted after %d attempt%s", r->attempts,
               r->attempts == 1 ? "" : "s");
        return D_DONE;
      }
      send_to(rl, r, i, now);
      return D_SEND;
    }
    /* An untried endpoint is only busy: its next answer frees a slot, sooner
     * than a backoff would bring the request back to one that failed. */
    if (why & LR_BLOCK_CAPACITY) {
      r->wake_at = wake; /* finite when another process's state holds it */
      return D_BLOCKED;
    }
  }
  if (r->tried) {
    /* Every untried endpoint is busy or blocked. Going back to one that
     * failed needs a new round: at once is no good, so wait for the earliest
     * known moment one of them is usable, or back off when nothing is known. */
    double known = INFINITY, wb;
    int unknown = 0, bits = 0;
    for (int i = 0; i < rl->pool.n; i++) {
      if (!(r->tried & r->allowed & ((uint64_t)1 << i))) continue;
      double at;
      int w;
      if (lr_pool_usable(&rl->pool, i, r->tokens, now, &at, &w)) unknown = 1;
      else {
        bits |= w;
        if (at < known) known = at;
      }
    }
    if (unknown) {
      wb = now + lr_backoff_wait(&rl->cfg.backoff, r->rounds, lr_rng_unit(&rl->rng), -1);
    } else {
      wb = known;
    }
    if (wb < wake) {
      wake = wb;
      why = unknown ? 0 : bits;
      new_round = 1;
    } else {
      why |= bits;
    }
  }
  if (wake == INFINITY) {
    if (why & LR_BLOCK_CAPACITY) {
      r->wake_at = INFINITY;
      return D_BLOCKED;
    }
    finish(rl, r, last ? last : LR_E_INVALID_REQUEST, "no endpoint can serve this request");
    return D_DONE;
  }
  double delay = wake - now;
  if (why) {
    /* A known cause ends at one instant for everyone waiting on it: spread
     * the wake-ups a little so they do not arrive as one burst. */
    double spread = 0.1 * delay;
    if (spread > 1.0) spread = 1.0;
    delay += lr_rng_unit(&rl->rng) * spread;
    wake = now + delay;
  }
  if (wake > r->deadline) {
    r->retry_after_s = delay;
    finish(rl, r, why ? blocked_kind(why, LR_E_DEADLINE) : LR_E_DEADLINE,
           "%s: the next attempt could start in %.3g s, after the deadline", blocked_text(why), delay);
    return D_DONE;
  }
  if (why && delay > rl->cfg.backoff.max_retry_after_s) {
    r->retry_after_s = delay;
    finish(rl, r, blocked_kind(why, last), "%s for %.3g s (more than max_retry_after)", blocked_text(why),
           delay);
    return D_DONE;
  }
  if (r->attempts > 0) {
    lr_event e = {.type = LR_EV_RETRY, .endpoint = r->last_endpoint, .attempt = r->attempts + 1,
                  .status = r->status, .kind = r->kind, .delay_s = delay, .udata = r->udata};
    emit(rl, &e);
  }
  r->wake_at = wake;
  r->new_round_on_wake = new_round;
  return D_WAIT;
}

int lr_relay_poll(lr_relay *rl, double now, lr_req **out, int max, double *next_wake) {
  int n = 0;
  for (lr_req *r; (r = lr_heap_top(&rl->waiting)) && r->wake_at <= now;) {
    lr_heap_remove(&rl->waiting, r);
    if (r->new_round_on_wake) {
      r->tried = 0;
      r->rounds++;
      r->new_round_on_wake = 0;
    }
    r->state = LR_REQ_READY;
    ready_push(rl, r, 0);
  }
  int blocked = 0, ready_left = 0, full = 0;
  double blocked_wake = INFINITY; /* the earliest a blocked request may go, or must end (its deadline) */
  for (int p = N_PRIO - 1; p >= 0; p--) { /* higher priorities first */
    lr_req **head = &rl->ready_head[p], **tail = &rl->ready_tail[p];
    for (lr_req *r = *head, *next; r && n < max && blocked < BLOCKED_SCAN && !full; r = next) {
      next = r->next;
      if (rl->in_flight >= rl->cfg.concurrency && now < r->deadline) {
        full = 1; /* no slot: nothing below may overtake */
        break;
      }
      lr_list_unlink(head, tail, r);
      switch (decide(rl, r, now)) {
      case D_SEND:
        out[n++] = r;
        break;
      case D_WAIT:
        r->state = LR_REQ_WAITING;
        if (lr_heap_push(&rl->waiting, r) != 0) finish(rl, r, r->kind, "out of memory");
        break;
      case D_BLOCKED: /* put back where it was */
        if (next) {
          r->next = next;
          r->prev = next->prev;
          if (next->prev) next->prev->next = r;
          else *head = r;
          next->prev = r;
        } else {
          lr_list_push(head, tail, r, 0);
        }
        blocked++;
        if (r->wake_at < blocked_wake) blocked_wake = r->wake_at;
        if (r->deadline < blocked_wake) blocked_wake = r->deadline;
        break;
      case D_DONE:
        break;
      }
    }
    if (*head) ready_left = 1;
  }
  while (n < max && rl->done_head) {
    lr_req *r = rl->done_head;
    lr_list_unlink(&rl->done_head, &rl->done_tail, r);
    rl->active--;
    out[n++] = r;
  }
  emit_breaker_changes(rl);
  *next_wake = rl->waiting.n ? lr_heap_top(&rl->waiting)->wake_at : INFINITY;
  if (blocked_wake < *next_wake) *next_wake = blocked_wake;
  if (rl->done_head || (ready_left && rl->in_flight < rl->cfg.concurrency && blocked == 0))
    *next_wake = now; /* more to hand out than fitted in `out` */
  return n;
}

void lr_relay_report(lr_relay *rl, lr_req *r, const lr_outcome *o, double now) {
  if (r->state != LR_REQ_SENDING) return;
  int i = r->endpoint;
  rl->in_flight--;
  r->latency_s = now - r->sent_at;
  r->status = o->status;
  r->last_endpoint = i;
  snprintf(r->request_id, sizeof r->request_id, "%s", o->hints ? o->hints->request_id : "");
  lr_classification c = lr_classify(o, r->deadline, now);
  r->verdict = c.health;
  r->fb.context_exceeded = o->context_exceeded;
  r->partial = o->partial || o->committed; /* finish() then names the failure stream_interrupted */
  if (o->committed && c.action != LR_ACT_OK) c.action = LR_ACT_FINAL; /* the caller has part of the answer: no second one */
  lr_pool_on_result(&rl->pool, i, c.health, r->latency_s, now, r->probe);
  if (o->status > 0) lr_pool_reached(&rl->pool, i); /* an executor may have said so sooner */
  lr_pool_learn(&rl->pool, i, o->hints, o->status, r->sent_at, now);
  r->probe = 0;
  if (c.throttle_s > 0) {
    lr_pool_throttle(&rl->pool, i, now, c.throttle_s);
    lr_event e = {.type = LR_EV_THROTTLE, .endpoint = i, .status = o->status, .delay_s = c.throttle_s};
    emit(rl, &e);
    r->retry_after_s = c.throttle_s;
  } else if (c.bare) {
    lr_pool_rate_limited(&rl->pool, i, now, &rl->rng);
    lr_event e = {.type = LR_EV_THROTTLE, .endpoint = i, .status = o->status, .delay_s = 0};
    emit(rl, &e);
  }
  emit_breaker_changes(rl);
  r->kind = c.kind;
  /* outside the budget: a retry that adds no load (the first attempt never
   * reached a server, or it is routing), or one the server paced itself (429) */
  r->free_retry = o->not_sent || c.free;
  r->message[0] = 0;
  if (o->message) snprintf(r->message, sizeof r->message, "%s", o->message);
  r->endpoint = -1;
  switch (c.action) {
  case LR_ACT_OK:
    if (o->usage_tokens >= 0) lr_pool_on_usage(&rl->pool, i, r->tokens, o->usage_tokens, now);
    r->retry_after_s = -1;
    finish(rl, r, LR_E_NONE, NULL);
    return;
  case LR_ACT_FINAL:
    finish(rl, r, c.kind, NULL);
    return;
  case LR_ACT_RETRY_ELSEWHERE:
    r->allowed &= ~((uint64_t)1 << i);
    break;
  case LR_ACT_RETRY:
    break;
  }
  r->tried |= (uint64_t)1 << i;
  if (r->attempts - r->base_attempts >= rl->cfg.max_attempts) {
    if (!r->message[0])
      snprintf(r->message, sizeof r->message, "gave up after %d attempt%s", r->attempts, r->attempts == 1 ? "" : "s");
    finish(rl, r, c.kind, NULL);
    return;
  }
  if (!r->allowed) {
    finish(rl, r, c.kind, NULL);
    return;
  }
  r->partial = 0; /* retried: the executor drops what the attempt sent */
  r->state = LR_REQ_READY;
  ready_push(rl, r, 1); /* it has waited already: it goes first among its priority */
}

void lr_relay_unsend(lr_relay *rl, lr_req *r, double until, double now) {
  if (r->state != LR_REQ_SENDING) return;
  /* the failover announced for this attempt did not happen */
  if (rl->ev_n > 0) {
    lr_event *last = &rl->ev[(rl->ev_head + rl->ev_n - 1) % EVENT_QUEUE];
    if (last->type == LR_EV_FAILOVER && last->udata == r->udata && last->attempt == r->attempts) rl->ev_n--;
  }
  rl->in_flight--;
  lr_pool_unsend(&rl->pool, r->endpoint, r->tokens, r->probe, r->send_undo, until, now);
  r->probe = 0;
  int k = budget_slot(rl, now);
  if (r->attempts == 1) {
    if (rl->budget_first[k] > 0) rl->budget_first[k]--;
    rl->total_first--;
  } else if (!r->free_retry && rl->budget_retry[k] > 0) {
    rl->budget_retry[k]--;
    rl->total_retry--;
  }
  r->attempts--;
  r->endpoint = -1;
  r->state = LR_REQ_READY;
  ready_push(rl, r, 1);
}

lr_req_state lr_relay_cancel(lr_relay *rl, lr_req *r, lr_error_kind kind, double now) {
  lr_req_state was = r->state;
  switch (was) {
  case LR_REQ_READY:
    ready_unlink(rl, r);
    break;
  case LR_REQ_WAITING:
    lr_heap_remove(&rl->waiting, r);
    break;
  case LR_REQ_SENDING:
    rl->in_flight--;
    r->latency_s = now - r->sent_at;
    lr_pool_on_result(&rl->pool, r->endpoint, LR_VERDICT_NEUTRAL, -1, now, r->probe);
    r->probe = 0;
    r->last_endpoint = r->endpoint;
    r->endpoint = -1;
    break;
  case LR_REQ_DONE:
    /* it may be waiting in the done list */
    for (lr_req *d = rl->done_head; d; d = d->next)
      if (d == r) {
        lr_list_unlink(&rl->done_head, &rl->done_tail, r);
        rl->active--;
        break;
      }
    return was;
  default:
    return was;
  }
  rl->active--;
  r->state = LR_REQ_DONE;
  r->kind = kind;
  snprintf(r->message, sizeof r->message, "%s", kind == LR_E_CANCELLED ? "cancelled" : lr_error_kind_name(kind));
  return was;
}
