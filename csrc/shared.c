/* See shared.h. */
#include "shared.h"

#include <math.h>

/* A refused attempt looks again this soon when only another process's
 * release (which this one cannot see) frees the endpoint. */
#define RECHECK_S 0.01

int lr_shared_import(lr_pool *p, int i, const lr_shared_view *v, double now) {
  lr_endpoint *e = &p->ep[i];
  lr_breaker *b = &e->breaker;
  if (v->throttled_until > e->throttled_until) e->throttled_until = v->throttled_until;
  if (v->proven) e->reachable = 1;
  if (v->open_until > now) return lr_breaker_adopt_open(b, v->open_until, v->cooldown_s, now);
  if (b->state != LR_BREAKER_CLOSED) {
    /* no process holds it open and the run of failures is broken: a probe
     * elsewhere succeeded */
    if (v->open_until <= 0 && v->fails <= 0) return lr_breaker_adopt_closed(b, &p->breaker_cfg);
    return 0;
  }
  b->consecutive_failures = (int)v->fails;
  if (v->fails < p->breaker_cfg.failure_threshold) return 0;
  /* another process opened it and its cool-down is over (nobody has probed
   * yet): half-open, not a fresh cool-down */
  if (v->open_until > 0) return lr_breaker_adopt_expired(b, v->open_until, v->cooldown_s);
  return lr_breaker_adopt_open(b, now + b->cooldown_s, b->cooldown_s, now);
}

int lr_shared_admit(const lr_pool *p, int i, const lr_shared_view *v, int probe, double now, double *retry_at) {
  const lr_endpoint *e = &p->ep[i];
  const lr_breaker_cfg *cfg = &p->breaker_cfg;
  double at = now;
  if (v->open_until > now) {
    at = v->open_until;
  } else if (probe) {
    int probes = cfg->half_open_probes > 1 ? cfg->half_open_probes : 1;
    if (v->in_flight > probes) at = now + RECHECK_S;
  } else if (v->fails > 0 && v->fails + v->in_flight > cfg->failure_threshold) {
    at = now + RECHECK_S;
  }
  /* until some process had an answer from it: a connection made is not
   * enough, an endpoint that answers 500 at once would take a whole burst */
  if (!v->proven && v->in_flight > LR_WARMUP_IN_FLIGHT) at = fmax(at, now + RECHECK_S);
  if (e->max_concurrency && v->in_flight > e->max_concurrency) at = fmax(at, now + RECHECK_S);
  if (v->throttled_until > now) at = fmax(at, v->throttled_until);
  if (retry_at) *retry_at = at;
  return at <= now;
}

void lr_shared_export(const lr_pool *p, int i, double now, lr_shared_view *out) {
  const lr_endpoint *e = &p->ep[i];
  const lr_breaker *b = &e->breaker;
  out->fails = b->consecutive_failures;
  out->open_until = b->state == LR_BREAKER_OPEN && b->open_until > now ? b->open_until : 0;
  out->cooldown_s = b->cooldown_s;
  out->throttled_until = e->throttled_until > now ? e->throttled_until : 0;
  out->in_flight = e->in_flight;
  out->proven = e->reachable;
}

int lr_shared_bucket(double rate, double cap, double t0, double used_after, double need, double now, double *excess,
                     double *retry_at) {
  double credit = rate * (now - t0) + cap;
  double before = used_after - need;
  double over = credit - before - cap;
  if (over < 0 || !(rate > 0)) over = 0;
  double used = used_after + over;
  *excess = over;
  *retry_at = now;
  if (used <= credit || !(rate > 0)) return 1;
  *retry_at = now + (used - credit) / rate;
  return 0;
}
