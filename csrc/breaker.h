/* Per-endpoint circuit breaker: closed -> open -> half-open -> closed.
 * Sans-I/O: every call takes `now` (monotonic seconds). */
#ifndef LR_BREAKER_H
#define LR_BREAKER_H

typedef struct lr_breaker_cfg {
  int failure_threshold;   /* consecutive failures that open it; >= 1 */
  double failure_rate;     /* open when failures/calls > this over the window ... */
  int min_calls;           /* ... and the window holds at least this many calls */
  double window_s;         /* length of the sliding window */
  double cooldown_s;       /* first open period */
  double max_cooldown_s;   /* cap for the doubling on failed probes */
  int half_open_probes;    /* live requests allowed while half-open; >= 1 */
} lr_breaker_cfg;

typedef enum { LR_BREAKER_CLOSED = 0, LR_BREAKER_OPEN = 1, LR_BREAKER_HALF_OPEN = 2 } lr_breaker_state;

const char *lr_breaker_state_name(lr_breaker_state s); /* "closed" "open" "half_open" */

#define LR_BREAKER_BUCKETS 10 /* the window is kept as this many time slices */

typedef struct lr_breaker {
  lr_breaker_state state;
  int consecutive_failures;
  int probes_in_flight;     /* half-open probes sent and not yet reported */
  double open_until;        /* OPEN: first moment a probe may go */
  double cooldown_s;        /* the current open period (doubles on a failed probe) */
  int times_opened;         /* how often it went to OPEN, for status */
  long slice_index[LR_BREAKER_BUCKETS]; /* which slice of time each bucket holds */
  int slice_calls[LR_BREAKER_BUCKETS];
  int slice_failures[LR_BREAKER_BUCKETS];
} lr_breaker;

void lr_breaker_init(lr_breaker *b, const lr_breaker_cfg *cfg);

/* May a request be sent now? Moves OPEN -> HALF_OPEN once the cool-down is
 * over; in HALF_OPEN answers yes only while a probe slot is free. Takes no slot. */
int lr_breaker_allows(lr_breaker *b, const lr_breaker_cfg *cfg, double now);

/* Earliest moment lr_breaker_allows could say yes (now when it does; for a
 * half-open breaker with every probe slot taken: +INFINITY, a slot frees on report). */
double lr_breaker_usable_at(const lr_breaker *b, double now);

/* A request is being sent. Returns 1 when it is a half-open probe (it took a
 * slot), else 0. Pass that value back to exactly one of the three reports. */
int lr_breaker_on_send(lr_breaker *b, const lr_breaker_cfg *cfg, double now);

/* Reports; each returns 1 when the state changed. Outcomes of non-probe
 * requests that come back while OPEN or HALF_OPEN (sent before it opened)
 * change nothing but the window: they must not re-open or double anything. */
int lr_breaker_on_success(lr_breaker *b, const lr_breaker_cfg *cfg, double now, int probe);
int lr_breaker_on_failure(lr_breaker *b, const lr_breaker_cfg *cfg, double now, int probe);
/* The attempt says nothing about health (429, 404, cancelled): frees a probe slot. */
void lr_breaker_on_neutral(lr_breaker *b, const lr_breaker_cfg *cfg, double now, int probe);

/* Another process opened it until `until` with a cool-down of cooldown_s
 * (<= 0: keep ours): adopt that, unless it is already over or ours ends
 * later. Returns 1 when the state changed. */
int lr_breaker_adopt_open(lr_breaker *b, double until, double cooldown_s, double now);
/* Another process opened it and that open period ended at `until` (<= now):
 * open with that end, so the next look makes it half-open. Returns 1 when
 * the state changed. */
int lr_breaker_adopt_expired(lr_breaker *b, double until, double cooldown_s);
/* Another process closed it (its probe succeeded). Returns 1 when the state changed. */
int lr_breaker_adopt_closed(lr_breaker *b, const lr_breaker_cfg *cfg);

/* Calls and failures in the window ending at now, for status. */
void lr_breaker_window(const lr_breaker *b, const lr_breaker_cfg *cfg, double now, int *calls, int *failures);

#endif
