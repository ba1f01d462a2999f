/* Learning a server's request rate from its 429s. See ratelearn.h. */
#include "ratelearn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_STEP_S 0.25 /* while probing, the pace doubles this often */
#define PACE_SHARE 1.0
#define LR_RL_CATCHUP 2.0 /* requests a late pace may make up for */   /* of the estimated rate: the smallest that fits, so the server allows it */

void lr_ratelearn_init(lr_ratelearn *l) { memset(l, 0, sizeof *l); }

void lr_ratelearn_free(lr_ratelearn *l) {
  free(l->times);
  l->times = NULL;
  l->n_times = l->cap_times = 0;
}

void lr_ratelearn_success(lr_ratelearn *l, double sent_at, double now) {
  l->recent[l->recent_head] = now;
  l->recent_head = (l->recent_head + 1) % LR_RL_RECENT;
  if (l->recent_n < LR_RL_RECENT) l->recent_n++;
  if (!l->active) return;
  if (sent_at < l->since) {
    /* sent before the pause: an answer still in flight at the first 429 was
     * part of the burst it measured */
    if (l->cuts == 1 && sent_at <= l->cut_at && sent_at > l->cut_at - 1.0) {
      l->burst += 1;
      l->burst_left += 1;
    }
    return;
  }
  if (l->n_times >= LR_RL_MAX_TIMES && l->bare) {
    /* a long run without a 429: only the last window tells the rate */
    int keep = LR_RL_MAX_TIMES / 2;
    memmove(l->times, l->times + (l->n_times - keep), (size_t)keep * sizeof *l->times);
    l->n_times = keep;
    l->since = -INFINITY; /* the bucket's level at the first one kept is unknown */
  }
  if (l->n_times >= LR_RL_MAX_TIMES) return;
  if (l->n_times == l->cap_times) {
    int cap = l->cap_times ? l->cap_times * 2 : 256;
    double *t = realloc(l->times, (size_t)cap * sizeof *t);
    if (!t) return;
    l->times = t;
    l->cap_times = cap;
  }
  l->times[l->n_times++] = now;
}

static int fits(const double *times, int n, double since, double burst, double pause_s, double rate) {
  double level = rate * pause_s < burst ? rate * pause_s : burst, last = since;
  for (int k = 0; k < n; k++) {
    double t = times[k] > last ? times[k] : last;
    level += rate * (t - last);
    if (level > burst) level = burst;
    last = t;
    if (level < 1 - 1e-9) return 0;
    level -= 1;
  }
  return 1;
}

double lr_ratelearn_estimate(const double *times, int n, double since, double burst, double pause_s) {
  double lo = 0.01, hi = 1e6;
  if (n <= 0 || !fits(times, n, since, burst, pause_s, hi)) return -1;
  if (fits(times, n, since, burst, pause_s, lo)) return lo;
  for (int k = 0; k < 80 && hi / lo > 1.0001; k++) {
    double mid = sqrt(lo * hi);
    if (fits(times, n, since, burst, pause_s, mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

/* The bucket's size at a first 429: what went through in the second before it
 * (the bucket is empty now); at least 1. */
static int recent_burst(const lr_ratelearn *l, double now) {
  int burst = lr_ratelearn_recent(l, now);
  return burst > 0 ? burst : 1;
}

static double clamp_rate(double r) { return r < LR_RL_MIN_RATE ? LR_RL_MIN_RATE : r > 1e6 ? 1e6 : r; }

/* The successes since the last bare 429 (at most the last window of them):
 * the smallest rate that fits, the bucket empty at that 429 or, when the
 * window starts later, full at its start; -1 when too few tell anything. */
static double bare_estimate(const lr_ratelearn *l, double now) {
  double start = l->since, pause = 0;
  int k = 0;
  if (now - LR_RL_BARE_WINDOW_S > start) {
    start = now - LR_RL_BARE_WINDOW_S;
    pause = INFINITY;
    while (k < l->n_times && l->times[k] < start) k++;
  }
  int n = l->n_times - k;
  if (n < 8 || n <= l->burst / 2) return -1;
  return lr_ratelearn_estimate(l->times + k, n, start, l->burst, pause);
}

int lr_ratelearn_recent(const lr_ratelearn *l, double now) {
  int n = 0;
  for (int k = 0; k < l->recent_n; k++)
    if (l->recent[k] > now - 1.0) n++;
  return n;
}

/* A bare pace from now on: the bucket is taken as empty, `rate` the pace. */
static void bare_from(lr_ratelearn *l, double now) {
  l->base = l->rate;
  l->grow_s = 0;
  l->grow_last = now;
  l->limited = 0;
  l->cut_at = now;
  l->since = now;
  l->pause_s = 0;
  l->n_times = 0;
  l->burst_left = 0;
  l->next_at = now + 1.0 / l->rate;
}

/* Starts learning from bare 429s with a bucket of `burst`: the pace starts at
 * burst per second (a guess: many buckets hold about a second). */
static void begin_bare(lr_ratelearn *l, double burst) {
  l->active = 1;
  l->bare = 1;
  l->burst = burst;
  l->rate = clamp_rate(burst);
}

void lr_ratelearn_prior(lr_ratelearn *l, double burst, double now) {
  if (l->active || burst < 1) return;
  begin_bare(l, burst);
  bare_from(l, now); /* cuts stays 0: answers in flight now do not add to a burst it did not measure */
}

void lr_ratelearn_cut_bare(lr_ratelearn *l, double now, double u) {
  if (!l->active) {
    begin_bare(l, recent_burst(l, now));
  } else {
    double cur = l->rate, est = bare_estimate(l, now);
    if (est > 0) {
      l->rate = clamp_rate((LR_RL_BARE_SHARE + LR_RL_BARE_SPREAD * u) * (est < cur ? est : cur));
      l->estimated = 1;
      l->borrowed = 0;
      l->lean = 0;
    } else {
      l->lean = l->lean < 8 ? l->lean + 1 : 8;
      l->rate = clamp_rate(pow(LR_RL_BARE_CUT, l->lean) * cur);
    }
  }
  l->cuts++;
  bare_from(l, now);
}

/* The bare pace as of now: it grows only while it holds requests back. */
static void bare_grow(lr_ratelearn *l, double now) {
  double dt = now - l->grow_last;
  if (dt > 0) {
    if (l->limited) l->grow_s += dt < 0.1 ? dt : 0.1;
    l->grow_last = now;
  }
  double r, g = l->grow_s;
  if (!l->estimated) r = l->base * exp2(g / LR_RL_BARE_START_S);
  else if (g < LR_RL_BARE_HOLD_S) r = l->base * (1 + LR_RL_BARE_HOLD_GAIN * g / LR_RL_BARE_HOLD_S);
  else r = l->base * (1 + LR_RL_BARE_HOLD_GAIN) * exp2((g - LR_RL_BARE_HOLD_S) / LR_RL_BARE_DOUBLE_S);
  l->rate = clamp_rate(r);
}

void lr_ratelearn_cut(lr_ratelearn *l, double now, double pause_s) {
  if (pause_s < 0) pause_s = 0;
  if (l->bare) { /* it learnt from bare 429s: the pause is the throttle's business */
    lr_ratelearn_cut_bare(l, now, 0.5);
    return;
  }
  if (!l->active) {
    l->active = 1;
    l->burst = recent_burst(l, now);
    l->rate = 2 * l->burst / (pause_s > 0.1 ? pause_s : 0.1);
  } else {
    double est = l->n_times > l->burst
                     ? lr_ratelearn_estimate(l->times, l->n_times, l->since, l->burst, l->pause_s)
                     : -1;
    if (est > 0) {
      l->rate = PACE_SHARE * est;
      l->estimated = 1;
      l->borrowed = 0;
    } else if (l->n_times > 0 && l->n_times < l->burst) {
      /* the refilled bucket held less than measured (one more answer slipped
       * into the measuring second): the burst was wrong, not the pace */
      l->burst = l->n_times;
    } else {
      l->rate = l->rate / 2 > 0.1 ? l->rate / 2 : 0.1;
    }
  }
  l->pause_s = pause_s;
  l->cut_at = now;
  l->cuts++;
  l->since = now + pause_s;
  l->n_times = 0;
  l->burst_left = (int)l->burst;
  l->next_at = l->since;
  l->step_at = l->since + PROBE_STEP_S;
}

double lr_ratelearn_ready_at(lr_ratelearn *l, double now) {
  if (!l->active || l->rate <= 0) return now;
  if (l->bare) {
    bare_grow(l, now);
    double at = l->next_at > now ? l->next_at : now;
    l->limited = at > now;
    return at;
  }
  if (!l->estimated && !l->hold && now >= l->step_at) { /* probing: go faster until the server objects */
    l->rate *= 2;
    l->step_at = now + PROBE_STEP_S;
  }
  if (l->burst_left > 0) return now > l->since ? now : l->since;
  return l->next_at > now ? l->next_at : now;
}

void lr_ratelearn_sent(lr_ratelearn *l, double now) {
  if (!l->active || l->rate <= 0) return;
  if (l->burst_left > 0) {
    if (--l->burst_left == 0) l->next_at = now + 1.0 / l->rate; /* the bucket is empty now */
  } else {
    /* a send that comes late (timers wake in whole milliseconds, the loop is
     * busy) may be made up for, by at most a little of the server's bucket:
     * otherwise every late wake-up is capacity lost for good */
    double credit = l->burst / 4 < LR_RL_CATCHUP ? l->burst / 4 : LR_RL_CATCHUP;
    double floor = now - credit / l->rate;
    l->next_at = (l->next_at > floor ? l->next_at : floor) + 1.0 / l->rate;
  }
}

int lr_ratelearn_probing(const lr_ratelearn *l) { return l->active && !l->estimated; }

void lr_ratelearn_hold(lr_ratelearn *l, int hold, double now) {
  if (l->hold && !hold && l->step_at < now + PROBE_STEP_S) l->step_at = now + PROBE_STEP_S;
  l->hold = hold;
}

void lr_ratelearn_adopt(lr_ratelearn *l, double rate) {
  if (!lr_ratelearn_probing(l) || rate <= 0) return;
  if (rate > l->rate) l->rate = rate;
  l->base = l->rate; /* bare: grows from there, a prior and not a cap */
  l->grow_s = 0;
  l->estimated = 1;
  l->borrowed = 1;
  l->hold = 0;
}
