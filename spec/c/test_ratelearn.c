/* Unit tests of csrc/ratelearn.c: learning a request rate from 429s alone. */
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
  for (int k = 0; k < 10; k++) lr_ratelearn_success(&l, k * 0.01);
  CHECK(lr_ratelearn_ready_at(&l, 1) == 1);
  lr_ratelearn_sent(&l, 1);
  CHECK(lr_ratelearn_ready_at(&l, 1) == 1);
  lr_ratelearn_free(&l);
}

TEST(first_429_measures_the_burst_then_probes) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 25; k++) lr_ratelearn_success(&l, 5.0 + k * 0.0004); /* a burst of 25 */
  lr_ratelearn_success(&l, 3.0);                                        /* too old to count */
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
  CHECK(lr_ratelearn_ready_at(&l, 6.6) == 6.6 && l.rate == 100); /* half a second on: twice as fast */
  lr_ratelearn_free(&l);
}

TEST(next_429_sets_the_pace_from_the_model) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 25; k++) lr_ratelearn_success(&l, k * 0.0004);
  lr_ratelearn_cut(&l, 0.01, 1.0); /* pause until 1.01 */
  double times[4096], refused;
  int n = bucket_run(100, 25, 1.01, 150, times, 4096, &refused);
  for (int k = 0; k < n; k++) lr_ratelearn_success(&l, times[k]);
  lr_ratelearn_cut(&l, refused, 1.0);
  CHECK(l.estimated);
  CHECK(l.rate > 90 && l.rate <= 100.01);
  lr_ratelearn_free(&l);
}

TEST(a_429_with_too_little_to_learn_from_halves_the_pace) {
  lr_ratelearn l;
  lr_ratelearn_init(&l);
  for (int k = 0; k < 10; k++) lr_ratelearn_success(&l, k * 0.001);
  lr_ratelearn_cut(&l, 0.02, 1.0);
  double r = l.rate;
  lr_ratelearn_success(&l, 1.1); /* fewer successes than the burst */
  lr_ratelearn_cut(&l, 1.2, 1.0);
  CHECK(!l.estimated);
  CHECK_NEAR(l.rate, r / 2, 1e-9);
  lr_ratelearn_free(&l);
}

int main(void) {
  RUN(estimate_recovers_a_token_buckets_rate);
  RUN(inactive_learner_never_holds_a_request);
  RUN(first_429_measures_the_burst_then_probes);
  RUN(next_429_sets_the_pace_from_the_model);
  RUN(a_429_with_too_little_to_learn_from_halves_the_pace);
  CTEST_END();
}
