/* Unit tests of csrc/pool.c: usability, selection strategies, health. */
#include <math.h>
#include <stdlib.h>

#include "ctest.h"
#include "pool.h"

static lr_breaker_cfg bcfg = {.failure_threshold = 3, .failure_rate = 0.5, .min_calls = 100, .window_s = 10,
                              .cooldown_s = 5, .max_cooldown_s = 40, .half_open_probes = 1};

static void make(lr_pool *p, int n, lr_strategy s) {
  lr_endpoint_cfg eps[8];
  for (int i = 0; i < n; i++) eps[i] = (lr_endpoint_cfg){.weight = 1};
  lr_pool_init(p, eps, n, s, &bcfg, 0);
}

TEST(priority_uses_first_usable) {
  lr_pool p;
  make(&p, 3, LR_STRATEGY_PRIORITY);
  lr_rng rng;
  lr_rng_seed(&rng, 1);
  double wake;
  int why;
  CHECK(lr_pool_pick(&p, 7, 0, 1, &rng, &wake, &why) == 0);
  lr_pool_throttle(&p, 0, 0, 10);
  CHECK(lr_pool_pick(&p, 7, 0, 1, &rng, &wake, &why) == 1);
  CHECK(lr_pool_pick(&p, 5, 0, 1, &rng, &wake, &why) == 2);
  CHECK(lr_pool_pick(&p, 1, 0, 1, &rng, &wake, &why) == -1);
  CHECK_NEAR(wake, 10, 1e-9);
  CHECK(why == LR_BLOCK_THROTTLE);
  CHECK(lr_pool_pick(&p, 7, 0, 10, &rng, &wake, &why) == 0); /* throttle over */
  lr_pool_free(&p);
}

TEST(round_robin_cycles_over_usable) {
  lr_pool p;
  make(&p, 3, LR_STRATEGY_ROUND_ROBIN);
  lr_rng rng;
  lr_rng_seed(&rng, 1);
  double wake;
  int why, seq[6];
  for (int k = 0; k < 6; k++) seq[k] = lr_pool_pick(&p, 7, 0, 1, &rng, &wake, &why);
  CHECK(seq[0] == 0 && seq[1] == 1 && seq[2] == 2 && seq[3] == 0 && seq[4] == 1 && seq[5] == 2);
  lr_pool_throttle(&p, 1, 0, 100);
  for (int k = 0; k < 4; k++) seq[k] = lr_pool_pick(&p, 7, 0, 1, &rng, &wake, &why);
  CHECK(seq[0] == 0 && seq[1] == 2 && seq[2] == 0 && seq[3] == 2);
  lr_pool_free(&p);
}

TEST(weighted_follows_weights_and_health) {
  lr_pool p;
  lr_endpoint_cfg eps[2] = {{.weight = 3}, {.weight = 1}};
  lr_pool_init(&p, eps, 2, LR_STRATEGY_WEIGHTED, &bcfg, 0);
  lr_rng rng;
  lr_rng_seed(&rng, 42);
  double wake;
  int why, count[2] = {0, 0};
  for (int k = 0; k < 10000; k++) count[lr_pool_pick(&p, 3, 0, 1, &rng, &wake, &why)]++;
  /* P2C with replacement, equal scores (a tie keeps the first draw): 9/16 + 3/16 = 3/4, the weights' share */
  CHECK(count[0] > 7200 && count[0] < 7800);
  /* a faster endpoint wins every mixed draw */
  for (int k = 0; k < 20; k++) {
    int pr = lr_pool_on_send(&p, 0, 0, 1);
    lr_pool_on_result(&p, 0, LR_VERDICT_SUCCESS, 0.5, 1, pr);
    pr = lr_pool_on_send(&p, 1, 0, 1);
    lr_pool_on_result(&p, 1, LR_VERDICT_SUCCESS, 0.05, 1, pr);
  }
  count[0] = count[1] = 0;
  for (int k = 0; k < 10000; k++) count[lr_pool_pick(&p, 3, 0, 1, &rng, &wake, &why)]++;
  CHECK(count[1] > 4000); /* 1/16 + 6/16 = 0.44 */
  CHECK(count[0] > 5000);  /* both-heavy draws still go to 0: 9/16 */
  lr_pool_free(&p);
}

TEST(failing_endpoint_loses_mixed_draws_then_recovers) {
  lr_pool p;
  make(&p, 2, LR_STRATEGY_WEIGHTED);
  lr_rng rng;
  lr_rng_seed(&rng, 7);
  for (int k = 0; k < 2; k++) {
    int pr = lr_pool_on_send(&p, 0, 0, 1);
    lr_pool_on_result(&p, 0, LR_VERDICT_FAILURE, 0.01, 1, pr);
  }
  CHECK(lr_pool_success_rate(&p, 0, 1) < 0.7);
  double wake;
  int why, count[2] = {0, 0};
  for (int k = 0; k < 4000; k++) count[lr_pool_pick(&p, 3, 0, 1, &rng, &wake, &why)]++;
  CHECK(count[0] > 700 && count[0] < 1300); /* only when both draws are it: 1/4 */
  CHECK(lr_pool_success_rate(&p, 0, 1000) > 0.99); /* idle drift back to healthy */
  lr_pool_free(&p);
}

TEST(max_concurrency_blocks_until_release) {
  lr_pool p;
  lr_endpoint_cfg eps[1] = {{.weight = 1, .max_concurrency = 2}};
  lr_pool_init(&p, eps, 1, LR_STRATEGY_WEIGHTED, &bcfg, 0);
  lr_rng rng;
  lr_rng_seed(&rng, 3);
  double wake;
  int why;
  int a = lr_pool_on_send(&p, 0, 0, 1), b = lr_pool_on_send(&p, 0, 0, 1);
  CHECK(lr_pool_pick(&p, 1, 0, 1, &rng, &wake, &why) == -1);
  CHECK(isinf(wake) && why == LR_BLOCK_CAPACITY);
  lr_pool_on_result(&p, 0, LR_VERDICT_SUCCESS, 0.1, 2, a);
  CHECK(lr_pool_pick(&p, 1, 0, 2, &rng, &wake, &why) == 0);
  lr_pool_on_result(&p, 0, LR_VERDICT_NEUTRAL, -1, 2, b);
  CHECK(p.ep[0].in_flight == 0);
  lr_pool_free(&p);
}

TEST(breaker_opens_and_blocks_with_wake_time) {
  lr_pool p;
  make(&p, 1, LR_STRATEGY_WEIGHTED);
  lr_rng rng;
  lr_rng_seed(&rng, 3);
  int changed = 0;
  for (int k = 0; k < 3; k++) {
    int pr = lr_pool_on_send(&p, 0, 0, 1);
    changed += lr_pool_on_result(&p, 0, LR_VERDICT_FAILURE, -1, 1, pr);
  }
  CHECK(changed == 1);
  CHECK(p.ep[0].breaker.state == LR_BREAKER_OPEN);
  double wake;
  int why;
  CHECK(lr_pool_pick(&p, 1, 0, 2, &rng, &wake, &why) == -1);
  CHECK(why == LR_BLOCK_BREAKER);
  CHECK_NEAR(wake, 6, 1e-9);
  CHECK(lr_pool_pick(&p, 1, 0, 6, &rng, &wake, &why) == 0); /* half-open probe */
  int pr = lr_pool_on_send(&p, 0, 0, 6);
  CHECK(pr == 1);
  CHECK(lr_pool_pick(&p, 1, 0, 6, &rng, &wake, &why) == -1); /* probe slot taken */
  CHECK(lr_pool_on_result(&p, 0, LR_VERDICT_SUCCESS, 0.1, 6.1, pr) == 1);
  CHECK(p.ep[0].breaker.state == LR_BREAKER_CLOSED);
  lr_pool_free(&p);
}

TEST(limiter_blocks_with_refill_time) {
  lr_pool p;
  lr_endpoint_cfg eps[1] = {{.weight = 1, .rpm = 60}}; /* 1/s, capacity 10 */
  lr_pool_init(&p, eps, 1, LR_STRATEGY_WEIGHTED, &bcfg, 0);
  lr_rng rng;
  lr_rng_seed(&rng, 3);
  double wake;
  int why;
  for (int k = 0; k < 10; k++) {
    CHECK(lr_pool_pick(&p, 1, 0, 0, &rng, &wake, &why) == 0);
    lr_pool_on_result(&p, 0, LR_VERDICT_SUCCESS, 0.1, 0, lr_pool_on_send(&p, 0, 0, 0));
  }
  CHECK(lr_pool_pick(&p, 1, 0, 0, &rng, &wake, &why) == -1);
  CHECK(why == LR_BLOCK_LIMITER);
  CHECK_NEAR(wake, 1.0, 1e-6);
  lr_pool_free(&p);
}

TEST(models_mask) {
  lr_pool p;
  make(&p, 3, LR_STRATEGY_WEIGHTED);
  const char *m0[] = {"gpt-a", "gpt-b"};
  const char *m2[] = {"gpt-b"};
  CHECK(lr_pool_set_models(&p, 0, m0, 2) == 0);
  CHECK(lr_pool_set_models(&p, 2, m2, 1) == 0);
  CHECK(lr_pool_serving(&p, "gpt-a", 5) == 3); /* 0 lists it, 1 serves all */
  CHECK(lr_pool_serving(&p, "gpt-b", 5) == 7);
  CHECK(lr_pool_serving(&p, "gpt-c", 5) == 2);
  CHECK(lr_pool_serving(&p, "gpt-", 4) == 2); /* no prefix matches */
  CHECK(lr_pool_serving(&p, NULL, 0) == 7);
  lr_pool_free(&p);
}

static void learn(lr_pool *p, int i, const char *headers, int status, double now) {
  lr_hints h;
  lr_hints_init(&h);
  for (const char *l = headers; *l;) {
    const char *e = strchr(l, '\n');
    size_t n = e ? (size_t)(e - l + 1) : strlen(l);
    lr_hints_feed_line(&h, l, n, 1e9);
    l += n;
  }
  lr_pool_learn(p, i, &h, status, now, now);
}

TEST(exhausted_endpoint_goes_at_the_servers_pace) {
  lr_pool p;
  make(&p, 1, LR_STRATEGY_PRIORITY);
  double at;
  int why;
  /* 600 per minute: one every 0.1 s; nothing remains */
  learn(&p, 0, "x-ratelimit-limit-requests: 600\nx-ratelimit-remaining-requests: 0\nx-ratelimit-reset-requests: 2s\n",
        200, 10);
  CHECK(!lr_pool_usable(&p, 0, 0, 10, &at, &why));
  CHECK_NEAR(at, 10.1, 1e-9);
  CHECK(why == LR_BLOCK_THROTTLE);
  CHECK(lr_pool_usable(&p, 0, 0, 10.1, &at, &why));
  lr_pool_on_send(&p, 0, 0, 10.1);
  CHECK(!lr_pool_usable(&p, 0, 0, 10.15, &at, &why)); /* the next slot is 0.1 s later, in flight or not */
  CHECK_NEAR(at, 10.2, 1e-9);
  CHECK(lr_pool_usable(&p, 0, 0, 12.5, &at, &why)); /* the count expired with the reset */
  /* some remain: that many go at once */
  learn(&p, 0, "x-ratelimit-limit-requests: 600\nx-ratelimit-remaining-requests: 3\n", 200, 20);
  for (int k = 0; k < 3; k++) {
    CHECK(lr_pool_usable(&p, 0, 0, 20, &at, &why));
    lr_pool_on_send(&p, 0, 0, 20);
  }
  CHECK(!lr_pool_usable(&p, 0, 0, 20, &at, &why));
  lr_pool_free(&p);
}

TEST(a_429_without_limits_lets_one_probe_at_a_time) {
  lr_pool p;
  make(&p, 1, LR_STRATEGY_PRIORITY);
  double at;
  int why;
  learn(&p, 0, "Retry-After: 1\n", 429, 0);
  CHECK(lr_pool_usable(&p, 0, 0, 1, &at, &why));
  lr_pool_on_send(&p, 0, 0, 1);
  CHECK(!lr_pool_usable(&p, 0, 0, 1, &at, &why));
  CHECK(isinf(at) && why == LR_BLOCK_CAPACITY);
  lr_pool_on_result(&p, 0, LR_VERDICT_SUCCESS, 0.1, 1.1, 0);
  learn(&p, 0, "", 200, 1.1); /* a success naming no limit: all may go */
  lr_pool_on_send(&p, 0, 0, 1.1);
  CHECK(lr_pool_usable(&p, 0, 0, 1.1, &at, &why));
  lr_pool_free(&p);
}

TEST(an_unproven_endpoint_takes_a_few_attempts_until_it_is_reached) {
  lr_pool p;
  make(&p, 1, LR_STRATEGY_PRIORITY);
  double at;
  int why, sent = 0;
  while (lr_pool_usable(&p, 0, 0, 1, &at, &why) && sent < 100) {
    lr_pool_on_send(&p, 0, 0, 1);
    sent++;
  }
  CHECK(sent == LR_WARMUP_IN_FLIGHT);
  CHECK(isinf(at) && why == LR_BLOCK_CAPACITY);
  lr_pool_on_result(&p, 0, LR_VERDICT_FAILURE, -1, 1.01, 0); /* a failure (say, refused) proves nothing */
  CHECK(lr_pool_usable(&p, 0, 0, 1.01, &at, &why));           /* 3 in flight: one more may go */
  lr_pool_on_send(&p, 0, 0, 1.01);
  CHECK(!lr_pool_usable(&p, 0, 0, 1.01, &at, &why));
  lr_pool_reached(&p, 0); /* a connection was made */
  for (int k = 0; k < 50; k++) {
    CHECK(lr_pool_usable(&p, 0, 0, 1.01, &at, &why));
    lr_pool_on_send(&p, 0, 0, 1.01);
  }
  lr_pool_free(&p);
}

TEST(spent_token_budget_waits_for_its_reset) {
  lr_pool p;
  make(&p, 1, LR_STRATEGY_PRIORITY);
  double at;
  int why;
  learn(&p, 0, "x-ratelimit-remaining-tokens: 1000\nx-ratelimit-reset-tokens: 6s\n", 200, 0);
  CHECK(lr_pool_usable(&p, 0, 800, 0, &at, &why));
  lr_pool_on_send(&p, 0, 800, 0);
  CHECK(!lr_pool_usable(&p, 0, 800, 0, &at, &why)); /* 200 left, 800 wanted */
  CHECK(why == LR_BLOCK_THROTTLE);
  CHECK_NEAR(at, 6, 1e-9);
  CHECK(lr_pool_usable(&p, 0, 100, 0, &at, &why)); /* a small one still fits */
  CHECK(lr_pool_usable(&p, 0, 800, 6, &at, &why)); /* reset passed */
  lr_pool_free(&p);
}

TEST(usage_corrects_the_configured_token_bucket) {
  lr_pool p;
  lr_endpoint_cfg eps[1] = {{.weight = 1, .tpm = 6000}}; /* 100 tokens/s, capacity 1000 */
  lr_pool_init(&p, eps, 1, LR_STRATEGY_PRIORITY, &bcfg, 0);
  double at;
  int why;
  lr_pool_on_send(&p, 0, 900, 0); /* estimated 900 */
  CHECK(!lr_pool_usable(&p, 0, 500, 0, &at, &why));
  lr_pool_on_usage(&p, 0, 900, 100, 0); /* it used 100: 800 come back */
  CHECK(lr_pool_usable(&p, 0, 500, 0, &at, &why));
  lr_pool_on_usage(&p, 0, 100, 1100, 0); /* another used 1,000 more than estimated */
  CHECK(!lr_pool_usable(&p, 0, 500, 0, &at, &why));
  lr_pool_free(&p);
}

TEST(adaptive_limit_halves_on_429_and_grows_slowly) {
  lr_pool p;
  make(&p, 1, LR_STRATEGY_PRIORITY);
  double at;
  int why;
  lr_hints ra; /* the 429s ask for a pause (a bare 429 leaves the limit alone: see below) */
  lr_hints_init(&ra);
  ra.retry_after_s = 1;
  for (int k = 0; k < 21; k++) lr_pool_on_send(&p, 0, 0, 0); /* 21 in flight, sent at t=0 */
  CHECK(p.ep[0].limit == 0);                                  /* no limit before a 429 */
  lr_pool_on_result(&p, 0, LR_VERDICT_NEUTRAL, -1, 0.1, 0);
  lr_pool_learn(&p, 0, &ra, 429, 0, 0.1);
  CHECK_NEAR(p.ep[0].limit, 10.5, 1e-9); /* half of the 21 that were in flight */
  for (int k = 0; k < 5; k++) {          /* the others, sent before the cut, cut nothing */
    lr_pool_on_result(&p, 0, LR_VERDICT_NEUTRAL, -1, 0.1, 0);
    lr_pool_learn(&p, 0, &ra, 429, 0, 0.1);
  }
  CHECK_NEAR(p.ep[0].limit, 10.5, 1e-9);
  CHECK(p.ep[0].in_flight == 15);
  CHECK(!lr_pool_usable(&p, 0, 0, 1, &at, &why) && (why & LR_BLOCK_CAPACITY));
  lr_pool_on_send(&p, 0, 0, 2); /* a new attempt (the test goes past the block) */
  lr_pool_on_result(&p, 0, LR_VERDICT_NEUTRAL, -1, 2.1, 0);
  lr_pool_learn(&p, 0, &ra, 429, 2, 2.1); /* sent after the cut: it cuts */
  CHECK_NEAR(p.ep[0].limit, 5.25, 1e-9);
  /* successes while the limit binds raise it by scale/limit, scale = latency / pause */
  lr_pool_throttle(&p, 0, 2.1, 1.0);
  for (int k = 0; k < 10; k++) {
    lr_pool_on_result(&p, 0, LR_VERDICT_SUCCESS, 0.1, 3, 0);
    lr_pool_on_send(&p, 0, 0, 3);
    lr_pool_learn(&p, 0, NULL, 200, 3, 3);
  }
  CHECK(p.ep[0].limit > 5.25 && p.ep[0].limit < 5.25 + 10 * 0.1 / 5.25 + 1e-9);
  lr_pool_free(&p);
}

TEST(learnt_rates_probe_one_endpoint_at_a_time_and_share_the_estimate) {
  lr_pool p;
  make(&p, 3, LR_STRATEGY_WEIGHTED);
  double at;
  int why;
  for (int i = 0; i < 3; i++) { /* each answers a burst of 25, then a bare 429 */
    for (int k = 0; k < 25; k++) {
      lr_pool_on_send(&p, i, 0, 0);
      lr_pool_on_result(&p, i, LR_VERDICT_SUCCESS, 0.001, 0.001, 0);
      lr_pool_learn(&p, i, NULL, 200, 0, 0.001);
    }
    lr_pool_on_send(&p, i, 0, 0.002);
    lr_pool_on_result(&p, i, LR_VERDICT_NEUTRAL, 0.001, 0.003, 0);
    learn(&p, i, "Retry-After: 1\n", 429, 0.003);
    lr_pool_throttle(&p, i, 0.003, 1.0);
  }
  for (int i = 0; i < 3; i++) lr_pool_usable(&p, i, 0, 1.1, &at, &why);
  int probing = 0;
  for (int i = 0; i < 3; i++) probing += !p.ep[i].learnt.hold;
  CHECK(probing == 1 && p.prober >= 0 && !p.ep[p.prober].learnt.hold);
  for (int i = 0; i < 3; i++) lr_pool_usable(&p, i, 0, 2.5, &at, &why); /* a second on */
  for (int i = 0; i < 3; i++)
    CHECK(i == p.prober ? p.ep[i].learnt.rate > 50 : p.ep[i].learnt.rate == 50);
  /* the prober's estimate: the others take it over */
  int pr = p.prober;
  p.ep[pr].learnt.estimated = 1;
  p.ep[pr].learnt.rate = 99;
  for (int i = 0; i < 3; i++) lr_pool_usable(&p, i, 0, 2.6, &at, &why);
  for (int i = 0; i < 3; i++) CHECK_NEAR(p.ep[i].learnt.rate, 99, 1e-9);
  for (int i = 0; i < 3; i++) CHECK(i == pr ? !p.ep[i].learnt.borrowed : p.ep[i].learnt.borrowed);
  lr_pool_free(&p);
}

TEST(an_open_prober_hands_the_probe_over) {
  lr_pool p;
  make(&p, 2, LR_STRATEGY_WEIGHTED);
  double at;
  int why;
  for (int i = 0; i < 2; i++) {
    for (int k = 0; k < 5; k++) lr_pool_learn(&p, i, NULL, 200, 0, 0.001);
    learn(&p, i, "Retry-After: 1\n", 429, 0.003);
    lr_pool_throttle(&p, i, 0.003, 1.0);
  }
  lr_pool_usable(&p, 0, 0, 1.1, &at, &why);
  lr_pool_usable(&p, 1, 0, 1.1, &at, &why);
  CHECK(p.prober == 0 && p.ep[1].learnt.hold);
  p.ep[0].breaker.state = LR_BREAKER_OPEN;
  lr_pool_usable(&p, 1, 0, 1.2, &at, &why);
  CHECK(p.prober == 1 && !p.ep[1].learnt.hold);
  lr_pool_free(&p);
}

TEST(bare_429s_pace_every_endpoint_without_a_pause_or_an_in_flight_limit) {
  lr_pool p;
  make(&p, 3, LR_STRATEGY_WEIGHTED);
  lr_rng rng;
  lr_rng_seed(&rng, 9);
  lr_hints none; /* a 429 with no hint at all */
  lr_hints_init(&none);
  double at;
  int why;
  for (int i = 0; i < 3; i++) {
    for (int k = 0; k < 25; k++) {
      lr_pool_on_send(&p, i, 0, 0);
      lr_pool_on_result(&p, i, LR_VERDICT_SUCCESS, 0.001, 0.001, 0);
      lr_pool_learn(&p, i, &none, 200, 0, 0.001);
    }
    for (int k = 0; k < 3; k++) lr_pool_on_send(&p, i, 0, 0.002); /* 3 in flight meet the empty bucket */
    for (int k = 0; k < 3; k++) {
      lr_pool_on_result(&p, i, LR_VERDICT_NEUTRAL, 0.001, 0.003, 0);
      lr_pool_learn(&p, i, &none, 429, 0.002, 0.003);
      lr_pool_rate_limited(&p, i, 0.003, &rng);
    }
    CHECK(p.ep[i].learnt.bare && p.ep[i].learnt.cuts == 1); /* one cut for the three */
    CHECK(p.ep[i].limit == 0);                                 /* the in-flight limit is left alone */
    CHECK(p.ep[i].throttled_until < 0.004);                    /* no pause */
    CHECK(p.ep[i].throttles == 3);
  }
  /* each is paced at its burst per second, and none holds its probe for another */
  for (int i = 0; i < 3; i++) {
    CHECK(!lr_pool_usable(&p, i, 0, 0.01, &at, &why) && (why & LR_BLOCK_THROTTLE));
    CHECK_NEAR(at, 0.003 + 1.0 / 25, 1e-9);
    CHECK(!p.ep[i].learnt.hold);
  }
  /* a sibling's estimate is taken as a prior */
  p.ep[1].learnt.estimated = 1;
  p.ep[1].learnt.rate = 97;
  lr_pool_usable(&p, 0, 0, 0.05, &at, &why);
  CHECK(p.ep[0].learnt.borrowed && p.ep[0].learnt.rate >= 97);
  lr_pool_free(&p);
}

TEST(an_endpoint_that_has_not_answered_carries_no_more_than_its_siblings_did) {
  lr_pool p;
  make(&p, 2, LR_STRATEGY_WEIGHTED);
  double at;
  int why;
  lr_pool_reached(&p, 0);
  lr_pool_reached(&p, 1);
  for (int k = 0; k < 12; k++) {
    lr_pool_on_send(&p, 0, 0, 0);
    lr_pool_on_send(&p, 1, 0, 0);
  }
  /* nobody has answered: no cap beyond the warm-up */
  CHECK(lr_pool_usable(&p, 1, 0, 0, &at, &why));
  /* endpoint 0's first answer comes with 12 in flight */
  lr_pool_on_result(&p, 0, LR_VERDICT_SUCCESS, 0.01, 0.01, 0);
  learn(&p, 0, "x-ratelimit-remaining-requests: 0\n", 200, 0.01);
  CHECK(p.first_load == 12);
  /* endpoint 1, silent so far, may not take endpoint 0's share on top of its own */
  CHECK(!lr_pool_usable(&p, 1, 0, 0.01, &at, &why));
  CHECK(isinf(at) && why == LR_BLOCK_CAPACITY);
  lr_pool_on_result(&p, 1, LR_VERDICT_SUCCESS, 0.01, 0.02, 0); /* 11 in flight: one more */
  CHECK(!p.ep[1].answered);                                   /* a verdict alone is not an answer */
  CHECK(lr_pool_usable(&p, 1, 0, 0.02, &at, &why));
  lr_pool_on_send(&p, 1, 0, 0.02);
  CHECK(!lr_pool_usable(&p, 1, 0, 0.02, &at, &why));
  /* a sibling that carries more now (long streams, say) raises the cap with it */
  for (int k = 0; k < 3; k++) lr_pool_on_send(&p, 0, 0, 0.02);
  CHECK(p.ep[0].in_flight == 14);
  CHECK(lr_pool_usable(&p, 1, 0, 0.02, &at, &why));
  lr_pool_on_send(&p, 1, 0, 0.02);
  lr_pool_on_send(&p, 1, 0, 0.02);
  CHECK(!lr_pool_usable(&p, 1, 0, 0.02, &at, &why));
  learn(&p, 1, "", 200, 0.02); /* its first answer lifts the cap */
  for (int k = 0; k < 30; k++) {
    CHECK(lr_pool_usable(&p, 1, 0, 0.02, &at, &why));
    lr_pool_on_send(&p, 1, 0, 0.02);
  }
  lr_pool_free(&p);
}

TEST(a_first_bare_429_paces_an_equally_busy_sibling_before_it_is_refused) {
  lr_pool p;
  make(&p, 3, LR_STRATEGY_WEIGHTED);
  lr_rng rng;
  lr_rng_seed(&rng, 3);
  lr_hints none;
  lr_hints_init(&none);
  double at;
  int why;
  /* 0 and 1 each carried 20 in the last moments; 2 carried 5 */
  for (int i = 0; i < 3; i++) {
    lr_pool_reached(&p, i);
    for (int k = 0; k < (i < 2 ? 20 : 5); k++) {
      lr_pool_on_send(&p, i, 0, 0);
      lr_pool_on_result(&p, i, LR_VERDICT_SUCCESS, 0.001, 0.001, 0);
      lr_pool_learn(&p, i, &none, 200, 0, 0.001);
    }
  }
  lr_pool_on_send(&p, 0, 0, 0.002);
  lr_pool_on_result(&p, 0, LR_VERDICT_NEUTRAL, 0.001, 0.003, 0);
  lr_pool_learn(&p, 0, &none, 429, 0.002, 0.003);
  lr_pool_rate_limited(&p, 0, 0.003, &rng);
  CHECK(p.bare_burst == 20);
  /* 1 has not been refused, but it is as busy: it paces from 0's bucket */
  CHECK(!lr_pool_usable(&p, 1, 0, 0.003, &at, &why) && (why & LR_BLOCK_THROTTLE));
  CHECK(p.ep[1].learnt.active && p.ep[1].learnt.bare && p.ep[1].learnt.cuts == 0);
  CHECK_NEAR(at, 0.003 + 1.0 / 20, 1e-9);
  /* 2 carried less than that bucket: it goes on unpaced */
  CHECK(lr_pool_usable(&p, 2, 0, 0.003, &at, &why));
  CHECK(!p.ep[2].learnt.active);
  /* a success sent before the prior does not count as 1's own burst */
  lr_pool_on_send(&p, 1, 0, 0.002);
  lr_pool_on_result(&p, 1, LR_VERDICT_SUCCESS, 0.001, 0.004, 0);
  lr_pool_learn(&p, 1, &none, 200, 0.002, 0.004);
  CHECK(p.ep[1].learnt.burst == 20);
  /* the prior grows while it holds requests back, like a pace of its own */
  for (double t = 0.01; t < 1.0; t += 0.005)
    if (lr_pool_usable(&p, 1, 0, t, &at, &why)) lr_pool_on_send(&p, 1, 0, t);
  CHECK(p.ep[1].learnt.rate > 40);
  lr_pool_free(&p);
}

int main(void) {
  RUN(an_endpoint_that_has_not_answered_carries_no_more_than_its_siblings_did);
  RUN(a_first_bare_429_paces_an_equally_busy_sibling_before_it_is_refused);
  RUN(learnt_rates_probe_one_endpoint_at_a_time_and_share_the_estimate);
  RUN(an_open_prober_hands_the_probe_over);
  RUN(bare_429s_pace_every_endpoint_without_a_pause_or_an_in_flight_limit);
  RUN(priority_uses_first_usable);
  RUN(round_robin_cycles_over_usable);
  RUN(weighted_follows_weights_and_health);
  RUN(failing_endpoint_loses_mixed_draws_then_recovers);
  RUN(max_concurrency_blocks_until_release);
  RUN(breaker_opens_and_blocks_with_wake_time);
  RUN(limiter_blocks_with_refill_time);
  RUN(models_mask);
  RUN(an_unproven_endpoint_takes_a_few_attempts_until_it_is_reached);
  RUN(spent_token_budget_waits_for_its_reset);
  RUN(usage_corrects_the_configured_token_bucket);
  RUN(adaptive_limit_halves_on_429_and_grows_slowly);
  RUN(exhausted_endpoint_goes_at_the_servers_pace);
  RUN(a_429_without_limits_lets_one_probe_at_a_time);
  CTEST_END();
}
