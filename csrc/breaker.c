/* Circuit breaker. In HALF_OPEN, open_until keeps its meaning "first moment
 * a probe may go": +INFINITY while every probe slot is taken, so that
 * lr_breaker_usable_at can answer without the configuration. */
#include "breaker.h"

#include <limits.h>
#include <math.h>

#define NO_SLICE LONG_MIN
/* Slice indexes are clamped inside +-this, far from overflow in k - BUCKETS. */
#if LONG_MAX > 4000000000000000L
#define SLICE_LIMIT 1000000000000000L
#else
#define SLICE_LIMIT 1000000000L
#endif

const char *lr_breaker_state_name(lr_breaker_state s) {
  switch (s) {
  case LR_BREAKER_CLOSED: return "closed";
  case LR_BREAKER_OPEN: return "open";
  case LR_BREAKER_HALF_OPEN: return "half_open";
  }
  return "unknown";
}

static void window_clear(lr_breaker *b) {
  for (int i = 0; i < LR_BREAKER_BUCKETS; i++) {
    b->slice_index[i] = NO_SLICE;
    b->slice_calls[i] = 0;
    b->slice_failures[i] = 0;
  }
}

/* floor(now / slice); NO_SLICE when the window is off (window_s <= 0). */
static long slice_of(const lr_breaker_cfg *cfg, double now) {
  double slice = cfg->window_s / LR_BREAKER_BUCKETS;
  if (!(slice > 0) || now != now) return NO_SLICE;
  double k = floor(now / slice);
  if (k > (double)SLICE_LIMIT) return SLICE_LIMIT;
  if (k < -(double)SLICE_LIMIT) return -SLICE_LIMIT;
  return (long)k;
}

static void window_record(lr_breaker *b, const lr_breaker_cfg *cfg, double now, int failed) {
  long k = slice_of(cfg, now);
  if (k == NO_SLICE) return;
  int i = (int)(((k % LR_BREAKER_BUCKETS) + LR_BREAKER_BUCKETS) % LR_BREAKER_BUCKETS);
  if (b->slice_index[i] != k) { /* recycle a stale slice */
    b->slice_index[i] = k;
    b->slice_calls[i] = 0;
    b->slice_failures[i] = 0;
  }
  b->slice_calls[i]++;
  b->slice_failures[i] += failed;
}

void lr_breaker_window(const lr_breaker *b, const lr_breaker_cfg *cfg, double now, int *calls,
                       int *failures) {
  long k = slice_of(cfg, now);
  *calls = *failures = 0;
  if (k == NO_SLICE) return;
  for (int i = 0; i < LR_BREAKER_BUCKETS; i++) {
    long s = b->slice_index[i];
    if (s != NO_SLICE && s <= k && s > k - LR_BREAKER_BUCKETS) {
      *calls += b->slice_calls[i];
      *failures += b->slice_failures[i];
    }
  }
}

static int max_probes(const lr_breaker_cfg *cfg) {
  return cfg->half_open_probes > 1 ? cfg->half_open_probes : 1;
}

/* After a probe slot is taken or freed: is another probe allowed now? */
static void probes_changed(lr_breaker *b, const lr_breaker_cfg *cfg, double now) {
  b->open_until = b->probes_in_flight >= max_probes(cfg) ? INFINITY : now;
}

void lr_breaker_init(lr_breaker *b, const lr_breaker_cfg *cfg) {
  b->state = LR_BREAKER_CLOSED;
  b->consecutive_failures = 0;
  b->probes_in_flight = 0;
  b->open_until = 0;
  b->cooldown_s = cfg->cooldown_s;
  b->times_opened = 0;
  window_clear(b);
}

static void open_now(lr_breaker *b, double now) {
  b->state = LR_BREAKER_OPEN;
  b->open_until = now + b->cooldown_s;
  b->probes_in_flight = 0;
  b->times_opened++;
}

/* The lazy OPEN -> HALF_OPEN move once the cool-down is over. */
static void maybe_half_open(lr_breaker *b, double now) {
  if (b->state == LR_BREAKER_OPEN && now >= b->open_until) {
    b->state = LR_BREAKER_HALF_OPEN;
    b->probes_in_flight = 0;
    b->open_until = now;
  }
}

int lr_breaker_allows(lr_breaker *b, const lr_breaker_cfg *cfg, double now) {
  maybe_half_open(b, now);
  switch (b->state) {
  case LR_BREAKER_CLOSED: return 1;
  case LR_BREAKER_HALF_OPEN: return b->probes_in_flight < max_probes(cfg);
  default: return 0;
  }
}

double lr_breaker_usable_at(const lr_breaker *b, double now) {
  if (b->state == LR_BREAKER_CLOSED) return now;
  if (b->state == LR_BREAKER_HALF_OPEN) return isinf(b->open_until) ? INFINITY : now;
  return b->open_until > now ? b->open_until : now;
}

int lr_breaker_on_send(lr_breaker *b, const lr_breaker_cfg *cfg, double now) {
  maybe_half_open(b, now);
  if (b->state != LR_BREAKER_HALF_OPEN || b->probes_in_flight >= max_probes(cfg)) return 0;
  b->probes_in_flight++;
  probes_changed(b, cfg, now);
  return 1;
}

/* A probe's report only counts while the half-open period it belongs to lasts. */
/* Closed again: a probe succeeded, or a sibling worker says so. */
static void close_breaker(lr_breaker *b, const lr_breaker_cfg *cfg) {
  b->state = LR_BREAKER_CLOSED;
  b->probes_in_flight = 0;
  b->cooldown_s = cfg->cooldown_s;
  b->consecutive_failures = 0;
  window_clear(b);
}

static int is_live_probe(const lr_breaker *b, int probe) {
  return probe && b->state == LR_BREAKER_HALF_OPEN && b->probes_in_flight > 0;
}

int lr_breaker_on_success(lr_breaker *b, const lr_breaker_cfg *cfg, double now, int probe) {
  window_record(b, cfg, now, 0);
  if (is_live_probe(b, probe)) {
    close_breaker(b, cfg);
    return 1;
  }
  if (b->state == LR_BREAKER_CLOSED) b->consecutive_failures = 0;
  return 0;
}

int lr_breaker_on_failure(lr_breaker *b, const lr_breaker_cfg *cfg, double now, int probe) {
  window_record(b, cfg, now, 1);
  if (is_live_probe(b, probe)) {
    double next = 2 * b->cooldown_s;
    if (next > cfg->max_cooldown_s) next = cfg->max_cooldown_s;
    if (next > b->cooldown_s) b->cooldown_s = next; /* a max below the start never shrinks it */
    open_now(b, now);
    return 1;
  }
  if (b->state != LR_BREAKER_CLOSED) return 0;
  b->consecutive_failures++;
  int calls, failures;
  lr_breaker_window(b, cfg, now, &calls, &failures);
  if (b->consecutive_failures >= cfg->failure_threshold ||
      (calls > 0 && calls >= cfg->min_calls && (double)failures / calls > cfg->failure_rate)) {
    open_now(b, now);
    return 1;
  }
  return 0;
}

void lr_breaker_on_neutral(lr_breaker *b, const lr_breaker_cfg *cfg, double now, int probe) {
  if (!is_live_probe(b, probe)) return;
  b->probes_in_flight--;
  probes_changed(b, cfg, now);
}

int lr_breaker_adopt_open(lr_breaker *b, double until, double cooldown_s, double now) {
  if (until <= now) return 0;
  if (cooldown_s > 0) b->cooldown_s = cooldown_s;
  if (b->state == LR_BREAKER_OPEN) {
    if (until > b->open_until) b->open_until = until;
    return 0;
  }
  b->state = LR_BREAKER_OPEN;
  b->open_until = until;
  b->probes_in_flight = 0;
  b->times_opened++;
  return 1;
}

int lr_breaker_adopt_expired(lr_breaker *b, double until, double cooldown_s) {
  if (b->state != LR_BREAKER_CLOSED) return 0;
  if (cooldown_s > 0) b->cooldown_s = cooldown_s;
  b->state = LR_BREAKER_OPEN;
  b->open_until = until;
  b->probes_in_flight = 0;
  b->times_opened++;
  return 1;
}

int lr_breaker_adopt_closed(lr_breaker *b, const lr_breaker_cfg *cfg) {
  if (b->state == LR_BREAKER_CLOSED) return 0;
  close_breaker(b, cfg);
  return 1;
}
