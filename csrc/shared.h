/* State shared between processes (nginx workers sharing a lua_shared_dict,
 * or machines sharing a store): what must agree across them is each
 * endpoint's consecutive failures, breaker open period, throttle and
 * attempts in flight. The executor reads and writes the store (atomically
 * where it must); these functions decide what the numbers mean, so no rule
 * is written twice. Sans-I/O: every call takes `now`. */
#ifndef LR_SHARED_H
#define LR_SHARED_H

#include "pool.h"

typedef struct lr_shared_view {
  double fails;           /* consecutive failures, across processes */
  double open_until;      /* the breaker is open until then; 0 when no process holds it open */
  double cooldown_s;      /* the open period behind open_until; 0 unknown */
  double throttled_until; /* no request before then (a server asked); 0 none */
  double in_flight;       /* attempts in flight, across processes (when admitting: this one included) */
  int proven;             /* some process had an answer from it */
} lr_shared_view;

/* Brings endpoint i's local state in line with the shared one: a later
 * throttle, a breaker another process opened (or opens now that the shared
 * failures reach the threshold), one another process closed. Returns 1 when
 * the breaker's state changed. */
int lr_shared_import(lr_pool *p, int i, const lr_shared_view *v, double now);

/* May this process send the attempt it chose for endpoint i (probe: it is a
 * half-open probe), given the shared numbers with it counted in v->in_flight?
 * Across all processes: no attempt while another holds the breaker open;
 * failures plus attempts in flight never pass failure_threshold once an
 * attempt failed (so a dead endpoint costs at most that many attempts per
 * cool-down, however many processes race); at most half_open_probes probes;
 * LR_WARMUP_IN_FLIGHT attempts until some process had an answer from it
 * (v->proven; a connection made is not enough);
 * max_concurrency in flight. 1: send; 0: don't, and *retry_at is when to
 * look again. */
int lr_shared_admit(const lr_pool *p, int i, const lr_shared_view *v, int probe, double now, double *retry_at);

/* A token bucket (configured rpm/tpm) kept in a store that offers only an
 * atomic add: `used` counts the units taken since t0, and this take of
 * `need` is already in used_after. The bucket holds rate x (now - t0) + cap
 * - used, never more than cap: *excess is the idle credit above cap, which
 * the executor adds to `used` (so it is lost, as in any bucket). Returns 1
 * when the take fits; else 0, the executor gives `need` back, and *retry_at
 * is when it would fit. Races between processes can only make it stricter. */
int lr_shared_bucket(double rate, double cap, double t0, double used_after, double need, double now, double *excess,
                     double *retry_at);

/* What this process knows of endpoint i, for the store: open_until and
 * cooldown_s when its breaker is open, throttled_until. */
void lr_shared_export(const lr_pool *p, int i, double now, lr_shared_view *out);

#endif
