/* Circuit breaker: every transition, the window, probes and cool-downs. */
#include "breaker.h"
#include "ctest.h"
#include "rng.h"

static const lr_breaker_cfg CFG = {
    .failure_threshold = 3, .failure_rate = 0.5, .min_calls = 10, .window_s = 10,
    .cooldown_s = 5, .max_cooldown_s = 20, .half_open_probes = 1};

/* Threshold out of reach: only the failure rate can open it. */
static const lr_breaker_cfg RATE_CFG = {
    .failure_threshold = 1000, .failure_rate = 0.5, .min_calls = 10, .window_s = 10,
    .cooldown_s = 5, .max_cooldown_s = 20, .half_open_probes = 1};

static lr_breaker fresh(const lr_breaker_cfg *cfg) {
  lr_breaker b;
  memset(&b, 0x5A, sizeof b);
  lr_breaker_init(&b, cfg);
  return b;
}

/* A non-probe request sent and failed / succeeded at t. */
static int fail(lr_breaker *b, const lr_breaker_cfg *cfg, double t) {
  return lr_breaker_on_failure(b, cfg, t, lr_breaker_on_send(b, cfg, t));
}
static int succeed(lr_breaker *b, const lr_breaker_cfg *cfg, double t) {
  return lr_breaker_on_success(b, cfg, t, lr_breaker_on_send(b, cfg, t));
}

static void window_is(const lr_breaker *b, const lr_breaker_cfg *cfg, double t, int calls, int failures) {
  int c = -1, f = -1;
  lr_breaker_window(b, cfg, t, &c, &f);
  if (c != calls || f != failures)
    fprintf(stderr, "  window at %g: %d calls %d failures, want %d %d\n", t, c, f, calls, failures);
  CHECK(c == calls && f == failures);
}

/* Opens a fresh breaker at t = 100 through consecutive failures. */
static lr_breaker opened(const lr_breaker_cfg *cfg) {
  lr_breaker b = fresh(cfg);
  for (int i = 0; i < cfg->failure_threshold; i++) fail(&b, cfg, 100);
  return b;
}

TEST(state_names) {
  CHECK(strcmp(lr_breaker_state_name(LR_BREAKER_CLOSED), "closed") == 0);
  CHECK(strcmp(lr_breaker_state_name(LR_BREAKER_OPEN), "open") == 0);
  CHECK(strcmp(lr_breaker_state_name(LR_BREAKER_HALF_OPEN), "half_open") == 0);
  CHECK(strcmp(lr_breaker_state_name((lr_breaker_state)7), "unknown") == 0);
  CHECK(strcmp(lr_breaker_state_name((lr_breaker_state)-1), "unknown") == 0);
}

TEST(init_closed_and_empty) {
  lr_breaker b = fresh(&CFG);
  CHECK(b.state == LR_BREAKER_CLOSED);
  CHECK(b.consecutive_failures == 0 && b.probes_in_flight == 0 && b.times_opened == 0);
  CHECK(b.cooldown_s == 5);
  CHECK(lr_breaker_allows(&b, &CFG, 0));
  CHECK(lr_breaker_usable_at(&b, 42) == 42);
  window_is(&b, &CFG, 0, 0, 0);
  window_is(&b, &CFG, -1e9, 0, 0);
  window_is(&b, &CFG, 1e18, 0, 0);
  CHECK(lr_breaker_on_send(&b, &CFG, 0) == 0);
}

TEST(consecutive_failures_open) {
  lr_breaker b = fresh(&CFG);
  CHECK(fail(&b, &CFG, 1) == 0);
  CHECK(fail(&b, &CFG, 2) == 0);
  CHECK(b.consecutive_failures == 2 && b.state == LR_BREAKER_CLOSED);
  CHECK(fail(&b, &CFG, 3) == 1);
  CHECK(b.state == LR_BREAKER_OPEN);
  CHECK(b.times_opened == 1);
  CHECK_NEAR(b.open_until, 8, 0);
  CHECK(!lr_breaker_allows(&b, &CFG, 3));
  CHECK_NEAR(lr_breaker_usable_at(&b, 3), 8, 0);
}

TEST(success_resets_consecutive_count) {
  lr_breaker b = fresh(&CFG);
  fail(&b, &CFG, 1);
  fail(&b, &CFG, 2);
  CHECK(succeed(&b, &CFG, 3) == 0);
  CHECK(b.consecutive_failures == 0);
  fail(&b, &CFG, 4);
  fail(&b, &CFG, 5);
  CHECK(b.state == LR_BREAKER_CLOSED);
  lr_breaker_on_neutral(&b, &CFG, 6, lr_breaker_on_send(&b, &CFG, 6)); /* says nothing */
  CHECK(b.consecutive_failures == 2);
  window_is(&b, &CFG, 6, 5, 4);
  CHECK(fail(&b, &CFG, 7) == 1);
}

TEST(open_waits_for_cooldown_then_half_opens) {
  lr_breaker b = opened(&CFG); /* open_until 105 */
  CHECK(!lr_breaker_allows(&b, &CFG, 100));
  CHECK(!lr_breaker_allows(&b, &CFG, 104.999));
  CHECK(b.state == LR_BREAKER_OPEN);
  CHECK_NEAR(lr_breaker_usable_at(&b, 101), 105, 0);
  CHECK_NEAR(lr_breaker_usable_at(&b, 200), 200, 0); /* over, though not yet moved */
  CHECK(lr_breaker_on_send(&b, &CFG, 104) == 0);     /* caller should not, but safe */
  CHECK(b.state == LR_BREAKER_OPEN && b.probes_in_flight == 0);
  CHECK(lr_breaker_allows(&b, &CFG, 105));
  CHECK(b.state == LR_BREAKER_HALF_OPEN && b.probes_in_flight == 0);
  CHECK_NEAR(lr_breaker_usable_at(&b, 105), 105, 0);
}

TEST(half_open_probe_slots) {
  lr_breaker b = opened(&CFG);
  CHECK(lr_breaker_allows(&b, &CFG, 106));
  CHECK(lr_breaker_allows(&b, &CFG, 106)); /* asking takes no slot */
  CHECK(lr_breaker_on_send(&b, &CFG, 106) == 1);
  CHECK(b.probes_in_flight == 1);
  CHECK(!lr_breaker_allows(&b, &CFG, 107));
  CHECK(isinf(lr_breaker_usable_at(&b, 107)) && lr_breaker_usable_at(&b, 107) > 0);
  CHECK(lr_breaker_on_send(&b, &CFG, 107) == 0); /* full: not a probe, no slot */
  CHECK(b.probes_in_flight == 1);
  lr_breaker_on_neutral(&b, &CFG, 108, 1); /* a 429 frees the slot */
  CHECK(b.state == LR_BREAKER_HALF_OPEN && b.probes_in_flight == 0);
  CHECK(lr_breaker_allows(&b, &CFG, 108));
  CHECK_NEAR(lr_breaker_usable_at(&b, 108), 108, 0);

  lr_breaker_cfg three = CFG;
  three.half_open_probes = 3;
  b = opened(&three);
  for (int i = 0; i < 3; i++) {
    CHECK(lr_breaker_allows(&b, &three, 106));
    CHECK(lr_breaker_on_send(&b, &three, 106) == 1);
  }
  CHECK(!lr_breaker_allows(&b, &three, 106));
  CHECK(isinf(lr_breaker_usable_at(&b, 106)));
  lr_breaker_on_neutral(&b, &three, 107, 1);
  CHECK(b.probes_in_flight == 2 && lr_breaker_allows(&b, &three, 107));
  CHECK_NEAR(lr_breaker_usable_at(&b, 107), 107, 0);
}

TEST(probe_success_closes) {
  lr_breaker b = opened(&CFG);
  lr_breaker_on_failure(&b, &CFG, 101, 0); /* a stale one, into the window */
  int probe = (lr_breaker_allows(&b, &CFG, 106), lr_breaker_on_send(&b, &CFG, 106));
  CHECK(probe == 1);
  CHECK(lr_breaker_on_success(&b, &CFG, 107, probe) == 1);
  CHECK(b.state == LR_BREAKER_CLOSED);
  CHECK(b.consecutive_failures == 0 && b.probes_in_flight == 0);
  CHECK(b.cooldown_s == 5);
  CHECK(b.times_opened == 1);
  window_is(&b, &CFG, 107, 0, 0); /* cleared */
  CHECK(lr_breaker_allows(&b, &CFG, 107));
  CHECK_NEAR(lr_breaker_usable_at(&b, 107), 107, 0);
}

TEST(probe_failure_reopens_with_doubled_cooldown) {
  lr_breaker b = opened(&CFG); /* cooldown 5, open until 105 */
  double t = 105;
  const double want[] = {10, 20, 20, 20};
  for (int i = 0; i < 4; i++) {
    CHECK(lr_breaker_allows(&b, &CFG, t));
    int probe = lr_breaker_on_send(&b, &CFG, t);
    CHECK(probe == 1);
    CHECK(lr_breaker_on_failure(&b, &CFG, t + 1, probe) == 1);
    CHECK(b.state == LR_BREAKER_OPEN);
    CHECK_NEAR(b.cooldown_s, want[i], 0);
    CHECK_NEAR(b.open_until, t + 1 + want[i], 0);
    CHECK(b.times_opened == 2 + i);
    CHECK(b.probes_in_flight == 0);
    CHECK(!lr_breaker_allows(&b, &CFG, t + 1 + want[i] - 0.001));
    t = t + 1 + want[i];
  }
  int probe = (lr_breaker_allows(&b, &CFG, t), lr_breaker_on_send(&b, &CFG, t));
  CHECK(lr_breaker_on_success(&b, &CFG, t, probe) == 1);
  CHECK_NEAR(b.cooldown_s, 5, 0); /* reset */
  for (int i = 0; i < 3; i++) fail(&b, &CFG, t + 1);
  CHECK(b.state == LR_BREAKER_OPEN);
  CHECK_NEAR(b.open_until, t + 1 + 5, 0);
}

TEST(cooldown_doubling_odd_caps) {
  lr_breaker_cfg c = CFG;
  c.cooldown_s = 7;
  c.max_cooldown_s = 3; /* below the start: stays at 7, never shrinks */
  lr_breaker b = opened(&c);
  lr_breaker_allows(&b, &c, 200);
  lr_breaker_on_failure(&b, &c, 200, lr_breaker_on_send(&b, &c, 200));
  CHECK_NEAR(b.cooldown_s, 7, 0);
  c.max_cooldown_s = 10;
  lr_breaker_allows(&b, &c, 300);
  lr_breaker_on_failure(&b, &c, 300, lr_breaker_on_send(&b, &c, 300));
  CHECK_NEAR(b.cooldown_s, 10, 0);
}

TEST(stale_outcomes_change_nothing_while_open) {
  lr_breaker b = opened(&CFG);
  lr_breaker before = b;
  CHECK(lr_breaker_on_failure(&b, &CFG, 101, 0) == 0);
  CHECK(lr_breaker_on_failure(&b, &CFG, 102, 0) == 0);
  CHECK(lr_breaker_on_success(&b, &CFG, 103, 0) == 0);
  lr_breaker_on_neutral(&b, &CFG, 103, 0);
  CHECK(b.state == LR_BREAKER_OPEN && b.open_until == before.open_until);
  CHECK(b.cooldown_s == before.cooldown_s && b.times_opened == before.times_opened);
  CHECK(b.consecutive_failures == before.consecutive_failures);
  window_is(&b, &CFG, 103, 6, 5); /* but the window saw them */
  /* a stale probe flag while OPEN frees and decides nothing either */
  CHECK(lr_breaker_on_failure(&b, &CFG, 104, 1) == 0);
  CHECK(lr_breaker_on_success(&b, &CFG, 104, 1) == 0);
  CHECK(b.state == LR_BREAKER_OPEN && b.cooldown_s == 5 && b.times_opened == 1);
}

TEST(stale_outcomes_change_nothing_while_half_open) {
  lr_breaker b = opened(&CFG);
  CHECK(lr_breaker_allows(&b, &CFG, 106));
  int probe = lr_breaker_on_send(&b, &CFG, 106);
  CHECK(lr_breaker_on_failure(&b, &CFG, 107, 0) == 0);
  CHECK(lr_breaker_on_success(&b, &CFG, 107, 0) == 0);
  lr_breaker_on_neutral(&b, &CFG, 107, 0);
  CHECK(b.state == LR_BREAKER_HALF_OPEN && b.probes_in_flight == 1 && b.cooldown_s == 5);
  CHECK(lr_breaker_on_success(&b, &CFG, 108, probe) == 1);
  CHECK(b.state == LR_BREAKER_CLOSED);
}

TEST(late_probe_reports_after_close) {
  lr_breaker_cfg two = CFG;
  two.half_open_probes = 2;
  lr_breaker b = opened(&two);
  lr_breaker_allows(&b, &two, 106);
  int p1 = lr_breaker_on_send(&b, &two, 106), p2 = lr_breaker_on_send(&b, &two, 106);
  CHECK(p1 == 1 && p2 == 1 && b.probes_in_flight == 2);
  CHECK(lr_breaker_on_success(&b, &two, 107, p1) == 1);
  CHECK(b.state == LR_BREAKER_CLOSED && b.probes_in_flight == 0);
  CHECK(lr_breaker_on_failure(&b, &two, 108, p2) == 0); /* a plain closed failure now */
  CHECK(b.state == LR_BREAKER_CLOSED && b.consecutive_failures == 1 && b.probes_in_flight == 0);
  lr_breaker_on_neutral(&b, &two, 108, 1);
  CHECK(b.probes_in_flight == 0);
  /* a probe that fails after another probe already re-opened it changes nothing */
  b = opened(&two);
  lr_breaker_allows(&b, &two, 106);
  p1 = lr_breaker_on_send(&b, &two, 106);
  p2 = lr_breaker_on_send(&b, &two, 106);
  CHECK(lr_breaker_on_failure(&b, &two, 107, p1) == 1);
  double until = b.open_until, cd = b.cooldown_s;
  CHECK(lr_breaker_on_failure(&b, &two, 108, p2) == 0);
  CHECK(b.open_until == until && b.cooldown_s == cd && b.times_opened == 2);
}

TEST(failure_rate_needs_min_calls) {
  lr_breaker b = fresh(&RATE_CFG);
  /* f s f s f s f s f: 5 of 9 failed, but fewer than 10 calls */
  for (int i = 0; i < 9; i++) CHECK((i % 2 ? succeed(&b, &RATE_CFG, 1) : fail(&b, &RATE_CFG, 1)) == 0);
  window_is(&b, &RATE_CFG, 1, 9, 5);
  CHECK(b.state == LR_BREAKER_CLOSED);
  CHECK(fail(&b, &RATE_CFG, 1) == 1); /* 6 of 10 > 0.5 */
  CHECK(b.state == LR_BREAKER_OPEN && b.times_opened == 1);
}

TEST(failure_rate_must_exceed) {
  lr_breaker b = fresh(&RATE_CFG);
  for (int i = 0; i < 10; i++) CHECK((i % 2 ? fail(&b, &RATE_CFG, 2) : succeed(&b, &RATE_CFG, 2)) == 0);
  window_is(&b, &RATE_CFG, 2, 10, 5); /* exactly 0.5: not above */
  CHECK(b.state == LR_BREAKER_CLOSED);
  CHECK(succeed(&b, &RATE_CFG, 2) == 0);
  CHECK(fail(&b, &RATE_CFG, 2) == 0); /* 6 of 12 */
  CHECK(fail(&b, &RATE_CFG, 2) == 1); /* 7 of 13 */
}

TEST(failure_rate_forgets_old_slices) {
  lr_breaker b = fresh(&RATE_CFG);
  for (int i = 0; i < 9; i++) fail(&b, &RATE_CFG, 0.5); /* slice 0 */
  for (int i = 0; i < 9; i++) succeed(&b, &RATE_CFG, 5.5);
  window_is(&b, &RATE_CFG, 9.99, 18, 9);
  window_is(&b, &RATE_CFG, 10.0, 9, 0); /* slice 0 left the window */
  CHECK(b.state == LR_BREAKER_CLOSED);
  /* 9 failures now at 10.5 reuse bucket 0: 9 of 18, then one more is 10 of 19 */
  for (int i = 0; i < 9; i++) CHECK(fail(&b, &RATE_CFG, 10.5) == 0);
  window_is(&b, &RATE_CFG, 10.5, 18, 9);
  CHECK(fail(&b, &RATE_CFG, 10.5) == 1);
}

TEST(window_slices) {
  lr_breaker b = fresh(&CFG);
  for (int s = 0; s < 20; s++) lr_breaker_on_success(&b, &CFG, s + 0.5, 0);
  window_is(&b, &CFG, 19.5, 10, 0);
  window_is(&b, &CFG, 25, 4, 0);  /* slices 16..19 of (15, 25] */
  window_is(&b, &CFG, 28, 1, 0);  /* only slice 19 */
  window_is(&b, &CFG, 29, 0, 0);
  window_is(&b, &CFG, 5, 0, 0);   /* older slices were recycled */
  window_is(&b, &CFG, 1e12, 0, 0);
  lr_breaker_on_failure(&b, &CFG, -3.5, 0); /* negative times work too */
  window_is(&b, &CFG, -3.5, 1, 1);
  window_is(&b, &CFG, 5.9, 1, 1);
  window_is(&b, &CFG, 6, 0, 0);
}

TEST(window_off) {
  lr_breaker_cfg c = RATE_CFG;
  c.window_s = 0;
  c.min_calls = 0;
  lr_breaker b = fresh(&c);
  for (int i = 0; i < 50; i++) CHECK(fail(&b, &c, i) == 0);
  window_is(&b, &c, 10, 0, 0);
  CHECK(b.state == LR_BREAKER_CLOSED && b.consecutive_failures == 50);
  c.window_s = NAN;
  window_is(&b, &c, 10, 0, 0);
  CHECK(fail(&b, &c, NAN) == 0);
}

TEST(min_calls_zero_never_divides_by_zero) {
  lr_breaker_cfg c = RATE_CFG;
  c.min_calls = 0;
  c.failure_rate = 0;
  lr_breaker b = fresh(&c);
  CHECK(succeed(&b, &c, 1) == 0);
  CHECK(fail(&b, &c, 1) == 1);
}

TEST(threshold_one_and_odd_probe_config) {
  lr_breaker_cfg c = CFG;
  c.failure_threshold = 1;
  c.half_open_probes = 0; /* treated as 1 */
  lr_breaker b = fresh(&c);
  CHECK(fail(&b, &c, 0) == 1);
  CHECK(lr_breaker_allows(&b, &c, 5));
  CHECK(lr_breaker_on_send(&b, &c, 5) == 1);
  CHECK(!lr_breaker_allows(&b, &c, 5));
}

TEST(send_after_cooldown_without_asking) {
  lr_breaker b = opened(&CFG);
  CHECK(lr_breaker_on_send(&b, &CFG, 105) == 1); /* the lazy move happens here too */
  CHECK(b.state == LR_BREAKER_HALF_OPEN && b.probes_in_flight == 1);
}

/* Random traffic: the struct never leaves its invariants. */
TEST(random_traffic_invariants) {
  lr_breaker_cfg c = {.failure_threshold = 4, .failure_rate = 0.4, .min_calls = 8, .window_s = 5,
                      .cooldown_s = 1, .max_cooldown_s = 8, .half_open_probes = 2};
  lr_rng rng;
  lr_rng_seed(&rng, 2024);
  lr_breaker b = fresh(&c);
  int inflight_probes = 0, pending[64], npending = 0, opened_seen = 0, closed_again = 0;
  double t = 0;
  for (int i = 0; i < 200000; i++) {
    t += lr_rng_unit(&rng) * 0.05;
    lr_breaker_state before = b.state;
    if (npending < 64 && lr_rng_unit(&rng) < 0.5) {
      if (lr_breaker_allows(&b, &c, t)) {
        CHECK(lr_breaker_usable_at(&b, t) == t);
        int p = lr_breaker_on_send(&b, &c, t);
        CHECK(p == (b.state == LR_BREAKER_HALF_OPEN));
        inflight_probes += p;
        pending[npending++] = p;
      } else {
        CHECK(lr_breaker_usable_at(&b, t) > t);
      }
    } else if (npending > 0) {
      int k = (int)(lr_rng_next(&rng) % (uint64_t)npending), p = pending[k];
      pending[k] = pending[--npending];
      double r = lr_rng_unit(&rng), fail_p = (i / 20000) % 2 ? 0.9 : 0.1;
      if (r < 0.1) lr_breaker_on_neutral(&b, &c, t, p);
      else if (r < 0.1 + fail_p) lr_breaker_on_failure(&b, &c, t, p);
      else lr_breaker_on_success(&b, &c, t, p);
    }
    opened_seen += before != LR_BREAKER_OPEN && b.state == LR_BREAKER_OPEN;
    closed_again += before == LR_BREAKER_HALF_OPEN && b.state == LR_BREAKER_CLOSED;
    CHECK(b.state == LR_BREAKER_CLOSED || b.state == LR_BREAKER_OPEN || b.state == LR_BREAKER_HALF_OPEN);
    CHECK(b.probes_in_flight >= 0 && b.probes_in_flight <= c.half_open_probes);
    CHECK(b.cooldown_s >= c.cooldown_s && b.cooldown_s <= c.max_cooldown_s);
    CHECK(b.state != LR_BREAKER_CLOSED || b.probes_in_flight == 0);
    int calls, failures;
    lr_breaker_window(&b, &c, t, &calls, &failures);
    CHECK(calls >= 0 && failures >= 0 && failures <= calls);
  }
  CHECK(inflight_probes > 0);
  CHECK(opened_seen > 10 && closed_again > 10);
  CHECK(b.times_opened >= opened_seen);
}

int main(void) {
  RUN(state_names);
  RUN(init_closed_and_empty);
  RUN(consecutive_failures_open);
  RUN(success_resets_consecutive_count);
  RUN(open_waits_for_cooldown_then_half_opens);
  RUN(half_open_probe_slots);
  RUN(probe_success_closes);
  RUN(probe_failure_reopens_with_doubled_cooldown);
  RUN(cooldown_doubling_odd_caps);
  RUN(stale_outcomes_change_nothing_while_open);
  RUN(stale_outcomes_change_nothing_while_half_open);
  RUN(late_probe_reports_after_close);
  RUN(failure_rate_needs_min_calls);
  RUN(failure_rate_must_exceed);
  RUN(failure_rate_forgets_old_slices);
  RUN(window_slices);
  RUN(window_off);
  RUN(min_calls_zero_never_divides_by_zero);
  RUN(threshold_one_and_odd_probe_config);
  RUN(send_after_cooldown_without_asking);
  RUN(random_traffic_invariants);
  CTEST_END();
}
