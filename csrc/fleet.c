/* See fleet.h. */
#include "fleet.h"

#include <math.h>

double lr_fleet_blocked_until(lr_endpoint *e, double tokens, double now) {
  if (!e->lease_on) return 0;
  int have = e->lease_left >= 1 && now < e->lease_until;
  if (have && e->tk_lease_on && !(e->tk_left >= tokens && now < e->tk_until)) {
    have = 0;
    if (tokens > e->tk_need) e->tk_need = tokens; /* the next token lease holds at least this */
  }
  if (!have) {
    e->lease_wanted_at = now;
    return e->lease_retry_at > now ? e->lease_retry_at : now + LR_LEASE_POLL_S;
  }
  return e->lease_from > now ? e->lease_from : 0;
}

void lr_fleet_take(lr_endpoint *e, double tokens, int sign) {
  if (!e->lease_on) return;
  e->lease_left -= sign;
  if (e->tk_lease_on) e->tk_left -= sign * tokens;
}

void lr_fleet_view_of(const lr_pool *p, int i, double now, lr_fleet_view *v) {
  const lr_endpoint *e = &p->ep[i];
  v->on = e->lease_on;
  v->answered = e->answered;
  v->rq_left = e->lease_left > 0 ? e->lease_left : 0;
  v->tk_left = e->tk_lease_on && e->tk_left > 0 ? e->tk_left : 0;
  v->from = e->lease_from;
  v->until = e->lease_until;
  v->tk_until = e->tk_until;
  v->retry_at = e->lease_retry_at;
  v->wanted_at = e->lease_wanted_at;
  v->rate = 0;
  v->cap = 0;
  v->rate_from = "";
  /* the strictest of what is known: the client's own limit, the server's published one, a learnt pace */
  const lr_bucket *rq = &e->limiter.requests;
  if (rq->rate_per_s > 0) {
    v->rate = rq->rate_per_s;
    v->cap = rq->capacity;
    v->rate_from = "config";
  }
  if (e->slot_interval > 0 && e->pub_cap > 0 && (v->rate <= 0 || 1.0 / e->slot_interval < v->rate)) {
    v->rate = 1.0 / e->slot_interval;
    v->cap = e->pub_cap;
    v->rate_from = "published";
  } else if (v->rate <= 0 && e->learnt.active && e->learnt.estimated && e->learnt.rate > 0) {
    v->rate = e->learnt.rate;
    v->cap = e->learnt.burst >= 1 ? e->learnt.burst : 1;
    v->rate_from = "learnt";
  }
  v->tk_rate = e->limiter.tokens.rate_per_s;
  v->tk_cap = e->limiter.tokens.capacity;
  v->tk_need = e->tk_need;
  v->pub_remaining = e->pub_remaining;
  v->pub_at = e->pub_at;
  (void)now;
}

void lr_fleet_grant(lr_pool *p, int i, double n, double from, double until, double tk, double tk_until,
                    double retry_at) {
  lr_endpoint *e = &p->ep[i];
  e->lease_on = 1;
  e->lease_left = n;
  e->lease_from = from;
  e->lease_until = until;
  e->lease_retry_at = retry_at;
  if (n >= 1) e->lease_wanted_at = 0; /* a fresh lease: wanted again when a request finds it spent */
  e->tk_lease_on = tk >= 0;
  if (tk > 0) e->tk_need = 0;
  e->tk_left = tk >= 0 ? tk : 0;
  e->tk_until = tk_until;
}

void lr_fleet_off(lr_pool *p, int i) {
  lr_endpoint *e = &p->ep[i];
  e->lease_on = e->tk_lease_on = 0;
  e->lease_left = e->tk_left = 0;
  e->lease_from = e->lease_until = e->lease_retry_at = e->lease_wanted_at = e->tk_until = 0;
}

static double open_until(const lr_endpoint *e) {
  return e->breaker.state == LR_BREAKER_OPEN ? e->breaker.open_until : 0;
}

void lr_fleet_told(lr_pool *p, int i) {
  lr_endpoint *e = &p->ep[i];
  e->told_thr = e->throttled_until;
  e->told_open = open_until(e);
  e->told_state = (int)e->breaker.state;
}

/* Something the fleet has not been told: a pause (a new one, or one grown
 * by LR_FLEET_TELL_S), the breaker changing state or its open period growing. */
static int untold(const lr_endpoint *e, double now) {
  double thr = e->throttled_until, open = open_until(e);
  if (thr > now && (e->told_thr <= now || thr > e->told_thr + LR_FLEET_TELL_S)) return 1;
  if ((int)e->breaker.state != e->told_state) return 1;
  return open > now && open > e->told_open + LR_FLEET_TELL_S;
}

double lr_fleet_due(const lr_pool *p, double now) {
  double due = INFINITY;
  for (int i = 0; i < p->n; i++) {
    const lr_endpoint *e = &p->ep[i];
    if (!e->lease_on) continue;
    if (untold(e, now)) return now;
    if (e->lease_wanted_at <= 0) continue;
    double at = e->lease_retry_at > now ? e->lease_retry_at : now;
    if (at < due) due = at;
  }
  return due;
}
