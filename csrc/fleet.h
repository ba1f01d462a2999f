/* A fleet: processes (hosts) sharing one pool's budgets through a store
 * such as Redis. Each process sends to an endpoint only from *leases*: a
 * few attempts (or tokens) the fleet's shared bucket granted it, usable from
 * a moment on (the bucket frees them then) until an expiry (the unused ones
 * go back). The executor asks the store for leases when a request found
 * none (lr_lease_wanted) and grants them here; with the store down it grants
 * them from a local bucket or turns leasing off. This file decides what a
 * lease allows and what this process knows of an endpoint's rate, which it
 * tells the fleet. Sans-I/O: every call takes `now`. */
#ifndef LR_FLEET_H
#define LR_FLEET_H

#include "pool.h"

/* A request that found no lease looks again this soon when the executor
 * has not said when (it asks the store in between). */
#define LR_LEASE_POLL_S 0.005

/* Is endpoint i held back by its leases for a request of `tokens`? Returns
 * 0 when it may go; else the moment to look again (and marks it wanted). */
double lr_fleet_blocked_until(lr_endpoint *e, double tokens, double now);
/* An attempt of `tokens` goes (sign 1) or was not sent after all (-1). */
void lr_fleet_take(lr_endpoint *e, double tokens, int sign);

/* What a fleet needs from this process for endpoint i. */
typedef struct lr_fleet_view {
  int on;                       /* leasing is on */
  int answered;                 /* an answer (any status) came back from the endpoint */
  double rq_left, tk_left;      /* attempts / tokens the current leases still allow */
  double from, until;           /* the request lease: usable from, expires at */
  double tk_until;              /* the token lease expires at */
  double retry_at;              /* no lease: when to ask again (0: now) */
  double wanted_at;             /* a request last found no lease then (0: never) */
  double rate, cap;             /* requests/s and bucket this process knows (0: unknown) */
  const char *rate_from;        /* "config" "published" "learnt" or "" */
  double tk_rate, tk_cap;       /* configured tpm as a bucket (0: none) */
  double tk_need;               /* the most tokens a request found missing since the last grant */
  double pub_remaining;         /* the last x-ratelimit-remaining-requests (< 0: none) */
  double pub_at;                /* when it came */
} lr_fleet_view;

void lr_fleet_view_of(const lr_pool *p, int i, double now, lr_fleet_view *v);
/* The executor told the fleet endpoint i's throttle and breaker as they are
 * now: a new pause, a longer one, or the breaker changing state makes an
 * exchange due at once (lr_fleet_due). */
#define LR_FLEET_TELL_S 0.05 /* a pause or open period growing by less waits for the next exchange */
void lr_fleet_told(lr_pool *p, int i);

/* Grants endpoint i a request lease of n attempts usable from `from` until
 * `until`, and a token lease of tk tokens until tk_until (tk < 0: leave the
 * token lease off); with n == 0, retry_at says when to ask again. Turns
 * leasing on. */
void lr_fleet_grant(lr_pool *p, int i, double n, double from, double until, double tk, double tk_until,
                    double retry_at);
/* Leasing off: endpoint i goes by this process's own state again. */
void lr_fleet_off(lr_pool *p, int i);

/* Is an exchange with the fleet due: a request found some endpoint with
 * leasing on without a lease since its last grant, or a server asked an
 * endpoint for a pause or its breaker opened since the fleet was told.
 * Returns the earliest moment one is (a lease's retry time, or now;
 * INFINITY: none is). */
double lr_fleet_due(const lr_pool *p, double now);

#endif
