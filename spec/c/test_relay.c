/* Unit tests of csrc/relay.c, the request state machine, on simulated time. */
#include <math.h>
#include <stdlib.h>

#include "ctest.h"
#include "relay.h"

static lr_breaker_cfg bcfg = {.failure_threshold = 3, .failure_rate = 0.5, .min_calls = 100, .window_s = 30,
                              .cooldown_s = 10, .max_cooldown_s = 40, .half_open_probes = 1};

static lr_relay *make(int n, lr_strategy s, int max_attempts, int concurrency) {
  lr_relay_cfg cfg = {.max_attempts = max_attempts,
                      .backoff = {.base_delay_s = 0.5, .max_delay_s = 8, .max_retry_after_s = 60},
                      .budget = -1,
                      .concurrency = concurrency,
                      .attempt_timeout_s = 30};
  lr_endpoint_cfg eps[8];
  for (int i = 0; i < n; i++) eps[i] = (lr_endpoint_cfg){.weight = 1};
  lr_relay *rl = lr_relay_new(&cfg, eps, n, s, &bcfg, 1234, 0);
  lr_relay_enable_events(rl, 1);
  return rl;
}

#define ALL(n) ((((uint64_t)1) << (n)) - 1)

/* polls once; returns how many came out, the first in *first */
static int poll1(lr_relay *rl, double now, lr_req **first, double *wake) {
  lr_req *out[64];
  double w;
  int n = lr_relay_poll(rl, now, out, 64, wake ? wake : &w);
  if (first) *first = n ? out[0] : NULL;
  return n;
}

static void answer(lr_relay *rl, lr_req *r, int status, double now) {
  lr_outcome o = {.status = status, .transport = LR_E_NONE, .body_ok = 1};
  lr_relay_report(rl, r, &o, now);
}

static void answer_hints(lr_relay *rl, lr_req *r, int status, const char *header, double now) {
  lr_hints h;
  lr_hints_init(&h);
  lr_hints_feed_line(&h, header, strlen(header), 1e9);
  lr_outcome o = {.status = status, .transport = LR_E_NONE, .body_ok = 1, .hints = &h};
  lr_relay_report(rl, r, &o, now);
}

static void fail_transport(lr_relay *rl, lr_req *r, lr_error_kind k, double now) {
  lr_outcome o = {.transport = k, .message = "boom"};
  lr_relay_report(rl, r, &o, now);
}

static int count_events(lr_relay *rl, lr_event_type t) {
  lr_event ev[256];
  int n = lr_relay_events(rl, ev, 256), c = 0;
  for (int k = 0; k < n; k++) c += ev[k].type == t;
  return c;
}

TEST(success_in_one_attempt) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(1), 0, INFINITY, 0, 0, NULL);
  CHECK(poll1(rl, 0, &got, NULL) == 1 && got == &r);
  CHECK(r.state == LR_REQ_SENDING && r.endpoint == 0 && r.attempts == 1);
  CHECK_NEAR(r.attempt_timeout_s, 30, 1e-9);
  CHECK(lr_relay_in_flight(rl) == 1);
  answer(rl, &r, 200, 0.1);
  CHECK(poll1(rl, 0.1, &got, NULL) == 1 && got == &r);
  CHECK(r.state == LR_REQ_DONE && r.kind == LR_E_NONE && r.attempts == 1 && r.status == 200);
  CHECK_NEAR(r.latency_s, 0.1, 1e-9);
  CHECK(lr_relay_in_flight(rl) == 0 && lr_relay_active(rl) == 0);
  lr_relay_free(rl);
}

TEST(server_error_fails_over_at_once) {
  lr_relay *rl = make(2, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(2), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  CHECK(r.endpoint == 0);
  answer(rl, &r, 500, 0.01);
  CHECK(poll1(rl, 0.01, &got, NULL) == 1); /* same instant: no sleep */
  CHECK(r.state == LR_REQ_SENDING && r.endpoint == 1 && r.attempts == 2);
  CHECK(count_events(rl, LR_EV_FAILOVER) == 1);
  answer(rl, &r, 200, 0.02);
  poll1(rl, 0.02, &got, NULL);
  CHECK(r.kind == LR_E_NONE && r.attempts == 2 && r.last_endpoint == 1);
  lr_relay_free(rl);
}

TEST(connect_and_timeout_fail_over) {
  lr_relay *rl = make(3, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(3), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  fail_transport(rl, &r, LR_E_CONNECT, 0);
  poll1(rl, 0, &got, NULL);
  CHECK(r.endpoint == 1);
  fail_transport(rl, &r, LR_E_TIMEOUT, 1);
  poll1(rl, 1, &got, NULL);
  CHECK(r.endpoint == 2 && r.attempts == 3);
  answer(rl, &r, 200, 1.1);
  poll1(rl, 1.1, &got, NULL);
  CHECK(r.kind == LR_E_NONE);
  lr_relay_free(rl);
}

TEST(invalid_request_is_never_retried) {
  int codes[] = {400, 413, 422};
  for (int k = 0; k < 3; k++) {
    lr_relay *rl = make(2, LR_STRATEGY_PRIORITY, 5, 4);
    lr_req r, *got;
    lr_relay_submit(rl, &r, ALL(2), 0, INFINITY, 0, 0, NULL);
    poll1(rl, 0, &got, NULL);
    answer(rl, &r, codes[k], 0.01);
    CHECK(poll1(rl, 0.01, &got, NULL) == 1);
    CHECK(r.state == LR_REQ_DONE && r.kind == LR_E_INVALID_REQUEST && r.attempts == 1 && r.status == codes[k]);
    CHECK(rl != NULL && lr_relay_pool(rl)->ep[0].failures == 0);
    lr_relay_free(rl);
  }
}

TEST(rate_limited_waits_for_retry_after_ms_not_longer) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  double wake;
  lr_relay_submit(rl, &r, ALL(1), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  answer_hints(rl, &r, 429, "retry-after-ms: 200\r\n", 1.0);
  CHECK(poll1(rl, 1.0, &got, &wake) == 0);
  CHECK(r.state == LR_REQ_WAITING);
  CHECK(wake >= 1.2 && wake <= 1.2 + 0.021);
  CHECK(poll1(rl, 1.15, &got, NULL) == 0);
  CHECK(poll1(rl, wake, &got, NULL) == 1 && r.state == LR_REQ_SENDING && r.attempts == 2);
  CHECK(lr_relay_pool(rl)->ep[0].failures == 0); /* a 429 is not a health failure */
  CHECK(lr_relay_pool(rl)->ep[0].breaker.state == LR_BREAKER_CLOSED);
  answer(rl, &r, 200, 1.3);
  poll1(rl, 1.3, &got, NULL);
  CHECK(r.kind == LR_E_NONE);
  lr_relay_free(rl);
}

TEST(request_id_is_the_last_answers) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(1), 0, INFINITY, 0, 0, NULL);
  CHECK(r.request_id[0] == 0);
  poll1(rl, 0, &got, NULL);
  answer_hints(rl, &r, 429, "x-request-id: req_1\r\n", 0);
  CHECK(strcmp(r.request_id, "req_1") == 0);
  double wake;
  poll1(rl, 0, &got, &wake);
  CHECK(poll1(rl, wake, &got, NULL) == 1 && r.state == LR_REQ_SENDING);
  answer(rl, &r, 200, wake); /* no headers: no id */
  CHECK(r.request_id[0] == 0);
  lr_relay_free(rl);
}

TEST(rate_limited_fails_over_to_an_endpoint_with_capacity) {
  lr_relay *rl = make(2, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(2), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  answer_hints(rl, &r, 429, "Retry-After: 30\r\n", 0);
  CHECK(poll1(rl, 0, &got, NULL) == 1 && r.endpoint == 1);
  CHECK(count_events(rl, LR_EV_THROTTLE) == 1);
  answer(rl, &r, 200, 0.1);
  poll1(rl, 0.1, &got, NULL);
  /* the next request avoids the throttled endpoint without trying it */
  lr_req r2;
  lr_relay_submit(rl, &r2, ALL(2), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 1, &got, NULL);
  CHECK(r2.endpoint == 1 && r2.attempts == 1);
  lr_relay_free(rl);
}

TEST(server_delay_beyond_max_retry_after_gives_up_with_hint) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(1), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  answer_hints(rl, &r, 429, "Retry-After: 3600\r\n", 0);
  CHECK(poll1(rl, 0, &got, NULL) == 1);
  CHECK(r.state == LR_REQ_DONE && r.kind == LR_E_RATE_LIMITED && r.attempts == 1);
  CHECK(r.retry_after_s >= 3600 && r.retry_after_s < 3700);
  lr_relay_free(rl);
}

TEST(deadline_fails_fast_when_nothing_is_usable_in_time) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(1), 0, 2.0, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  CHECK(r.attempt_timeout_s <= 30);
  answer_hints(rl, &r, 429, "Retry-After: 10\r\n", 0.5);
  CHECK(poll1(rl, 0.5, &got, NULL) == 1);
  CHECK(r.kind == LR_E_RATE_LIMITED && r.retry_after_s >= 9.5);
  lr_relay_free(rl);
}

TEST(timeout_after_deadline_is_deadline) {
  lr_relay *rl = make(2, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(2), 0, 1.0, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  fail_transport(rl, &r, LR_E_TIMEOUT, 1.0);
  CHECK(poll1(rl, 1.0, &got, NULL) == 1);
  CHECK(r.kind == LR_E_DEADLINE && r.attempts == 1);
  lr_relay_free(rl);
}

TEST(max_attempts_ends_with_last_error) {
  lr_relay *rl = make(3, LR_STRATEGY_ROUND_ROBIN, 3, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(3), 0, INFINITY, 0, 0, NULL);
  double now = 0;
  for (int k = 0; k < 3; k++) {
    CHECK(poll1(rl, now, &got, NULL) == 1 && r.state == LR_REQ_SENDING);
    answer(rl, &r, 502, now);
  }
  CHECK(poll1(rl, now, &got, NULL) == 1);
  CHECK(r.state == LR_REQ_DONE && r.kind == LR_E_SERVER_ERROR && r.attempts == 3 && r.status == 502);
  lr_relay_free(rl);
}

TEST(every_endpoint_failed_backs_off_with_jitter) {
  lr_relay *rl = make(2, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  double wake;
  lr_relay_submit(rl, &r, ALL(2), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  answer(rl, &r, 500, 0);
  poll1(rl, 0, &got, NULL);
  answer(rl, &r, 500, 0);
  CHECK(poll1(rl, 0, &got, &wake) == 0); /* both tried: back off */
  CHECK(r.state == LR_REQ_WAITING && wake >= 0 && wake <= 0.5);
  CHECK(count_events(rl, LR_EV_RETRY) == 1);
  CHECK(poll1(rl, wake, &got, NULL) == 1 && r.attempts == 3 && r.endpoint == 0);
  lr_relay_free(rl);
}

TEST(not_found_excludes_the_endpoint) {
  lr_relay *rl = make(2, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(2), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  answer(rl, &r, 404, 0);
  poll1(rl, 0, &got, NULL);
  CHECK(r.endpoint == 1);
  answer(rl, &r, 404, 0);
  CHECK(poll1(rl, 0, &got, NULL) == 1);
  CHECK(r.state == LR_REQ_DONE && r.kind == LR_E_HTTP && r.status == 404 && r.attempts == 2);
  CHECK(lr_relay_pool(rl)->ep[0].breaker.consecutive_failures == 0);
  lr_relay_free(rl);
}

TEST(no_endpoint_for_model) {
  lr_relay *rl = make(2, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, 0, 0, INFINITY, 0, 0, NULL);
  CHECK(poll1(rl, 0, &got, NULL) == 1);
  CHECK(r.kind == LR_E_INVALID_REQUEST && r.attempts == 0);
  lr_relay_free(rl);
}

TEST(bad_body_and_should_retry) {
  lr_relay *rl = make(2, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(2), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  lr_outcome o = {.status = 200, .body_ok = 0};
  lr_relay_report(rl, &r, &o, 0);
  poll1(rl, 0, &got, NULL);
  CHECK(r.state == LR_REQ_SENDING && r.endpoint == 1 && r.kind == LR_E_DECODE);
  answer_hints(rl, &r, 503, "x-should-retry: false\r\n", 0);
  CHECK(poll1(rl, 0, &got, NULL) == 1 && r.state == LR_REQ_DONE && r.kind == LR_E_SERVER_ERROR);
  lr_relay_free(rl);
  rl = make(2, LR_STRATEGY_PRIORITY, 5, 4);
  lr_relay_submit(rl, &r, ALL(2), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  answer_hints(rl, &r, 418, "x-should-retry: true\r\n", 0);
  CHECK(poll1(rl, 0, &got, NULL) == 1 && r.state == LR_REQ_SENDING && r.endpoint == 1);
  lr_relay_free(rl);
}

/* A 2xx body that cannot be decoded (an echo of the request, an answer over
 * the decode cap): elsewhere at once, never back to that endpoint, never a
 * breaker failure, and its retry is counted in the budget. */
static void answer_undecodable(lr_relay *rl, lr_req *r, double now) {
  lr_outcome o = {.status = 200, .body_ok = 0, .message = "the response body is not valid UTF-8 (byte 9)"};
  lr_relay_report(rl, r, &o, now);
}

TEST(undecodable_2xx_goes_elsewhere_never_back) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  for (int k = 0; k < 10; k++) { /* threshold 3: ten in a row leave the breaker closed */
    lr_relay_submit(rl, &r, ALL(1), 0, INFINITY, 0, 0, NULL);
    CHECK(poll1(rl, k, &got, NULL) == 1 && r.state == LR_REQ_SENDING);
    answer_undecodable(rl, &r, k + 0.1);
    CHECK(r.verdict == LR_VERDICT_NEUTRAL);
    CHECK(poll1(rl, k + 0.1, &got, NULL) == 1 && got == &r); /* done at once: no backoff, no second try */
    CHECK(r.state == LR_REQ_DONE && r.kind == LR_E_DECODE && r.attempts == 1);
    CHECK(strcmp(r.message, "the response body is not valid UTF-8 (byte 9)") == 0);
  }
  CHECK(lr_relay_pool(rl)->ep[0].breaker.state == LR_BREAKER_CLOSED);
  CHECK(lr_relay_pool(rl)->ep[0].failures == 0);
  lr_relay_free(rl);

  rl = make(3, LR_STRATEGY_PRIORITY, 5, 4);
  lr_relay_submit(rl, &r, ALL(3), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  CHECK(r.endpoint == 0);
  answer_undecodable(rl, &r, 0);
  CHECK(poll1(rl, 0, &got, NULL) == 1 && r.state == LR_REQ_SENDING && r.endpoint == 1);
  fail_transport(rl, &r, LR_E_CONNECT, 0);
  CHECK(poll1(rl, 0, &got, NULL) == 1 && r.state == LR_REQ_SENDING && r.endpoint == 2);
  fail_transport(rl, &r, LR_E_CONNECT, 0);
  /* a new round may go back to 1 and 2, which failed otherwise, but not to 0 */
  for (double t = 0; r.state != LR_REQ_DONE && t < 100; t += 0.25) {
    if (poll1(rl, t, &got, NULL) && r.state == LR_REQ_SENDING) {
      CHECK(r.endpoint != 0);
      fail_transport(rl, &r, LR_E_CONNECT, t);
    }
  }
  CHECK(r.state == LR_REQ_DONE && r.attempts == 5 && r.kind == LR_E_CONNECT);
  lr_relay_free(rl);

  /* the retry is paid from the budget: the floor of 10 a window, budget 0 on top */
  lr_relay_cfg cfg = {.max_attempts = 5, .backoff = {0.5, 8, 60}, .budget = 0.0, .concurrency = 100,
                      .attempt_timeout_s = 30};
  lr_endpoint_cfg eps[2] = {{.weight = 1}, {.weight = 1}};
  rl = lr_relay_new(&cfg, eps, 2, LR_STRATEGY_PRIORITY, &bcfg, 5, 0);
  lr_req rs[30];
  int retried = 0;
  for (int k = 0; k < 30; k++) {
    lr_relay_submit(rl, &rs[k], ALL(2), 0, INFINITY, 0, 0, NULL);
    poll1(rl, 0, &got, NULL);
    answer_undecodable(rl, &rs[k], 0);
    poll1(rl, 0, &got, NULL);
    if (rs[k].state == LR_REQ_SENDING) {
      retried++;
      answer(rl, &rs[k], 200, 0);
      poll1(rl, 0, &got, NULL);
    }
  }
  CHECK(retried == 10);
  lr_relay_free(rl);
}

TEST(dead_endpoint_costs_threshold_plus_probes_per_cooldown) {
  /* endpoint 0 always fails, endpoint 1 is healthy; 200 sequential requests
   * over 35 s of simulated time (cool-downs 10 s, then 20 s) */
  lr_relay *rl = make(2, LR_STRATEGY_ROUND_ROBIN, 5, 4);
  int to_dead = 0, ok = 0;
  double now = 0;
  for (int k = 0; k < 200; k++, now += 0.175) {
    lr_req r, *got;
    lr_relay_submit(rl, &r, ALL(2), 0, INFINITY, 0, 0, NULL);
    while (poll1(rl, now, &got, NULL) == 1 && r.state == LR_REQ_SENDING) {
      if (r.endpoint == 0) {
        to_dead++;
        fail_transport(rl, &r, LR_E_CONNECT, now);
      } else {
        answer(rl, &r, 200, now);
      }
    }
    ok += r.state == LR_REQ_DONE && r.kind == LR_E_NONE;
  }
  CHECK(ok == 200);
  /* 3 to open, 1 probe at 10 s (re-opens for 20 s), 1 probe at 30 s */
  CHECK(to_dead == 5);
  CHECK(lr_relay_pool(rl)->ep[0].breaker.state == LR_BREAKER_OPEN);
  CHECK(count_events(rl, LR_EV_BREAKER) >= 3);
  lr_relay_free(rl);
}

TEST(concurrency_caps_attempts_not_waiting_requests) {
  lr_relay *rl = make(2, LR_STRATEGY_PRIORITY, 5, 2);
  lr_req r[4], *out[8];
  double wake;
  for (int k = 0; k < 4; k++) lr_relay_submit(rl, &r[k], ALL(2), 0, INFINITY, 0, 0, NULL);
  CHECK(lr_relay_poll(rl, 0, out, 8, &wake) == 2);
  CHECK(lr_relay_in_flight(rl) == 2 && r[2].state == LR_REQ_READY);
  /* r0 is throttled: while it waits, its slot goes to r2 */
  answer_hints(rl, &r[0], 429, "Retry-After: 5\r\n", 0.1);
  lr_relay_poll(rl, 0.1, out, 8, &wake);
  CHECK(r[0].state == LR_REQ_SENDING && r[0].endpoint == 1); /* it failed over */
  answer(rl, &r[1], 200, 0.2);
  CHECK(lr_relay_poll(rl, 0.2, out, 8, &wake) == 2); /* r1 done, r2 sent */
  CHECK(r[2].state == LR_REQ_SENDING && r[2].endpoint == 1 && r[3].state == LR_REQ_READY);
  lr_relay_free(rl);
}

TEST(waiting_request_holds_no_slot) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 5, 1);
  lr_req a, b, *out[8];
  double wake;
  lr_relay_submit(rl, &a, ALL(1), 0, INFINITY, 0, 0, NULL);
  lr_relay_poll(rl, 0, out, 8, &wake);
  answer(rl, &a, 500, 0); /* a backs off: only one endpoint, already tried */
  lr_relay_submit(rl, &b, ALL(1), 0, INFINITY, 0, 0, NULL);
  int n = lr_relay_poll(rl, 0, out, 8, &wake);
  CHECK(a.state == LR_REQ_WAITING);
  CHECK(n == 1 && out[0] == &b && b.state == LR_REQ_SENDING);
  lr_relay_free(rl);
}

TEST(max_concurrency_queues_instead_of_failing) {
  lr_relay_cfg cfg = {.max_attempts = 5, .backoff = {0.5, 8, 60}, .budget = -1, .concurrency = 10,
                      .attempt_timeout_s = 30};
  lr_endpoint_cfg eps[1] = {{.weight = 1, .max_concurrency = 1}};
  lr_relay *rl = lr_relay_new(&cfg, eps, 1, LR_STRATEGY_WEIGHTED, &bcfg, 5, 0);
  lr_req a, b, *out[8];
  double wake;
  lr_relay_submit(rl, &a, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_submit(rl, &b, 1, 0, INFINITY, 0, 0, NULL);
  CHECK(lr_relay_poll(rl, 0, out, 8, &wake) == 1 && b.state == LR_REQ_READY);
  CHECK(lr_relay_poll(rl, 1, out, 8, &wake) == 0 && b.state == LR_REQ_READY);
  answer(rl, &a, 200, 1);
  CHECK(lr_relay_poll(rl, 1, out, 8, &wake) == 2 && b.state == LR_REQ_SENDING);
  lr_relay_free(rl);
}

TEST(retry_budget_caps_retries) {
  lr_relay_cfg cfg = {.max_attempts = 5, .backoff = {0.5, 8, 60}, .budget = 0.0, .concurrency = 100,
                      .attempt_timeout_s = 30};
  lr_endpoint_cfg eps[2] = {{.weight = 1}, {.weight = 1}};
  lr_breaker_cfg lax = bcfg;
  lax.failure_threshold = 1000;
  lr_relay *rl = lr_relay_new(&cfg, eps, 2, LR_STRATEGY_PRIORITY, &lax, 5, 0);
  lr_req r[30], *got;
  int retried = 0, gave_up = 0;
  for (int k = 0; k < 30; k++) {
    lr_relay_submit(rl, &r[k], ALL(2), 0, INFINITY, 0, 0, NULL);
    poll1(rl, 0, &got, NULL);
    answer(rl, &r[k], 500, 0);
    poll1(rl, 0, &got, NULL);
    if (r[k].state == LR_REQ_SENDING) {
      retried++;
      answer(rl, &r[k], 200, 0);
      poll1(rl, 0, &got, NULL);
    } else {
      gave_up += r[k].kind == LR_E_SERVER_ERROR;
    }
  }
  CHECK(retried == 10); /* the floor of 10 retries a window, budget 0 on top */
  CHECK(gave_up == 20);
  lr_relay_free(rl);
}

TEST(failover_from_an_unreached_endpoint_is_outside_the_budget) {
  lr_relay_cfg cfg = {.max_attempts = 5, .backoff = {0.5, 8, 60}, .budget = 0.0, .concurrency = 100,
                      .attempt_timeout_s = 30};
  lr_endpoint_cfg eps[2] = {{.weight = 1}, {.weight = 1}};
  lr_breaker_cfg lax = bcfg;
  lax.failure_threshold = 1000;
  lr_relay *rl = lr_relay_new(&cfg, eps, 2, LR_STRATEGY_PRIORITY, &lax, 5, 0);
  int retried = 0;
  for (int k = 0; k < 30; k++) {
    lr_req r, *got;
    lr_relay_submit(rl, &r, ALL(2), 0, INFINITY, 0, 0, NULL);
    poll1(rl, 0, &got, NULL);
    lr_outcome refused = {.transport = LR_E_CONNECT, .not_sent = 1};
    lr_relay_report(rl, &r, &refused, 0);
    poll1(rl, 0, &got, NULL);
    retried += r.state == LR_REQ_SENDING && r.endpoint == 1;
    if (r.state == LR_REQ_SENDING) answer(rl, &r, 200, 0);
    poll1(rl, 0, &got, NULL);
  }
  CHECK(retried == 30);
  lr_relay_free(rl);
}

TEST(attempt_timeout_is_cut_by_the_deadline) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(1), 0, 10.4, 0, 0, NULL);
  poll1(rl, 10, &got, NULL);
  CHECK_NEAR(r.attempt_timeout_s, 0.4, 1e-9);
  lr_relay_free(rl);
}

TEST(requests_queue_behind_a_half_open_probe) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 1, 8);
  lr_req f[3], a, b, *out[8];
  double wake;
  for (int k = 0; k < 3; k++) {
    lr_relay_submit(rl, &f[k], 1, 0, INFINITY, 0, 0, NULL);
    lr_relay_poll(rl, 0, out, 8, &wake);
    answer(rl, &f[k], 500, 0);
    lr_relay_poll(rl, 0, out, 8, &wake);
  }
  CHECK(lr_relay_pool(rl)->ep[0].breaker.state == LR_BREAKER_OPEN);
  lr_relay_submit(rl, &a, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_submit(rl, &b, 1, 0, INFINITY, 0, 0, NULL);
  CHECK(lr_relay_poll(rl, 10, out, 8, &wake) == 1 && a.state == LR_REQ_SENDING); /* the probe */
  CHECK(b.state == LR_REQ_READY);                                               /* queued, not failed */
  answer(rl, &a, 200, 10.1);
  CHECK(lr_relay_poll(rl, 10.1, out, 8, &wake) == 2 && b.state == LR_REQ_SENDING);
  CHECK(lr_relay_pool(rl)->ep[0].breaker.state == LR_BREAKER_CLOSED);
  lr_relay_free(rl);
}

TEST(a_busy_untried_endpoint_is_waited_for_not_backed_off_from) {
  lr_relay_cfg cfg = {.max_attempts = 5, .backoff = {0.5, 8, 60}, .budget = -1, .concurrency = 10,
                      .attempt_timeout_s = 30};
  lr_endpoint_cfg eps[2] = {{.weight = 1}, {.weight = 1, .max_concurrency = 1}};
  lr_relay *rl = lr_relay_new(&cfg, eps, 2, LR_STRATEGY_PRIORITY, &bcfg, 5, 0);
  lr_req busy, r, *out[8];
  double wake;
  lr_relay_submit(rl, &busy, 2, 0, INFINITY, 0, 0, NULL); /* holds endpoint 1's only slot */
  lr_relay_poll(rl, 0, out, 8, &wake);
  lr_relay_submit(rl, &r, 3, 0, INFINITY, 0, 0, NULL);
  lr_relay_poll(rl, 0, out, 8, &wake);
  CHECK(r.endpoint == 0);
  answer(rl, &r, 500, 0.01);
  CHECK(lr_relay_poll(rl, 0.01, out, 8, &wake) == 0);
  CHECK(r.state == LR_REQ_READY); /* queued for endpoint 1, not backing off */
  answer(rl, &busy, 200, 0.02);
  lr_relay_poll(rl, 0.02, out, 8, &wake);
  CHECK(r.state == LR_REQ_SENDING && r.endpoint == 1 && r.attempts == 2);
  lr_relay_free(rl);
}

TEST(higher_priority_first_fifo_within) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 5, 1);
  lr_req hold, lo1, mid1, hi1, mid2, hi2, *out[8];
  double wake;
  lr_relay_submit(rl, &hold, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_poll(rl, 0, out, 8, &wake); /* takes the only slot */
  lr_relay_submit(rl, &lo1, 1, 0, INFINITY, 0, -5, NULL);
  lr_relay_submit(rl, &mid1, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_submit(rl, &hi1, 1, 0, INFINITY, 0, 99, NULL); /* clamped to the maximum */
  lr_relay_submit(rl, &mid2, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_submit(rl, &hi2, 1, 0, INFINITY, 0, 10, NULL);
  CHECK(lr_relay_poll(rl, 0, out, 8, &wake) == 0); /* no slot: everyone queues */
  lr_req *order[5], *cur = &hold;
  for (int k = 0; k < 5; k++) {
    answer(rl, cur, 200, 0.1 * (k + 1));
    int n = lr_relay_poll(rl, 0.1 * (k + 1), out, 8, &wake);
    CHECK(n == 2); /* the finished one and the next */
    order[k] = out[0] == cur ? out[1] : out[0];
    cur = order[k];
  }
  CHECK(order[0] == &hi1 && order[1] == &hi2 && order[2] == &mid1 && order[3] == &mid2 && order[4] == &lo1);
  lr_relay_free(rl);
}

TEST(cancel_in_every_state) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 5, 1);
  lr_req a, b, *out[8];
  double wake;
  lr_relay_submit(rl, &a, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_submit(rl, &b, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_poll(rl, 0, out, 8, &wake);
  CHECK(a.state == LR_REQ_SENDING && b.state == LR_REQ_READY);
  CHECK(lr_relay_cancel(rl, &b, LR_E_CANCELLED, 0) == LR_REQ_READY);
  CHECK(lr_relay_cancel(rl, &a, LR_E_CANCELLED, 0) == LR_REQ_SENDING);
  CHECK(a.kind == LR_E_CANCELLED && lr_relay_in_flight(rl) == 0 && lr_relay_active(rl) == 0);
  CHECK(lr_relay_pool(rl)->ep[0].in_flight == 0);
  lr_req c;
  lr_relay_submit(rl, &c, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_poll(rl, 0, out, 8, &wake);
  answer_hints(rl, &c, 429, "Retry-After: 5\r\n", 0);
  lr_relay_poll(rl, 0, out, 8, &wake);
  CHECK(c.state == LR_REQ_WAITING);
  CHECK(lr_relay_cancel(rl, &c, LR_E_CANCELLED, 0) == LR_REQ_WAITING);
  CHECK(lr_relay_poll(rl, 100, out, 8, &wake) == 0 && isinf(wake));
  CHECK(lr_relay_active(rl) == 0);
  lr_relay_free(rl);
}

TEST(many_throttled_requests_wait_then_follow_one_probe) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 5, 1000);
  enum { N = 500 };
  lr_req *r = calloc(N, sizeof *r), *out[N], first;
  double wake;
  lr_relay_submit(rl, &first, 1, 0, INFINITY, 0, 0, NULL); /* the endpoint answers once: no warm-up limit */
  lr_relay_poll(rl, 0, out, N, &wake);
  answer(rl, &first, 200, 0);
  lr_relay_poll(rl, 0, out, N, &wake);
  for (int k = 0; k < N; k++) lr_relay_submit(rl, &r[k], 1, 0, INFINITY, 0, 0, NULL);
  CHECK(lr_relay_poll(rl, 0, out, N, &wake) == N);
  for (int k = 0; k < N; k++) answer_hints(rl, &r[k], 429, "Retry-After: 2\r\n", 0);
  lr_relay_poll(rl, 0, out, N, &wake);
  int waiting = 0;
  for (int k = 0; k < N; k++) waiting += r[k].state == LR_REQ_WAITING;
  CHECK(waiting == N);
  /* the throttle ends: one probe first (the server named no rate), not a burst of 500 */
  int sent = 0, early = 0, bad = 0;
  lr_req *probe = NULL;
  for (double t = 0; t < 3.0; t += 0.01) {
    int n = lr_relay_poll(rl, t, out, N, &wake);
    if (n && !probe) probe = out[0];
    if (t < 2.0) early += n;
    sent += n;
  }
  CHECK(sent == 1 && early == 0 && probe != NULL);
  /* the first 429 came back with all 500 in flight: the in-flight limit is half of that */
  double limit = lr_relay_pool(rl)->ep[0].limit;
  CHECK(limit >= 250 && limit < 251);
  /* the server named no rate: the others follow at a probing pace that doubles every
   * quarter second (answered at once here), never as one burst */
  int first_s = 0, second_s = 0;
  answer(rl, probe, 200, 3.0);
  for (double t = 3.0; t < 4.0; t += 0.001) {
    int n = lr_relay_poll(rl, t, out, N, &wake);
    for (int k = 0; k < n; k++) {
      if (out[k]->state != LR_REQ_SENDING) continue;
      bad += out[k]->attempts != 2;
      if (t < 3.5) first_s++; /* the first half second */
      else second_s++;
      answer(rl, out[k], 200, t);
    }
  }
  CHECK(first_s >= 2 && second_s > 2 * first_s && first_s + second_s < N - 1);
  CHECK(bad == 0);
  free(r);
  lr_relay_free(rl);
}

TEST(stream_failure_before_delivery_fails_over_after_it_is_final) {
  lr_relay *rl = make(2, LR_STRATEGY_PRIORITY, 5, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(2), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  /* cut with events received but none taken by the caller: a normal failover */
  lr_outcome cut = {.transport = LR_E_CONNECT, .message = "cut", .partial = 1};
  lr_relay_report(rl, &r, &cut, 0.1);
  CHECK(r.state == LR_REQ_READY && r.kind == LR_E_CONNECT);
  CHECK(poll1(rl, 0.1, &got, NULL) == 1 && got == &r && r.endpoint == 1 && r.attempts == 2);
  /* the caller has events now: the same failure ends the request, no third attempt */
  lr_outcome cut2 = {.transport = LR_E_CONNECT, .message = "cut", .committed = 1, .partial = 1};
  lr_relay_report(rl, &r, &cut2, 0.2);
  CHECK(poll1(rl, 0.2, &got, NULL) == 1 && got == &r);
  CHECK(r.state == LR_REQ_DONE && r.kind == LR_E_STREAM_INTERRUPTED && r.attempts == 2);
  /* an error event (SERVER_ERROR) before delivery is retried like a 5xx */
  lr_req q;
  lr_relay_submit(rl, &q, ALL(2), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0.3, &got, NULL);
  lr_outcome ev = {.status = 200, .transport = LR_E_SERVER_ERROR, .message = "error event"};
  lr_relay_report(rl, &q, &ev, 0.4);
  CHECK(q.state == LR_REQ_READY);
  lr_relay_free(rl);
}

TEST(stream_whose_last_attempt_sent_events_ends_interrupted) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 1, 4);
  lr_req r, *got;
  lr_relay_submit(rl, &r, ALL(1), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0, &got, NULL);
  lr_outcome cut = {.transport = LR_E_CONNECT, .message = "cut", .partial = 1};
  lr_relay_report(rl, &r, &cut, 0.1); /* max_attempts reached: the events it sent are the answer so far */
  CHECK(poll1(rl, 0.1, &got, NULL) == 1 && got == &r);
  CHECK(r.kind == LR_E_STREAM_INTERRUPTED);
  /* without events it is the plain failure */
  lr_req q;
  lr_relay_submit(rl, &q, ALL(1), 0, INFINITY, 0, 0, NULL);
  poll1(rl, 0.2, &got, NULL);
  lr_outcome cut2 = {.transport = LR_E_CONNECT, .message = "cut"};
  lr_relay_report(rl, &q, &cut2, 0.3);
  poll1(rl, 0.3, &got, NULL);
  CHECK(q.state == LR_REQ_DONE && q.kind == LR_E_CONNECT);
  lr_relay_free(rl);
}

TEST(bare_429_is_paced_not_slept_on) {
  lr_relay *rl = make(1, LR_STRATEGY_PRIORITY, 5, 64);
  lr_req r[26], *out[64];
  double wake;
  for (int k = 0; k < 26; k++) lr_relay_submit(rl, &r[k], ALL(1), 0, INFINITY, 0, 0, NULL);
  int ok = 0;
  lr_req *last = NULL;
  for (int round = 0; round < 10 && !last; round++) { /* 25 answered, the 26th meets the empty bucket */
    int got = lr_relay_poll(rl, 0.001 * round, out, 64, &wake);
    for (int k = 0; k < got; k++) {
      if (out[k]->state != LR_REQ_SENDING) continue; /* a finished one */
      if (ok < 25) {
        answer(rl, out[k], 200, 0.001 * round);
        ok++;
      } else {
        last = out[k];
      }
    }
  }
  CHECK(ok == 25 && last);
  count_events(rl, LR_EV_THROTTLE); /* drains the queue */
  answer(rl, last, 429, 0.02); /* no Retry-After, no x-ratelimit-*: a bare 429 */
  lr_event ev[8];
  int n = lr_relay_events(rl, ev, 8), thr = 0;
  for (int k = 0; k < n; k++)
    if (ev[k].type == LR_EV_THROTTLE) {
      thr++;
      CHECK(ev[k].delay_s == 0 && ev[k].status == 429);
    }
  CHECK(thr == 1);
  int got = lr_relay_poll(rl, 0.02, out, 64, &wake);
  for (int k = 0; k < got; k++) CHECK(out[k]->state == LR_REQ_DONE); /* only the 25 finished */
  /* the retry waits for the learnt pace (25 answered in the last second: 1/25 s, plus
   * up to 10 % spread), not base_delay (0.5 s) */
  CHECK(wake >= 0.02 + 1.0 / 25 - 1e-9 && wake <= 0.02 + 1.1 / 25 + 1e-9);
  CHECK(lr_relay_poll(rl, wake, out, 64, &wake) == 1 && out[0] == last && last->state == LR_REQ_SENDING &&
        last->attempts == 2);
  answer(rl, last, 200, 0.07);
  lr_relay_poll(rl, 0.07, out, 64, &wake);
  CHECK(last->kind == LR_E_NONE && lr_relay_pool(rl)->ep[0].learnt.bare);
  lr_relay_free(rl);
}

int main(void) {
  RUN(stream_failure_before_delivery_fails_over_after_it_is_final);
  RUN(stream_whose_last_attempt_sent_events_ends_interrupted);
  RUN(success_in_one_attempt);
  RUN(server_error_fails_over_at_once);
  RUN(connect_and_timeout_fail_over);
  RUN(invalid_request_is_never_retried);
  RUN(rate_limited_waits_for_retry_after_ms_not_longer);
  RUN(request_id_is_the_last_answers);
  RUN(rate_limited_fails_over_to_an_endpoint_with_capacity);
  RUN(server_delay_beyond_max_retry_after_gives_up_with_hint);
  RUN(deadline_fails_fast_when_nothing_is_usable_in_time);
  RUN(timeout_after_deadline_is_deadline);
  RUN(max_attempts_ends_with_last_error);
  RUN(every_endpoint_failed_backs_off_with_jitter);
  RUN(not_found_excludes_the_endpoint);
  RUN(no_endpoint_for_model);
  RUN(bad_body_and_should_retry);
  RUN(undecodable_2xx_goes_elsewhere_never_back);
  RUN(dead_endpoint_costs_threshold_plus_probes_per_cooldown);
  RUN(concurrency_caps_attempts_not_waiting_requests);
  RUN(waiting_request_holds_no_slot);
  RUN(max_concurrency_queues_instead_of_failing);
  RUN(retry_budget_caps_retries);
  RUN(failover_from_an_unreached_endpoint_is_outside_the_budget);
  RUN(attempt_timeout_is_cut_by_the_deadline);
  RUN(requests_queue_behind_a_half_open_probe);
  RUN(a_busy_untried_endpoint_is_waited_for_not_backed_off_from);
  RUN(higher_priority_first_fifo_within);
  RUN(cancel_in_every_state);
  RUN(many_throttled_requests_wait_then_follow_one_probe);
  RUN(bare_429_is_paced_not_slept_on);
  CTEST_END();
}
