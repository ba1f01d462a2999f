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
  CHECK(lr_ratelearn_ready_at(&l, 6.6) == 6.6 && l.rate == 100); /* half a second on: twice as fast */
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
  CTEST_END();
}
