/* Endpoint health and selection. See pool.h. */
#include "pool.h"
#include "fleet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LATENCY_ALPHA 0.3
#define SUCCESS_ALPHA 0.2
#define SUCCESS_DRIFT_S 30.0 /* a failed endpoint's score recovers with this time constant */

void lr_pool_init(lr_pool *p, const lr_endpoint_cfg *eps, int n, lr_strategy strategy,
                  const lr_breaker_cfg *bcfg, double now) {
  memset(p, 0, sizeof *p);
  p->n = n > LR_MAX_ENDPOINTS ? LR_MAX_ENDPOINTS : n;
  p->strategy = strategy;
  p->breaker_cfg = *bcfg;
  p->prober = -1;
  lr_models_init(&p->models);
  for (int i = 0; i < p->n; i++) {
    lr_endpoint *e = &p->ep[i];
    e->weight = eps[i].weight > 0 ? eps[i].weight : 1.0;
    e->max_concurrency = eps[i].max_concurrency > 0 ? eps[i].max_concurrency : 0;
    e->latency_ewma_s = -1.0;
    e->success_ewma = 1.0;
    e->success_at = now;
    e->throttled_until = -INFINITY;
    e->remaining = -1;
    e->remaining_tokens = -1;
    e->pub_remaining = -1;
    e->limit_cut_at = -INFINITY;
    lr_ratelearn_init(&e->learnt);
    lr_breaker_init(&e->breaker, bcfg);
    lr_limiter_init(&e->limiter, eps[i].rpm, eps[i].tpm, now);
    for (int a = 0; a < LR_API__COUNT; a++)
      if (!eps[i].apis || (eps[i].apis & (1u << a))) p->by_api[a] |= (uint64_t)1 << i;
  }
}

double lr_pool_success_rate(lr_pool *p, int i, double now) {
  lr_endpoint *e = &p->ep[i];
  double dt = now - e->success_at;
  if (dt > 0) {
    e->success_ewma = 1.0 - (1.0 - e->success_ewma) * exp(-dt / SUCCESS_DRIFT_S);
    e->success_at = now;
  }
  return e->success_ewma;
}

/* Learning the rates of endpoints that publish no limits: each probe ends in
 * a 429 and a whole Retry-After pause, so only one endpoint probes at a time
 * while the others keep their pace; once one has an estimate, an endpoint
 * still probing takes it over (keys of one service usually share a limit)
 * and a 429 of its own later corrects it. */
static void coordinate_learning(lr_pool *p, int i, double now) {
  lr_endpoint *e = &p->ep[i];
  /* a sibling's first bare 429 measured its bucket: an endpoint that has
   * carried as much in the last second without a 429 yet is taken to be as
   * near its end (keys of one service usually share a limit) and paced from
   * the same prior, before the sibling's refused requests all fail over to it */
  if (p->bare_burst > 0 && !e->learnt.active && e->learnt.recent_n + e->in_flight >= p->bare_burst &&
      lr_ratelearn_recent(&e->learnt, now) + e->in_flight >= p->bare_burst)
    lr_ratelearn_prior(&e->learnt, p->bare_burst, now);
  if (!lr_ratelearn_probing(&e->learnt)) return;
  double sibling = -1;
  for (int k = 0; k < p->n; k++) {
    const lr_ratelearn *o = &p->ep[k].learnt;
    if (k != i && o->active && o->estimated && !o->borrowed && (sibling < 0 || o->rate < sibling)) sibling = o->rate;
  }
  if (sibling > 0) {
    lr_ratelearn_adopt(&e->learnt, sibling);
    return;
  }
  if (e->learnt.bare) return; /* a bare 429 costs a retry, not a pause: every endpoint probes */
  int cur = p->prober;
  if (cur < 0 || cur >= p->n || !lr_ratelearn_probing(&p->ep[cur].learnt) ||
      p->ep[cur].breaker.state == LR_BREAKER_OPEN)
    p->prober = i;
  lr_ratelearn_hold(&e->learnt, p->prober != i, now);
}

/* What an endpoint that has not answered yet may carry: as much as any
 * sibling carried at its first answer, or carries now (a pool of long
 * streams keeps growing), and at least the warm-up's few. */
static int unanswered_cap(const lr_pool *p, int i) {
  int cap = p->first_load > LR_WARMUP_IN_FLIGHT ? p->first_load : LR_WARMUP_IN_FLIGHT;
  for (int k = 0; k < p->n; k++)
    if (k != i && p->ep[k].answered && p->ep[k].in_flight > cap) cap = p->ep[k].in_flight;
  return cap;
}

int lr_pool_usable(lr_pool *p, int i, double tokens, double now, double *usable_at, int *why) {
  lr_endpoint *e = &p->ep[i];
  double at = now;
  int bits = 0;
  if (!lr_breaker_allows(&e->breaker, &p->breaker_cfg, now)) {
    double t = lr_breaker_usable_at(&e->breaker, now);
    if (t > at) at = t;
    bits |= LR_BLOCK_BREAKER;
    if (isinf(t)) bits |= LR_BLOCK_CAPACITY; /* half-open, probes busy: a report frees a slot */
  }
  if (e->throttled_until > now) {
    if (e->throttled_until > at) at = e->throttled_until;
    bits |= LR_BLOCK_THROTTLE;
  }
  double lim = lr_limiter_available_at(&e->limiter, tokens, now);
  if (lim > now) {
    if (lim > at) at = lim;
    bits |= LR_BLOCK_LIMITER;
  }
  if (e->remaining >= 0 && e->remaining < 1 && now < e->remaining_until) {
    /* the server has no request left for us: go at its pace, or one at a time */
    if (e->slot_interval > 0) {
      if (e->next_slot_at > now) {
        if (e->next_slot_at > at) at = e->next_slot_at;
        bits |= LR_BLOCK_THROTTLE;
      }
    } else if (e->in_flight > 0) {
      at = INFINITY;
      bits |= LR_BLOCK_CAPACITY;
    }
  }
  coordinate_learning(p, i, now);
  double paced = lr_ratelearn_ready_at(&e->learnt, now);
  if (paced > now) {
    if (paced > at) at = paced;
    bits |= LR_BLOCK_THROTTLE;
  }
  if (e->remaining_tokens >= 0 && now < e->remaining_tokens_until && e->remaining_tokens < tokens) {
    /* the server's token budget is spent: wait for its reset */
    if (e->remaining_tokens_until > at) at = e->remaining_tokens_until;
    bits |= LR_BLOCK_THROTTLE;
  }
  if (e->limit > 0 && e->in_flight + 1 > e->limit) {
    at = INFINITY; /* the adaptive limit: a release frees a slot */
    bits |= LR_BLOCK_CAPACITY;
  }
  if (!e->reachable && e->in_flight >= LR_WARMUP_IN_FLIGHT) {
    at = INFINITY;
    bits |= LR_BLOCK_CAPACITY;
  }
  if (!e->answered && p->first_load > 0 && e->in_flight >= unanswered_cap(p, i)) {
    at = INFINITY; /* its first answer, or a sibling's release, frees a slot */
    bits |= LR_BLOCK_CAPACITY;
  }
  if (e->shared_block_until > now) {
    if (e->shared_block_until > at) at = e->shared_block_until;
    bits |= LR_BLOCK_CAPACITY; /* other processes hold it: one of their releases frees it */
  }
  if (e->max_concurrency && e->in_flight >= e->max_concurrency) {
    at = INFINITY;
    bits |= LR_BLOCK_CAPACITY;
  }
  if (bits == 0 && e->lease_on) {
    /* a fleet's member: only what its lease allows (looked at last, so a lease is wanted only when nothing else holds it) */
    double t = lr_fleet_blocked_until(e, tokens, now);
    if (t > 0) {
      at = t;
      bits |= LR_BLOCK_LIMITER;
    }
  }
  if (usable_at) *usable_at = at;
  if (why) *why = bits;
  return bits == 0;
}

/* Lower is better: expected latency, scaled by the queue in front of us and
 * divided by the squared success rate so a flaky endpoint must be much
 * faster to win. An endpoint with no latency yet is scored at the pool's
 * mean, neither favoured nor shunned. */
static double score(lr_pool *p, int i, double mean_latency, double now) {
  lr_endpoint *e = &p->ep[i];
  double lat = e->latency_ewma_s >= 0 ? e->latency_ewma_s : mean_latency;
  double s = lr_pool_success_rate(p, i, now);
  if (s < 0.05) s = 0.05;
  return (lat + 1e-4) * (double)(e->in_flight + 1) / (s * s);
}

static int pick_weighted(lr_pool *p, const int *cand, int nc, double now, lr_rng *rng) {
  double total = 0, lat_sum = 0;
  int lat_n = 0;
  for (int k = 0; k < nc; k++) {
    lr_endpoint *e = &p->ep[cand[k]];
    total += e->weight;
    if (e->latency_ewma_s >= 0) {
      lat_sum += e->latency_ewma_s;
      lat_n++;
    }
  }
  double mean = lat_n ? lat_sum / lat_n : 0.0;
  /* power of two choices, drawn with replacement in proportion to weight */
  int pick[2];
  for (int d = 0; d < 2; d++) {
    double r = lr_rng_unit(rng) * total;
    int k = 0;
    while (k < nc - 1 && r >= p->ep[cand[k]].weight) {
      r -= p->ep[cand[k]].weight;
      k++;
    }
    pick[d] = cand[k];
  }
  if (pick[0] == pick[1]) return pick[0];
  double s0 = score(p, pick[0], mean, now), s1 = score(p, pick[1], mean, now);
  if (fabs(s0 - s1) <= 0.05 * (s0 < s1 ? s0 : s1)) return pick[0]; /* a tie: the first draw, by weight */
  return s0 < s1 ? pick[0] : pick[1];
}

/* Strategy "cost": the candidates of the lowest rank price (priced before
 * unpriced), then the weighted rule among them. */
static int pick_cheapest(lr_pool *p, int *cand, int nc, int model, double now, lr_rng *rng) {
  double best = -1;
  for (int k = 0; k < nc; k++) {
    double r = lr_models_rank(&p->models, cand[k], model);
    if (r >= 0 && (best < 0 || r < best)) best = r;
  }
  int m = 0;
  for (int k = 0; k < nc; k++) {
    double r = lr_models_rank(&p->models, cand[k], model);
    if (best < 0 || (r >= 0 && r <= best * (1 + 1e-12))) cand[m++] = cand[k];
  }
  return pick_weighted(p, cand, m, now, rng);
}

int lr_pool_pick(lr_pool *p, uint64_t allowed, double tokens, double now, lr_rng *rng,
                 double *wake_at, int *why) {
  return lr_pool_pick_model(p, allowed, -1, tokens, now, rng, wake_at, why);
}

int lr_pool_pick_model(lr_pool *p, uint64_t allowed, int model, double tokens, double now, lr_rng *rng,
                       double *wake_at, int *why) {
  int cand[LR_MAX_ENDPOINTS];
  int nc = 0, bits = 0;
  double wake = INFINITY;
  for (int i = 0; i < p->n; i++) {
    if (!(allowed & ((uint64_t)1 << i))) continue;
    double at;
    int w;
    if (lr_pool_usable(p, i, tokens, now, &at, &w)) {
      cand[nc++] = i;
    } else {
      bits |= w;
      if (at < wake) wake = at;
    }
  }
  if (nc == 0) {
    if (wake_at) *wake_at = wake;
    if (why) *why = bits;
    return -1;
  }
  switch (p->strategy) {
  case LR_STRATEGY_PRIORITY:
    return cand[0];
  case LR_STRATEGY_ROUND_ROBIN:
    for (int k = 0; k < nc; k++)
      if (cand[k] >= p->rr_next) {
        p->rr_next = cand[k] + 1;
        return cand[k];
      }
    p->rr_next = cand[0] + 1;
    return cand[0];
  case LR_STRATEGY_COST:
    return pick_cheapest(p, cand, nc, model, now, rng);
  default:
    return pick_weighted(p, cand, nc, now, rng);
  }
}

enum { UNDO_REMAINING = 1, UNDO_SLOT = 2 };

int lr_pool_on_send_undoable(lr_pool *p, int i, double tokens, double now, int *undo) {
  lr_endpoint *e = &p->ep[i];
  *undo = 0;
  e->in_flight++;
  e->requests++;
  if (e->remaining_tokens >= 0) e->remaining_tokens -= tokens;
  lr_ratelearn_sent(&e->learnt, now);
  if (e->remaining >= 1) {
    e->remaining -= 1;
    *undo |= UNDO_REMAINING;
  } else if (e->remaining >= 0 && e->slot_interval > 0) {
    e->next_slot_at = (e->next_slot_at > now ? e->next_slot_at : now) + e->slot_interval;
    *undo |= UNDO_SLOT;
  }
  lr_limiter_take(&e->limiter, tokens, now);
  lr_fleet_take(e, tokens, 1);
  return lr_breaker_on_send(&e->breaker, &p->breaker_cfg, now);
}

int lr_pool_on_send(lr_pool *p, int i, double tokens, double now) {
  int undo;
  return lr_pool_on_send_undoable(p, i, tokens, now, &undo);
}

void lr_pool_unsend(lr_pool *p, int i, double tokens, int probe, int undo, double until, double now) {
  lr_endpoint *e = &p->ep[i];
  if (e->in_flight > 0) e->in_flight--;
  if (e->requests > 0) e->requests--;
  if (e->remaining_tokens >= 0) e->remaining_tokens += tokens;
  if ((undo & UNDO_REMAINING) && e->remaining >= 0) e->remaining += 1;
  if (undo & UNDO_SLOT) e->next_slot_at -= e->slot_interval;
  lr_bucket_adjust(&e->limiter.requests, 1, now);
  lr_bucket_adjust(&e->limiter.tokens, tokens, now);
  lr_fleet_take(e, tokens, -1);
  lr_breaker_on_neutral(&e->breaker, &p->breaker_cfg, now, probe);
  if (until > e->shared_block_until) e->shared_block_until = until;
}

int lr_pool_on_result(lr_pool *p, int i, lr_verdict v, double latency_s, double now, int probe) {
  lr_endpoint *e = &p->ep[i];
  if (e->in_flight > 0) e->in_flight--;
  int changed = 0;
  double s = lr_pool_success_rate(p, i, now);
  switch (v) {
  case LR_VERDICT_SUCCESS:
    e->successes++;
    e->success_ewma = s + SUCCESS_ALPHA * (1.0 - s);
    if (latency_s >= 0)
      e->latency_ewma_s = e->latency_ewma_s < 0
                              ? latency_s
                              : e->latency_ewma_s + LATENCY_ALPHA * (latency_s - e->latency_ewma_s);
    changed = lr_breaker_on_success(&e->breaker, &p->breaker_cfg, now, probe);
    break;
  case LR_VERDICT_FAILURE:
    e->failures++;
    e->success_ewma = s * (1.0 - SUCCESS_ALPHA);
    changed = lr_breaker_on_failure(&e->breaker, &p->breaker_cfg, now, probe);
    break;
  default:
    lr_breaker_on_neutral(&e->breaker, &p->breaker_cfg, now, probe);
    break;
  }
  return changed;
}

static void adapt_limit(lr_endpoint *e, const lr_hints *h, int status, double sent_at, double now) {
  if (status == 429) {
    if (sent_at <= e->limit_cut_at) return; /* sent before the last cut: already accounted for */
    int published = h && (h->limit_requests >= 0 || h->remaining_requests >= 0);
    e->limit_cut_at = now;
    /* no published limit to pace by: the rate learner adjusts (once the pause is known) */
    if (!published) e->learnt_cut = 1;
    /* a bare 429 (no limit, no pause): the learnt pace, not the in-flight limit, answers it */
    if (!published && (!h || lr_hints_server_delay(h) < 0)) return;
    double base = e->limit > 0 ? e->limit : (double)(e->in_flight + 1);
    e->limit = base / 2 >= 1 ? base / 2 : 1;
  } else if (status >= 200 && status < 300 && e->limit > 0 && e->in_flight + 2 > e->limit) {
    double scale = 1.0; /* grow slower when a failed probe costs a long pause */
    if (e->last_pause_s > 0 && e->latency_ewma_s > 0 && e->latency_ewma_s < e->last_pause_s)
      scale = e->latency_ewma_s / e->last_pause_s;
    if (scale < 0.05) scale = 0.05;
    e->limit += scale / e->limit;
  }
}

void lr_pool_learn(lr_pool *p, int i, const lr_hints *h, int status, double sent_at, double now) {
  lr_endpoint *e = &p->ep[i];
  if (status > 0 && !e->answered) {
    e->answered = 1;
    e->first_load = e->in_flight + 1; /* lr_pool_on_result has released this attempt */
    if (e->first_load > p->first_load) p->first_load = e->first_load;
  }
  adapt_limit(e, h, status, sent_at, now);
  if (status >= 200 && status < 300) lr_ratelearn_success(&e->learnt, sent_at, now);
  if (h && h->remaining_tokens >= 0) {
    e->remaining_tokens = h->remaining_tokens;
    e->remaining_tokens_until = now + (h->reset_tokens_s >= 0 ? h->reset_tokens_s : 1.0);
  }
  if (h && h->remaining_requests >= 0) {
    e->pub_remaining = h->remaining_requests;
    e->pub_at = now;
    double rs = h->reset_requests_s >= 0 ? h->reset_requests_s : h->reset_s;
    if (h->limit_requests > 0 && rs >= 0) e->pub_cap = h->remaining_requests + rs * h->limit_requests / 60.0;
    double rem = h->remaining_requests - e->in_flight; /* those in flight were not counted yet */
    double reset = h->reset_requests_s >= 0 ? h->reset_requests_s : h->reset_s;
    e->remaining = rem > 0 ? rem : 0;
    e->remaining_until = now + (reset >= 0 ? reset : 1.0);
    /* x-ratelimit-limit-requests is per minute: one request frees every 60/limit s */
    e->slot_interval = h->limit_requests > 0 ? 60.0 / h->limit_requests : 0;
    if (e->remaining < 1 && e->next_slot_at < now + e->slot_interval) e->next_slot_at = now + e->slot_interval;
  } else if (status == 429) {
    e->remaining = 0; /* until an answer says otherwise */
    e->remaining_until = INFINITY;
  } else if (status >= 200 && status < 300) {
    e->remaining = -1; /* a success that names no limit: nothing is known to be exhausted */
  }
}

void lr_pool_on_usage(lr_pool *p, int i, double estimated, double actual, double now) {
  lr_limiter_correct(&p->ep[i].limiter, estimated, actual, now);
}

void lr_pool_reached(lr_pool *p, int i) { p->ep[i].reachable = 1; }

/* A 429 counted: whether the rate learner was asked (adapt_limit) to adjust
 * to it, which it does once and only then. */
static int take_learnt_cut(lr_endpoint *e) {
  int cut = e->learnt_cut;
  e->learnt_cut = 0;
  e->throttles++;
  return cut;
}

void lr_pool_throttle(lr_pool *p, int i, double now, double seconds) {
  lr_endpoint *e = &p->ep[i];
  double until = now + seconds;
  e->last_pause_s = seconds;
  if (take_learnt_cut(e)) lr_ratelearn_cut(&e->learnt, now, seconds);
  if (until > e->throttled_until) e->throttled_until = until;
}

void lr_pool_rate_limited(lr_pool *p, int i, double now, lr_rng *rng) {
  lr_endpoint *e = &p->ep[i];
  if (!take_learnt_cut(e)) return;
  int first = !e->learnt.active;
  lr_ratelearn_cut_bare(&e->learnt, now, lr_rng_unit(rng));
  if (first && p->bare_burst <= 0) p->bare_burst = e->learnt.burst;
}

int lr_pool_set_models(lr_pool *p, int i, const char *const *models, int n) {
  for (int k = 0; k < n; k++)
    if (lr_models_serve(&p->models, i, models[k], NULL) != 0) return -1;
  return 0;
}

void lr_pool_free(lr_pool *p) {
  for (int i = 0; i < p->n; i++) lr_ratelearn_free(&p->ep[i].learnt);
  lr_models_free(&p->models);
}

uint64_t lr_pool_serving_api(const lr_pool *p, int api) {
  return api >= 0 && api < LR_API__COUNT ? p->by_api[api] : 0;
}

uint64_t lr_pool_serving(const lr_pool *p, const char *model, size_t len) {
  if (!model) return p->n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << p->n) - 1);
  return lr_models_serving(&p->models, p->n, lr_models_find(&p->models, model, len));
}
