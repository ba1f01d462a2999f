/* Unit tests of csrc/ratelearn.c: learning a request rate from 429s alone. */
#include <math.h>
#include <stdlib.h>

#include "ctest.h"
#include "ratelearn.h"

/* Sends at `rate` into a token bucket (refill R, size B, full at t0) until
 * it refuses; returns the success times and the refusal time. */
static int bucket_run(double R, double B, double t0, double rate, double *times, int max, double *refused_at) {
  double level = B, last = t0, t = t0;
  int n = 0;
  while (n < max) {
    level += R * (t - last);
    if (level > B) level = B;
    last = t;
    if (level < 1) break;
    level -= 1;
    times[n++] = t;
    t += 1.0 / rate;
  }
  *refused_at = t;
  return n;
}

TEST(estimate_recovers_a_token_buckets_rate) {
  double times[4096], refused;
  int n = bucket_run(100, 25, 10, 160, times, 4096, &refused);
  CHECK(n > 25);
  double est = lr_ratelearn_estimate(times, n, 10, 25, 1.0);
  CHECK(est > 90 && est <= 100.01); /* the smallest rate that fits: never above the truth */
  n = bucket_run(7, 3, 0, 12, times, 4096, &refused);
  est = lr_ratelearn_estimate(times, n, 0, 3, 1.0);
  CHECK(est > 6 && est <= 7.01);
  CHECK(lr_ratelearn_estimate(times, 0, 0, 3, 1.0) < 0);
  /* successes faster than any bucket of that size allows */
  double burst[5] = {0, 0, 0, 0, 0};
  CHECK(lr_ratelearn_estimate(burst, 5, 0, 2, 0) < 0);
}

TEST(inactive_learner_never_holds_a_request) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 10; k++) lr_ratelearn_success(&l, k * 0.01, k * 0.01);
  CHECK(lr_ratelearn_ready_at(&l, 1) == 1);
  lr_ratelearn_sent(&l, 1);
  CHECK(lr_ratelearn_ready_at(&l, 1) == 1);
  lr_ratelearn_free(&l);
}

TEST(first_429_measures_the_burst_then_probes) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 25; k++) lr_ratelearn_success(&l, 5.0 + k * 0.0004, 5.0 + k * 0.0004); /* a burst of 25 */
  lr_ratelearn_success(&l, 3.0, 3.0);                                        /* too old to count */
  lr_ratelearn_cut(&l, 5.01, 1.0);
  CHECK(l.active && !l.estimated);
  CHECK_NEAR(l.burst, 25, 1e-9);
  CHECK_NEAR(l.rate, 50, 1e-9);
  CHECK_NEAR(lr_ratelearn_ready_at(&l, 5.5), 6.01, 1e-9); /* nothing before the pause ends */
  for (int k = 0; k < 25; k++) { /* the refilled bucket goes at once */
    CHECK_NEAR(lr_ratelearn_ready_at(&l, 6.01), 6.01, 1e-9);
    lr_ratelearn_sent(&l, 6.01);
  }
  CHECK_NEAR(lr_ratelearn_ready_at(&l, 6.01), 6.03, 1e-9); /* then one per 1/50 s */
  CHECK(lr_ratelearn_ready_at(&l, 6.27) == 6.27 && l.rate == 100); /* a quarter second on: twice as fast */
  lr_ratelearn_free(&l);
}

TEST(next_429_sets_the_pace_from_the_model) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 25; k++) lr_ratelearn_success(&l, k * 0.0004, k * 0.0004);
  lr_ratelearn_cut(&l, 0.01, 1.0); /* pause until 1.01 */
  double times[4096], refused;
  int n = bucket_run(100, 25, 1.01, 150, times, 4096, &refused);
  for (int k = 0; k < n; k++) lr_ratelearn_success(&l, times[k], times[k]);
  lr_ratelearn_cut(&l, refused, 1.0);
  CHECK(l.estimated);
  CHECK(l.rate > 90 && l.rate <= 100.01);
  lr_ratelearn_free(&l);
}

TEST(a_429_with_too_little_to_learn_from_halves_the_pace) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 10; k++) lr_ratelearn_success(&l, k * 0.001, k * 0.001);
  lr_ratelearn_cut(&l, 0.02, 1.0);
  double r = l.rate;
  lr_ratelearn_cut(&l, 1.03, 1.0); /* not one success after the pause */
  CHECK(!l.estimated);
  CHECK_NEAR(l.rate, r / 2, 1e-9);
  for (int k = 0; k < 10; k++) lr_ratelearn_success(&l, 2.03, 2.03); /* the burst, then the first paced one fails */
  lr_ratelearn_cut(&l, 2.04, 1.0);
  CHECK_NEAR(l.rate, r / 4, 1e-9);
  CHECK_NEAR(l.burst, 10, 1e-9);
  lr_ratelearn_free(&l);
}

TEST(a_429_inside_the_burst_shrinks_the_burst_not_the_pace) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 26; k++) lr_ratelearn_success(&l, k * 0.0004, k * 0.0004); /* 25 + one refilled */
  lr_ratelearn_cut(&l, 0.01, 1.0);
  CHECK_NEAR(l.burst, 26, 1e-9);
  double r = l.rate;
  for (int k = 0; k < 25; k++) lr_ratelearn_success(&l, 1.01, 1.01); /* the 26th of the burst fails */
  lr_ratelearn_cut(&l, 1.012, 1.0);
  CHECK_NEAR(l.burst, 25, 1e-9);
  CHECK_NEAR(l.rate, r, 1e-9);
  CHECK(l.burst_left == 25);
  lr_ratelearn_free(&l);
}

/* A learner that has just been cut at t=0.01 after a burst of 25, pause 1 s. */
static void cut_after_burst(lr_ratelearn *l) {
  lr_ratelearn_init(l);
  for (int k = 0; k < 25; k++) lr_ratelearn_success(l, k * 0.0004, k * 0.0004);
  lr_ratelearn_cut(l, 0.01, 1.0);
}

TEST(a_held_probe_keeps_its_pace_and_resumes_with_a_fresh_step) {
  lr_ratelearn l;
  cut_after_burst(&l);
  CHECK(lr_ratelearn_probing(&l));
  lr_ratelearn_hold(&l, 1, 1.01);
  lr_ratelearn_ready_at(&l, 3.0); /* long past the step: a held probe does not speed up */
  CHECK_NEAR(l.rate, 50, 1e-9);
  lr_ratelearn_hold(&l, 0, 3.0);
  lr_ratelearn_ready_at(&l, 3.2);
  CHECK_NEAR(l.rate, 50, 1e-9); /* resumed: the first doubling is a whole step away */
  lr_ratelearn_ready_at(&l, 3.51);
  CHECK_NEAR(l.rate, 100, 1e-9);
  lr_ratelearn_free(&l);
}

TEST(a_siblings_estimate_ends_the_probe_until_an_own_429) {
  lr_ratelearn l;
  cut_after_burst(&l);
  lr_ratelearn_hold(&l, 1, 1.01);
  lr_ratelearn_adopt(&l, 97);
  CHECK(l.estimated && l.borrowed && !l.hold && !lr_ratelearn_probing(&l));
  CHECK_NEAR(l.rate, 97, 1e-9);
  lr_ratelearn_adopt(&l, 200); /* only a probing learner adopts */
  CHECK_NEAR(l.rate, 97, 1e-9);
  lr_ratelearn_ready_at(&l, 9.0);
  CHECK_NEAR(l.rate, 97, 1e-9); /* an estimate does not probe */
  /* this endpoint's own limit is lower: its 429 re-estimates from its own successes */
  double times[4096], refused;
  int n = bucket_run(60, 25, 1.01, 97, times, 4096, &refused);
  for (int k = 0; k < n; k++) lr_ratelearn_success(&l, times[k], times[k]);
  lr_ratelearn_cut(&l, refused, 1.0);
  CHECK(l.estimated && !l.borrowed);
  CHECK(l.rate > 54 && l.rate <= 60.01);
  /* a lower sibling rate never lowers a learner below its own probe */
  lr_ratelearn l2;
  cut_after_burst(&l2);
  lr_ratelearn_adopt(&l2, 10);
  CHECK_NEAR(l2.rate, 50, 1e-9);
  lr_ratelearn_free(&l);
  lr_ratelearn_free(&l2);
}

TEST(a_late_send_makes_up_at_most_two_requests) {
  lr_ratelearn l;
  cut_after_burst(&l);
  lr_ratelearn_adopt(&l, 100);
  for (int k = 0; k < 25; k++) lr_ratelearn_sent(&l, 1.01); /* the refilled bucket */
  CHECK_NEAR(lr_ratelearn_ready_at(&l, 1.01), 1.02, 1e-9);
  /* the next send comes 0.5 s late: two requests may follow at once, then the pace */
  lr_ratelearn_sent(&l, 1.52);
  CHECK_NEAR(lr_ratelearn_ready_at(&l, 1.52), 1.52, 1e-9);
  lr_ratelearn_sent(&l, 1.52);
  CHECK_NEAR(lr_ratelearn_ready_at(&l, 1.52), 1.52, 1e-9);
  lr_ratelearn_sent(&l, 1.52);
  CHECK_NEAR(lr_ratelearn_ready_at(&l, 1.52), 1.53, 1e-9);
  lr_ratelearn_free(&l);
}

TEST(answers_in_flight_at_a_429_count_for_the_burst_not_the_rate) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 20; k++) lr_ratelearn_success(&l, k * 0.0004, k * 0.0004);
  lr_ratelearn_cut(&l, 0.01, 1.0);
  CHECK_NEAR(l.burst, 20, 1e-9);
  for (int k = 0; k < 5; k++) lr_ratelearn_success(&l, 0.009, 0.02); /* sent before the 429, answered after */
  CHECK_NEAR(l.burst, 25, 1e-9);
  CHECK(l.n_times == 0);
  /* after the pause, the rate comes only from attempts sent after it */
  double times[4096], refused;
  int n = bucket_run(100, 25, 1.01, 150, times, 4096, &refused);
  for (int k = 0; k < 30; k++) lr_ratelearn_success(&l, 0.5, 1.2); /* stragglers: ignored */
  for (int k = 0; k < n; k++) lr_ratelearn_success(&l, times[k], times[k]);
  CHECK(l.n_times == n);
  lr_ratelearn_cut(&l, refused, 1.0);
  CHECK(l.estimated && l.rate > 90 && l.rate <= 100.01);
  lr_ratelearn_success(&l, refused - 0.001, refused + 0.001); /* in flight at the second 429 */
  CHECK_NEAR(l.burst, 25, 1e-9);
  CHECK(l.n_times == 0);
  lr_ratelearn_free(&l);
}

/* ---- bare 429s: no pause, the pace follows the rate ------------------------ */

TEST(bare_first_429_paces_at_the_burst_per_second_then_doubles) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 25; k++) lr_ratelearn_success(&l, k * 0.0004, k * 0.0004);
  lr_ratelearn_cut_bare(&l, 0.01, 0.5);
  CHECK(l.active && l.bare && !l.estimated && lr_ratelearn_probing(&l));
  CHECK_NEAR(l.burst, 25, 1e-9);
  CHECK_NEAR(l.rate, 25, 1e-9);
  CHECK(l.burst_left == 0); /* the bucket is empty: no burst, no pause */
  CHECK_NEAR(lr_ratelearn_ready_at(&l, 0.01), 0.05, 1e-9);
  /* the pace grows only while it holds requests back: 0.25 s of that doubles it */
  double t = 0.05;
  for (int k = 0; k < 200 && t < 0.3; k++) {
    t = lr_ratelearn_ready_at(&l, t);
    lr_ratelearn_ready_at(&l, t);
    lr_ratelearn_sent(&l, t);
  }
  CHECK_NEAR(l.rate, 25 * exp2((t - 0.01) / LR_RL_BARE_START_S), 0.02 * l.rate);
  CHECK(t >= 0.3 && l.rate > 50);
  /* idle (nothing waits on the pace): it stays */
  double r = l.rate;
  lr_ratelearn_ready_at(&l, 30);
  lr_ratelearn_ready_at(&l, 60);
  CHECK_NEAR(l.rate, r, 1e-9);
  lr_ratelearn_free(&l);
}

TEST(bare_next_429_paces_just_under_the_rate_that_fits) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 25; k++) lr_ratelearn_success(&l, k * 0.0004, k * 0.0004);
  lr_ratelearn_cut_bare(&l, 0.01, 0.5);
  /* the bucket (100/s, 25) is empty at the 429; the client goes at 80/s for
   * 2 s (the bucket fills again), then at 150/s until the next 429 */
  double level = 0, last = 0.01, tt = 0.01, tms[4096];
  int ok = 0;
  while (ok < 4096) {
    tt += tt < 2.01 ? 1.0 / 80 : 1.0 / 150;
    level += 100 * (tt - last);
    if (level > 25) level = 25;
    last = tt;
    if (level < 1) break;
    level -= 1;
    lr_ratelearn_success(&l, tt, tt + 0.001);
    tms[ok++] = tt;
  }
  CHECK(ok > 8);
  l.rate = 150; /* the pace that earned the 429 (the test sent without asking the learner) */
  lr_ratelearn_cut_bare(&l, tt + 0.001, 0.0);
  CHECK(l.estimated && !l.borrowed && l.lean == 0);
  CHECK(l.rate > 0.95 * 90 && l.rate <= 0.95 * 100.01); /* u = 0: 0.95 of the smallest fit */
  /* the same successes, but a 429 earned at 60/s: the pace never goes above that */
  double fit = l.rate / 0.95;
  lr_ratelearn l2;
  lr_ratelearn_init(&l2);
  for (int k = 0; k < 25; k++) lr_ratelearn_success(&l2, k * 0.0004, k * 0.0004);
  lr_ratelearn_cut_bare(&l2, 0.01, 0.0);
  for (int k = 0; k < ok; k++) lr_ratelearn_success(&l2, tms[k], tms[k] + 0.001);
  l2.rate = 60;
  lr_ratelearn_cut_bare(&l2, tt + 0.001, 1.0);
  CHECK(l2.estimated && l2.rate <= 0.99 * 60 + 1e-9 && fit > 60);
  lr_ratelearn_free(&l2);
  lr_ratelearn_free(&l);
}

TEST(bare_429s_with_nothing_between_cut_harder_each_time) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 40; k++) lr_ratelearn_success(&l, k * 0.001, k * 0.001);
  lr_ratelearn_cut_bare(&l, 0.05, 0.5);
  double r = l.rate;
  lr_ratelearn_cut_bare(&l, 0.1, 0.5);
  CHECK_NEAR(l.rate, r * 0.85, 1e-9);
  lr_ratelearn_cut_bare(&l, 0.2, 0.5);
  CHECK_NEAR(l.rate, r * 0.85 * 0.85 * 0.85, 1e-9);
  for (int k = 0; k < 40; k++) lr_ratelearn_cut_bare(&l, 1 + k, 0.5);
  CHECK_NEAR(l.rate, LR_RL_MIN_RATE, 1e-12); /* a server that refuses everything: one try per 10 s */
  CHECK_NEAR(lr_ratelearn_ready_at(&l, 41), 50, 1e-9);
  lr_ratelearn_free(&l);
}

TEST(bare_sibling_prior_is_not_a_cap) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 25; k++) lr_ratelearn_success(&l, k * 0.0004, k * 0.0004);
  lr_ratelearn_cut_bare(&l, 0.01, 0.5);
  lr_ratelearn_adopt(&l, 80);
  CHECK(l.estimated && l.borrowed);
  CHECK_NEAR(l.rate, 80, 1e-9);
  /* kept busy without a 429 for 1.5 s + 1 s, the pace has doubled past the prior */
  double t = 0.01;
  while (t < 3.0) {
    t = lr_ratelearn_ready_at(&l, t);
    lr_ratelearn_ready_at(&l, t);
    lr_ratelearn_sent(&l, t);
  }
  CHECK(l.rate > 160);
  lr_ratelearn_free(&l);
}

/* A closed loop on simulated time: a learner kept busy (one request in flight,
 * 1 ms round trip) against a token bucket of 25 whose rate follows
 * rate_at(t); counts successes and 429s per second. */
static double sched_100_50_100(double t) { return t < 20 ? 100 : t < 30 ? 50 : 100; }

static void simulate(double (*rate_at)(double), double until, int *ok, int *refused) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  double level = 25, last = 0, now = 0, cut_at = -1;
  unsigned seed = 7;
  while (now < until) {
    double t = lr_ratelearn_ready_at(&l, now);
    if (t > now) {
      now = t;
      lr_ratelearn_ready_at(&l, now);
    }
    lr_ratelearn_sent(&l, now);
    level += rate_at(now) * (now - last);
    if (level > 25) level = 25;
    last = now;
    int sec = (int)now;
    double back = now + 0.001;
    if (level >= 1) {
      level -= 1;
      ok[sec]++;
      lr_ratelearn_success(&l, now, back);
    } else {
      refused[sec]++;
      if (now > cut_at) { /* one cut per 429 of an attempt sent after the last */
        seed = seed * 1103515245u + 12345u;
        lr_ratelearn_cut_bare(&l, back, (seed >> 16) / 65536.0);
        cut_at = back;
      }
    }
    now = back;
  }
  lr_ratelearn_free(&l);
}

static int sum(const int *a, int from, int to) {
  int s = 0;
  for (int k = from; k < to; k++) s += a[k];
  return s;
}

TEST(bare_closed_loop_holds_the_rate_and_follows_a_change) {
  int ok[41] = {0}, refused[41] = {0};
  simulate(sched_100_50_100, 40, ok, refused);
  /* 100/s: after the start, at least 0.95 of the rate, at most 1 % 429s */
  int o = sum(ok, 2, 20), r = sum(refused, 2, 20);
  CHECK(o >= 0.95 * 100 * 18);
  CHECK(r <= 0.01 * (o + r));
  /* down to 50/s at 20 s: followed within 2 s, few 429s */
  CHECK(sum(refused, 20, 22) <= 12);
  o = sum(ok, 22, 30), r = sum(refused, 22, 30);
  CHECK(o >= 0.93 * 50 * 8);
  CHECK(r <= 0.02 * (o + r));
  /* back up to 100/s at 30 s: found again within 4 s */
  o = sum(ok, 34, 40), r = sum(refused, 34, 40);
  CHECK(o >= 0.93 * 100 * 6);
  CHECK(r <= 0.02 * (o + r));
}

int main(void) {
  RUN(answers_in_flight_at_a_429_count_for_the_burst_not_the_rate);
  RUN(a_held_probe_keeps_its_pace_and_resumes_with_a_fresh_step);
  RUN(a_siblings_estimate_ends_the_probe_until_an_own_429);
  RUN(a_late_send_makes_up_at_most_two_requests);
  RUN(estimate_recovers_a_token_buckets_rate);
  RUN(inactive_learner_never_holds_a_request);
  RUN(first_429_measures_the_burst_then_probes);
  RUN(next_429_sets_the_pace_from_the_model);
  RUN(a_429_with_too_little_to_learn_from_halves_the_pace);
  RUN(a_429_inside_the_burst_shrinks_the_burst_not_the_pace);
  RUN(bare_first_429_paces_at_the_burst_per_second_then_doubles);
  RUN(bare_next_429_paces_just_under_the_rate_that_fits);
  RUN(bare_429s_with_nothing_between_cut_harder_each_time);
  RUN(bare_sibling_prior_is_not_a_cap);
  RUN(bare_closed_loop_holds_the_rate_and_follows_a_change);
  CTEST_END();
}
