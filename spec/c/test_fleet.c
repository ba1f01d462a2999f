/* Unit tests of csrc/fleet.c: what a fleet's lease allows, and what a
 * process tells the fleet about an endpoint's rate. */
#include <math.h>
#include <string.h>

#include "ctest.h"
#include "fleet.h"

static lr_breaker_cfg bcfg = {.failure_threshold = 3, .failure_rate = 0.5, .min_calls = 100, .window_s = 10,
                              .cooldown_s = 5, .max_cooldown_s = 40, .half_open_probes = 1};

static void make(lr_pool *p, int n, double rpm) {
  lr_endpoint_cfg eps[4] = {{0}};
  for (int i = 0; i < n; i++) eps[i] = (lr_endpoint_cfg){.weight = 1, .rpm = rpm};
  lr_pool_init(p, eps, n, LR_STRATEGY_PRIORITY, &bcfg, 0);
  for (int i = 0; i < n; i++) lr_pool_reached(p, i);
}

TEST(without_a_fleet_nothing_changes) {
  lr_pool p;
  make(&p, 1, 0);
  double at;
  int why;
  CHECK(lr_pool_usable(&p, 0, 0, 1, &at, &why));
  CHECK(lr_fleet_due(&p, 1) == INFINITY);
  lr_pool_free(&p);
}

TEST(a_member_sends_only_what_its_lease_allows) {
  lr_pool p;
  make(&p, 1, 0);
  lr_fleet_grant(&p, 0, 2, 1.0, 1.5, -1, 0, 0);
  double at;
  int why;
  CHECK(!lr_pool_usable(&p, 0, 0, 0.9, &at, &why)); /* reserved: not before its start */
  CHECK_NEAR(at, 1.0, 1e-9);
  CHECK(why == LR_BLOCK_LIMITER);
  CHECK(lr_fleet_due(&p, 0.9) == INFINITY); /* waiting for its start is not wanting a lease */
  CHECK(lr_pool_usable(&p, 0, 0, 1.0, &at, &why));
  lr_pool_on_send(&p, 0, 0, 1.0);
  CHECK(lr_pool_usable(&p, 0, 0, 1.0, &at, &why));
  int undo;
  int probe = lr_pool_on_send_undoable(&p, 0, 0, 1.0, &undo);
  CHECK(!lr_pool_usable(&p, 0, 0, 1.0, &at, &why)); /* spent */
  CHECK_NEAR(at, 1.0 + LR_LEASE_POLL_S, 1e-9);
  CHECK_NEAR(lr_fleet_due(&p, 1.0), 1.0, 1e-9); /* and now a lease is wanted */
  lr_pool_unsend(&p, 0, 0, probe, undo, 0, 1.0); /* not sent after all: the lease has it back */
  CHECK(lr_pool_usable(&p, 0, 0, 1.0, &at, &why));
  lr_pool_free(&p);
}

TEST(an_expired_lease_allows_nothing_and_a_refusal_says_when_to_ask_again) {
  lr_pool p;
  make(&p, 1, 0);
  lr_fleet_grant(&p, 0, 5, 0, 0.5, -1, 0, 0);
  double at;
  int why;
  CHECK(!lr_pool_usable(&p, 0, 0, 0.5, &at, &why));
  lr_fleet_grant(&p, 0, 0, 0, 0, -1, 0, 0.7); /* the fleet refused: ask again at 0.7 */
  CHECK(!lr_pool_usable(&p, 0, 0, 0.6, &at, &why));
  CHECK_NEAR(at, 0.7, 1e-9);
  CHECK_NEAR(lr_fleet_due(&p, 0.6), 0.7, 1e-9);
  lr_fleet_off(&p, 0); /* the fleet's store is down: local state only */
  CHECK(lr_pool_usable(&p, 0, 0, 0.6, &at, &why));
  CHECK(lr_fleet_due(&p, 0.6) == INFINITY);
  lr_pool_free(&p);
}

TEST(a_token_lease_holds_back_a_request_larger_than_what_is_left) {
  lr_pool p;
  make(&p, 1, 0);
  lr_fleet_grant(&p, 0, 5, 0, 10, 100, 10, 0);
  double at;
  int why;
  CHECK(lr_pool_usable(&p, 0, 80, 1, &at, &why));
  lr_pool_on_send(&p, 0, 80, 1);
  CHECK(!lr_pool_usable(&p, 0, 80, 1, &at, &why));
  CHECK(lr_pool_usable(&p, 0, 20, 1, &at, &why));
  lr_pool_free(&p);
}

TEST(another_block_does_not_count_as_wanting_a_lease) {
  lr_pool p;
  make(&p, 1, 0);
  lr_fleet_grant(&p, 0, 0, 0, 0, -1, 0, 0);
  lr_pool_throttle(&p, 0, 0, 10);
  double at;
  int why;
  CHECK(!lr_pool_usable(&p, 0, 0, 1, &at, &why));
  CHECK(why == LR_BLOCK_THROTTLE);
  CHECK_NEAR(lr_fleet_due(&p, 1), 1, 1e-9); /* the pause is news for the fleet */
  lr_fleet_told(&p, 0);
  CHECK(lr_fleet_due(&p, 1) == INFINITY); /* told; and waiting out a pause is not wanting a lease */
  lr_pool_throttle(&p, 0, 1, 9.02); /* a pause grown by less than LR_FLEET_TELL_S waits for the next exchange */
  CHECK(lr_fleet_due(&p, 1) == INFINITY);
  lr_pool_throttle(&p, 0, 1, 12);
  CHECK_NEAR(lr_fleet_due(&p, 1), 1, 1e-9);
  lr_pool_free(&p);
}

TEST(a_breaker_changing_state_is_news_for_the_fleet) {
  lr_pool p;
  make(&p, 1, 0);
  lr_fleet_grant(&p, 0, 5, 0, 10, -1, 0, 0);
  lr_fleet_told(&p, 0);
  CHECK(lr_fleet_due(&p, 1) == INFINITY);
  for (int k = 0; k < 3; k++) {
    int probe = lr_pool_on_send(&p, 0, 0, 1);
    lr_pool_on_result(&p, 0, LR_VERDICT_FAILURE, -1, 1, probe);
  }
  CHECK_NEAR(lr_fleet_due(&p, 1), 1, 1e-9); /* opened */
  lr_fleet_told(&p, 0);
  CHECK(lr_fleet_due(&p, 1) == INFINITY);
  lr_pool_free(&p);
}

TEST(the_rate_told_to_the_fleet_is_the_strictest_known) {
  lr_pool p;
  make(&p, 2, 600); /* configured: 10 req/s */
  lr_fleet_view v;
  lr_fleet_view_of(&p, 0, 0, &v);
  CHECK_NEAR(v.rate, 10, 1e-9);
  CHECK(strcmp(v.rate_from, "config") == 0);
  CHECK(v.pub_remaining < 0);
  /* the server publishes 6000/min (100/s), 20 left, full in 0.05 s: a bucket of 25 */
  lr_hints h;
  lr_hints_init(&h);
  h.limit_requests = 6000;
  h.remaining_requests = 20;
  h.reset_requests_s = 0.05;
  lr_pool_learn(&p, 1, &h, 200, 0, 2);
  lr_fleet_view_of(&p, 1, 2, &v);
  CHECK_NEAR(v.rate, 10, 1e-9); /* the client's own limit is stricter */
  lr_pool_free(&p);
  lr_pool_init(&p, (lr_endpoint_cfg[]){{.weight = 1}}, 1, LR_STRATEGY_PRIORITY, &bcfg, 0);
  lr_pool_learn(&p, 0, &h, 200, 0, 2);
  lr_fleet_view_of(&p, 0, 2, &v);
  CHECK_NEAR(v.rate, 100, 1e-9);
  CHECK_NEAR(v.cap, 25, 1e-9);
  CHECK(strcmp(v.rate_from, "published") == 0);
  CHECK_NEAR(v.pub_remaining, 20, 1e-9);
  CHECK_NEAR(v.pub_at, 2, 1e-9);
  lr_pool_free(&p);
}

int main(void) {
  RUN(without_a_fleet_nothing_changes);
  RUN(a_member_sends_only_what_its_lease_allows);
  RUN(an_expired_lease_allows_nothing_and_a_refusal_says_when_to_ask_again);
  RUN(a_token_lease_holds_back_a_request_larger_than_what_is_left);
  RUN(another_block_does_not_count_as_wanting_a_lease);
  RUN(a_breaker_changing_state_is_news_for_the_fleet);
  RUN(the_rate_told_to_the_fleet_is_the_strictest_known);
  CTEST_END();
}
