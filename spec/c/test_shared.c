/* State shared across processes (csrc/shared.c): what import, admit and
 * export make of the shared numbers; lr_relay_unsend, which undoes an attempt
 * the shared state refused; and a simulation of several processes (separate
 * relays) sharing one record per endpoint, as nginx workers share a
 * lua_shared_dict, in front of an endpoint that always fails. */
#include <math.h>
#include <stdlib.h>

#include "ctest.h"
#include "relay.h"
#include "shared.h"

static const lr_breaker_cfg BCFG = {.failure_threshold = 3, .failure_rate = 0.5, .min_calls = 100, .window_s = 30,
                                    .cooldown_s = 10, .max_cooldown_s = 40, .half_open_probes = 1};

static void make_pool(lr_pool *p, int n, const lr_breaker_cfg *bc, int max_concurrency) {
  lr_endpoint_cfg eps[4];
  for (int i = 0; i < n; i++) eps[i] = (lr_endpoint_cfg){.weight = 1, .max_concurrency = max_concurrency};
  lr_pool_init(p, eps, n, LR_STRATEGY_PRIORITY, bc, 0);
}

/* Endpoint i's local breaker opened by its own failures at t. */
static void fail_locally(lr_pool *p, int i, int times, double t) {
  for (int k = 0; k < times; k++) {
    int probe = lr_pool_on_send(p, i, 0, t);
    lr_pool_on_result(p, i, LR_VERDICT_FAILURE, -1, t, probe);
  }
}

static lr_breaker_state state(const lr_pool *p, int i) { return p->ep[i].breaker.state; }

static int admit(const lr_pool *p, int i, lr_shared_view v, int probe, double now, double *at) {
  *at = -1;
  return lr_shared_admit(p, i, &v, probe, now, at);
}

/* ---- import ---------------------------------------------------------------- */

TEST(import_adopts_a_later_throttle_and_proof) {
  lr_pool p;
  make_pool(&p, 2, &BCFG, 0);
  lr_shared_view v = {.throttled_until = 5};
  CHECK(lr_shared_import(&p, 0, &v, 1) == 0); /* the breaker did not change */
  CHECK(p.ep[0].throttled_until == 5);
  CHECK(p.ep[1].throttled_until < 0); /* only endpoint 0 */
  double at;
  int why;
  CHECK(!lr_pool_usable(&p, 0, 0, 1, &at, &why));
  CHECK(at == 5 && (why & LR_BLOCK_THROTTLE));
  v.throttled_until = 3; /* an earlier one does not shorten ours */
  lr_shared_import(&p, 0, &v, 1);
  CHECK(p.ep[0].throttled_until == 5);
  v.throttled_until = 8;
  lr_shared_import(&p, 0, &v, 1);
  CHECK(p.ep[0].throttled_until == 8);
  /* another process had an answer from it: no warm-up cap here either */
  CHECK(!p.ep[0].reachable);
  v.proven = 1;
  lr_shared_import(&p, 0, &v, 1);
  CHECK(p.ep[0].reachable);
  CHECK(state(&p, 0) == LR_BREAKER_CLOSED);
  lr_pool_free(&p);
}

TEST(import_opens_while_another_process_holds_it_open) {
  lr_pool p;
  make_pool(&p, 1, &BCFG, 0);
  lr_shared_view v = {.open_until = 20, .cooldown_s = 15, .fails = 3};
  CHECK(lr_shared_import(&p, 0, &v, 5) == 1);
  const lr_breaker *b = &p.ep[0].breaker;
  CHECK(b->state == LR_BREAKER_OPEN && b->open_until == 20 && b->cooldown_s == 15 && b->times_opened == 1);
  double at;
  int why;
  CHECK(!lr_pool_usable(&p, 0, 0, 5, &at, &why));
  CHECK(at == 20 && (why & LR_BLOCK_BREAKER));
  CHECK(lr_shared_import(&p, 0, &v, 6) == 0); /* already open */
  v.open_until = 25;                          /* held open longer elsewhere */
  CHECK(lr_shared_import(&p, 0, &v, 6) == 0);
  CHECK(b->open_until == 25 && b->times_opened == 1);
  v.open_until = 22; /* an earlier end does not shorten ours */
  lr_shared_import(&p, 0, &v, 6);
  CHECK(b->open_until == 25);
  /* cool-down over: half-open, probes as usual */
  CHECK(lr_pool_usable(&p, 0, 0, 25, NULL, NULL));
  CHECK(b->state == LR_BREAKER_HALF_OPEN);
  lr_pool_free(&p);

  /* no cool-down in the record: ours is kept */
  make_pool(&p, 1, &BCFG, 0);
  lr_shared_view w = {.open_until = 20, .cooldown_s = 0, .fails = 3};
  CHECK(lr_shared_import(&p, 0, &w, 5) == 1);
  CHECK(p.ep[0].breaker.cooldown_s == 10 && p.ep[0].breaker.open_until == 20);
  lr_pool_free(&p);

  /* an open period that is over opens nothing */
  make_pool(&p, 1, &BCFG, 0);
  lr_shared_view old = {.open_until = 4, .cooldown_s = 10, .fails = 0};
  CHECK(lr_shared_import(&p, 0, &old, 5) == 0);
  CHECK(state(&p, 0) == LR_BREAKER_CLOSED);
  lr_pool_free(&p);
}

TEST(import_opens_when_shared_failures_reach_the_threshold) {
  lr_pool p;
  make_pool(&p, 1, &BCFG, 0);
  lr_shared_view v = {.fails = 2};
  CHECK(lr_shared_import(&p, 0, &v, 1) == 0);
  CHECK(state(&p, 0) == LR_BREAKER_CLOSED && p.ep[0].breaker.consecutive_failures == 2);
  /* one failure of our own is the third in a row across processes */
  fail_locally(&p, 0, 1, 1);
  CHECK(state(&p, 0) == LR_BREAKER_OPEN);
  lr_pool_free(&p);

  make_pool(&p, 1, &BCFG, 0);
  v.fails = 3; /* no process opened it yet: it opens here for our cool-down */
  CHECK(lr_shared_import(&p, 0, &v, 2) == 1);
  CHECK(state(&p, 0) == LR_BREAKER_OPEN);
  CHECK(p.ep[0].breaker.open_until == 12 && p.ep[0].breaker.times_opened == 1);
  lr_pool_free(&p);

  /* a success elsewhere broke the run: ours starts again from the shared count */
  make_pool(&p, 1, &BCFG, 0);
  fail_locally(&p, 0, 2, 1);
  lr_shared_view ok = {.fails = 0};
  lr_shared_import(&p, 0, &ok, 1);
  CHECK(p.ep[0].breaker.consecutive_failures == 0);
  fail_locally(&p, 0, 2, 1);
  CHECK(state(&p, 0) == LR_BREAKER_CLOSED);
  lr_pool_free(&p);
}

TEST(import_of_an_expired_open_period_goes_half_open_not_open_again) {
  lr_pool p;
  make_pool(&p, 1, &BCFG, 0);
  /* another process opened it until 10; nobody has probed yet; we look at 10.5 */
  lr_shared_view v = {.fails = 3, .open_until = 10, .cooldown_s = 10};
  CHECK(lr_shared_import(&p, 0, &v, 10.5) == 1);
  double at;
  int why;
  CHECK(lr_pool_usable(&p, 0, 0, 10.5, &at, &why) == 1); /* a probe may go now */
  CHECK(state(&p, 0) == LR_BREAKER_HALF_OPEN);
  CHECK(lr_pool_on_send(&p, 0, 0, 10.5) == 1);           /* and it is a probe */
  lr_pool_free(&p);
}

TEST(import_closes_when_a_probe_elsewhere_succeeded_but_not_while_failures_run) {
  lr_pool p;
  /* open, by our own failures */
  make_pool(&p, 1, &BCFG, 0);
  fail_locally(&p, 0, 3, 1);
  CHECK(state(&p, 0) == LR_BREAKER_OPEN);
  lr_shared_view still = {.fails = 3, .open_until = 0};
  CHECK(lr_shared_import(&p, 0, &still, 2) == 0);
  CHECK(state(&p, 0) == LR_BREAKER_OPEN);
  lr_shared_view one = {.fails = 1, .open_until = 0};
  CHECK(lr_shared_import(&p, 0, &one, 2) == 0);
  CHECK(state(&p, 0) == LR_BREAKER_OPEN);
  lr_shared_view closed = {.fails = 0, .open_until = 0, .cooldown_s = 10};
  CHECK(lr_shared_import(&p, 0, &closed, 2) == 1);
  CHECK(state(&p, 0) == LR_BREAKER_CLOSED && p.ep[0].breaker.consecutive_failures == 0);
  CHECK(lr_pool_usable(&p, 0, 0, 2, NULL, NULL));
  CHECK(lr_shared_import(&p, 0, &closed, 2) == 0); /* already closed */
  lr_pool_free(&p);

  /* half-open with our probe in flight; the failed probe had doubled the cool-down */
  make_pool(&p, 1, &BCFG, 0);
  fail_locally(&p, 0, 3, 0);
  CHECK(lr_pool_usable(&p, 0, 0, 10, NULL, NULL)); /* half-open */
  fail_locally(&p, 0, 1, 10);                      /* the probe fails: open for 20 s */
  CHECK(p.ep[0].breaker.cooldown_s == 20);
  CHECK(lr_pool_usable(&p, 0, 0, 30, NULL, NULL));
  CHECK(lr_pool_on_send(&p, 0, 0, 30) == 1);
  CHECK(state(&p, 0) == LR_BREAKER_HALF_OPEN && p.ep[0].breaker.probes_in_flight == 1);
  CHECK(!lr_pool_usable(&p, 0, 0, 30, NULL, NULL)); /* the probe slot is taken */
  lr_shared_view fails_on = {.fails = 4, .open_until = 0};
  CHECK(lr_shared_import(&p, 0, &fails_on, 30) == 0);
  CHECK(state(&p, 0) == LR_BREAKER_HALF_OPEN);
  CHECK(lr_shared_import(&p, 0, &closed, 30) == 1);
  const lr_breaker *b = &p.ep[0].breaker;
  CHECK(b->state == LR_BREAKER_CLOSED && b->probes_in_flight == 0 && b->cooldown_s == 10);
  CHECK(lr_pool_usable(&p, 0, 0, 30, NULL, NULL));
  lr_pool_free(&p);
}

/* ---- admit ----------------------------------------------------------------- */

TEST(admit_refuses_while_another_process_holds_it_open) {
  lr_pool p;
  make_pool(&p, 1, &BCFG, 0);
  double at;
  lr_shared_view v = {.fails = 3, .open_until = 20, .in_flight = 1, .proven = 1};
  CHECK(!admit(&p, 0, v, 0, 5, &at));
  CHECK(at == 20);
  CHECK(!admit(&p, 0, v, 1, 5, &at)); /* a probe of ours too */
  CHECK(at == 20);
  v.open_until = 5; /* over at now exactly */
  CHECK(admit(&p, 0, v, 1, 5, &at));
  CHECK(at == 5);
  lr_pool_free(&p);
}

TEST(admit_keeps_failures_plus_in_flight_within_the_threshold) {
  lr_pool p;
  make_pool(&p, 1, &BCFG, 0);
  double at;
  /* in_flight counts this attempt: 1 failure + 2 in flight = 3 = threshold */
  lr_shared_view v = {.fails = 1, .in_flight = 2, .proven = 1};
  CHECK(admit(&p, 0, v, 0, 5, &at) && at == 5);
  v.in_flight = 3;
  CHECK(!admit(&p, 0, v, 0, 5, &at));
  CHECK(at > 5 && at <= 5.1); /* looks again soon: a release elsewhere frees it */
  v.fails = 2, v.in_flight = 1;
  CHECK(admit(&p, 0, v, 0, 5, &at));
  v.in_flight = 2;
  CHECK(!admit(&p, 0, v, 0, 5, &at));
  v.fails = 3, v.in_flight = 1; /* the threshold reached, nobody opened it yet */
  CHECK(!admit(&p, 0, v, 0, 5, &at));
  lr_pool_free(&p);
}

TEST(admit_a_proven_endpoint_without_failures_however_many_are_in_flight) {
  lr_pool p;
  make_pool(&p, 1, &BCFG, 0);
  double at;
  lr_shared_view v = {.fails = 0, .in_flight = 500, .proven = 1};
  CHECK(admit(&p, 0, v, 0, 5, &at) && at == 5);
  /* a connection this process made is not an answer: still the warm-up */
  v.proven = 0;
  CHECK(!admit(&p, 0, v, 0, 5, &at));
  lr_pool_reached(&p, 0);
  CHECK(!admit(&p, 0, v, 0, 5, &at));
  lr_pool_free(&p);
}

TEST(admit_caps_an_unproven_endpoint_at_the_warm_up) {
  lr_pool p;
  make_pool(&p, 1, &BCFG, 0);
  double at;
  lr_shared_view v = {.fails = 0, .in_flight = LR_WARMUP_IN_FLIGHT, .proven = 0};
  CHECK(admit(&p, 0, v, 0, 5, &at));
  v.in_flight = LR_WARMUP_IN_FLIGHT + 1;
  CHECK(!admit(&p, 0, v, 0, 5, &at));
  CHECK(at > 5 && at <= 5.1);
  v.proven = 1;
  CHECK(admit(&p, 0, v, 0, 5, &at));
  lr_pool_free(&p);
}

TEST(admit_half_open_probes_across_processes) {
  lr_pool p;
  make_pool(&p, 1, &BCFG, 0);
  double at;
  /* past the threshold (a probe's failures are counted too), not held open */
  lr_shared_view v = {.fails = 7, .open_until = 0, .in_flight = 1, .proven = 1};
  CHECK(admit(&p, 0, v, 1, 5, &at) && at == 5);
  v.in_flight = 2; /* a probe of another process is out */
  CHECK(!admit(&p, 0, v, 1, 5, &at));
  CHECK(at > 5 && at <= 5.1);
  CHECK(!admit(&p, 0, v, 0, 5, &at)); /* and no plain attempt either */
  lr_pool_free(&p);

  lr_breaker_cfg two = BCFG;
  two.half_open_probes = 2;
  make_pool(&p, 1, &two, 0);
  v.in_flight = 2;
  CHECK(admit(&p, 0, v, 1, 5, &at));
  v.in_flight = 3;
  CHECK(!admit(&p, 0, v, 1, 5, &at));
  lr_pool_free(&p);
}

TEST(admit_max_concurrency_across_processes) {
  lr_pool p;
  make_pool(&p, 1, &BCFG, 2);
  double at;
  lr_shared_view v = {.fails = 0, .in_flight = 2, .proven = 1};
  CHECK(admit(&p, 0, v, 0, 5, &at));
  v.in_flight = 3; /* two in flight in other processes, ours is the third */
  CHECK(!admit(&p, 0, v, 0, 5, &at));
  CHECK(at > 5 && at <= 5.1);
  lr_pool_free(&p);
}

TEST(admit_waits_for_a_shared_throttle) {
  lr_pool p;
  make_pool(&p, 1, &BCFG, 0);
  double at;
  lr_shared_view v = {.throttled_until = 9, .in_flight = 1, .proven = 1};
  CHECK(!admit(&p, 0, v, 0, 5, &at));
  CHECK(at == 9);
  v.open_until = 12; /* the later of the two */
  CHECK(!admit(&p, 0, v, 0, 5, &at));
  CHECK(at == 12);
  lr_pool_free(&p);
}

/* ---- export ---------------------------------------------------------------- */

TEST(export_fields) {
  lr_pool p;
  make_pool(&p, 2, &BCFG, 0);
  lr_shared_view x;
  memset(&x, 0x5A, sizeof x);
  lr_shared_export(&p, 0, 1, &x);
  CHECK(x.fails == 0 && x.open_until == 0 && x.cooldown_s == 10 && x.throttled_until == 0);
  CHECK(x.in_flight == 0 && x.proven == 0);

  fail_locally(&p, 0, 2, 1);
  lr_pool_on_send(&p, 0, 0, 1); /* one in flight */
  lr_pool_reached(&p, 0);
  lr_shared_export(&p, 0, 1, &x);
  CHECK(x.fails == 2 && x.open_until == 0 && x.in_flight == 1 && x.proven == 1);

  lr_pool_on_result(&p, 0, LR_VERDICT_FAILURE, -1, 2, 0); /* the third: open until 12 */
  lr_pool_throttle(&p, 0, 2, 3);
  lr_shared_export(&p, 0, 2, &x);
  CHECK(x.fails == 3 && x.open_until == 12 && x.cooldown_s == 10 && x.throttled_until == 5 && x.in_flight == 0);
  lr_shared_export(&p, 0, 6, &x); /* the throttle is over */
  CHECK(x.throttled_until == 0 && x.open_until == 12);
  lr_shared_export(&p, 0, 12, &x); /* the open period is over: nobody holds it open */
  CHECK(x.open_until == 0);
  /* a failed probe doubles the cool-down, and says so */
  CHECK(lr_pool_usable(&p, 0, 0, 12, NULL, NULL));
  fail_locally(&p, 0, 1, 12);
  lr_shared_export(&p, 0, 13, &x);
  CHECK(x.open_until == 32 && x.cooldown_s == 20);
  /* the other endpoint is untouched */
  lr_shared_export(&p, 1, 13, &x);
  CHECK(x.fails == 0 && x.open_until == 0 && x.in_flight == 0 && x.proven == 0);
  lr_pool_free(&p);
}

TEST(export_then_import_round_trip) {
  /* what one process exports makes another refuse, then open */
  lr_pool a, b;
  make_pool(&a, 1, &BCFG, 0);
  make_pool(&b, 1, &BCFG, 0);
  fail_locally(&a, 0, 3, 1);
  lr_shared_view x;
  lr_shared_export(&a, 0, 1, &x);
  x.in_flight = 1; /* b's attempt */
  double at;
  CHECK(!admit(&b, 0, x, 0, 1.5, &at) && at == 11);
  CHECK(lr_shared_import(&b, 0, &x, 1.5) == 1);
  CHECK(state(&b, 0) == LR_BREAKER_OPEN && b.ep[0].breaker.open_until == 11);
  lr_pool_free(&a);
  lr_pool_free(&b);
}

/* ---- lr_relay_unsend --------------------------------------------------------- */

static lr_relay *make_relay(int n, double budget, const lr_endpoint_cfg *eps_in, const lr_breaker_cfg *bc) {
  lr_relay_cfg cfg = {.max_attempts = 50,
                      .backoff = {.base_delay_s = 0.5, .max_delay_s = 8, .max_retry_after_s = 60},
                      .budget = budget,
                      .concurrency = 16,
                      .attempt_timeout_s = 30};
  lr_endpoint_cfg eps[4];
  for (int i = 0; i < n; i++) eps[i] = eps_in ? eps_in[i] : (lr_endpoint_cfg){.weight = 1};
  lr_relay *rl = lr_relay_new(&cfg, eps, n, LR_STRATEGY_PRIORITY, bc ? bc : &BCFG, 99, 0);
  lr_relay_enable_events(rl, 1);
  return rl;
}

static int poll_all(lr_relay *rl, double now, lr_req **out, double *wake) {
  double w;
  return lr_relay_poll(rl, now, out, 16, wake ? wake : &w);
}

static void report(lr_relay *rl, lr_req *r, int status, double now) {
  lr_outcome o = {.status = status, .transport = LR_E_NONE, .body_ok = 1};
  lr_relay_report(rl, r, &o, now);
}

static int count_events(lr_relay *rl, lr_event_type t) {
  lr_event ev[256];
  int n = lr_relay_events(rl, ev, 256), c = 0;
  for (int k = 0; k < n; k++) c += ev[k].type == t;
  return c;
}

TEST(unsend_restores_counts_and_the_request_is_picked_again_elsewhere) {
  lr_relay *rl = make_relay(2, -1, NULL, NULL);
  lr_pool *p = lr_relay_pool(rl);
  lr_req r, *out[16];
  lr_relay_submit(rl, &r, 3, 0, INFINITY, 0, 0, NULL);
  CHECK(poll_all(rl, 1, out, NULL) == 1 && out[0] == &r);
  CHECK(r.state == LR_REQ_SENDING && r.endpoint == 0 && r.attempts == 1);
  CHECK(lr_relay_in_flight(rl) == 1 && p->ep[0].in_flight == 1 && p->ep[0].requests == 1);
  lr_relay_unsend(rl, &r, 1.5, 1); /* the shared state refused endpoint 0 until 1.5 */
  CHECK(r.state == LR_REQ_READY && r.attempts == 0 && r.endpoint == -1 && r.probe == 0);
  CHECK(lr_relay_in_flight(rl) == 0 && p->ep[0].in_flight == 0 && p->ep[0].requests == 0);
  CHECK(lr_relay_active(rl) == 1);
  double at;
  int why;
  CHECK(!lr_pool_usable(p, 0, 0, 1, &at, &why) && at == 1.5);
  /* picked again at once, by the other endpoint; still its first attempt */
  CHECK(poll_all(rl, 1, out, NULL) == 1 && out[0] == &r);
  CHECK(r.state == LR_REQ_SENDING && r.endpoint == 1 && r.attempts == 1);
  CHECK(count_events(rl, LR_EV_FAILOVER) == 0); /* nothing failed */
  report(rl, &r, 200, 1.1);
  CHECK(poll_all(rl, 1.1, out, NULL) == 1 && r.state == LR_REQ_DONE && r.kind == LR_E_NONE);
  CHECK(r.attempts == 1 && r.last_endpoint == 1);
  CHECK(p->ep[0].requests == 0 && p->ep[1].requests == 1);
  /* once the block is over, endpoint 0 is first again */
  lr_req s;
  lr_relay_submit(rl, &s, 3, 0, INFINITY, 0, 0, NULL);
  CHECK(poll_all(rl, 1.5, out, NULL) == 1 && s.endpoint == 0);
  lr_relay_free(rl);
}

TEST(unsend_goes_back_to_the_front_of_its_queue) {
  lr_relay *rl = make_relay(1, -1, NULL, NULL);
  lr_req a, b, *out[16];
  lr_relay_submit(rl, &a, 1, 0, INFINITY, 0, 0, NULL);
  CHECK(poll_all(rl, 0, out, NULL) == 1 && out[0] == &a);
  lr_relay_submit(rl, &b, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_unsend(rl, &a, 0, 0); /* refused, no block: it may go again now */
  CHECK(poll_all(rl, 0, out, NULL) == 2 && out[0] == &a && out[1] == &b);
  CHECK(a.attempts == 1 && b.attempts == 1);
  /* unsend of a request that is not being sent changes nothing */
  report(rl, &a, 200, 0.1);
  lr_relay_unsend(rl, &a, 5, 0.1);
  CHECK(a.state == LR_REQ_DONE && a.attempts == 1);
  CHECK(poll_all(rl, 0.1, out, NULL) == 1 && out[0] == &a);
  CHECK(lr_relay_in_flight(rl) == 1);
  lr_relay_free(rl);
}

TEST(unsend_refunds_the_limiter) {
  /* rpm 6: a bucket of one request; tpm 600: a bucket of 100 tokens */
  lr_endpoint_cfg eps[1] = {{.weight = 1, .rpm = 6, .tpm = 600}};
  lr_relay *rl = make_relay(1, -1, eps, NULL);
  lr_pool *p = lr_relay_pool(rl);
  lr_req r, *out[16];
  lr_relay_submit(rl, &r, 1, 100, INFINITY, 0, 0, NULL);
  CHECK(poll_all(rl, 0, out, NULL) == 1 && r.state == LR_REQ_SENDING);
  CHECK(lr_limiter_available_at(&p->ep[0].limiter, 100, 0) > 1); /* both buckets spent */
  CHECK(lr_limiter_available_at(&p->ep[0].limiter, 0, 0) > 1);
  lr_relay_unsend(rl, &r, 0, 0);
  CHECK_NEAR(lr_limiter_available_at(&p->ep[0].limiter, 100, 0), 0, 1e-9);
  CHECK_NEAR(p->ep[0].limiter.requests.level, 1, 1e-9);
  CHECK_NEAR(p->ep[0].limiter.tokens.level, 100, 1e-9);
  /* so it goes again at once, not after the buckets refill */
  CHECK(poll_all(rl, 0, out, NULL) == 1 && r.state == LR_REQ_SENDING && r.attempts == 1);
  lr_relay_free(rl);
}

TEST(unsend_frees_a_half_open_probe_slot) {
  lr_relay *rl = make_relay(2, -1, NULL, NULL);
  lr_pool *p = lr_relay_pool(rl);
  lr_req r, s, *out[16];
  /* endpoint 0 opens (three 500s in a row), endpoint 1 answers */
  for (int k = 0; k < 3; k++) {
    lr_relay_submit(rl, &r, 3, 0, INFINITY, 0, 0, NULL);
    poll_all(rl, 0, out, NULL);
    CHECK(r.endpoint == 0);
    report(rl, &r, 500, 0);
    poll_all(rl, 0, out, NULL);
    CHECK(r.endpoint == 1);
    report(rl, &r, 200, 0);
    poll_all(rl, 0, out, NULL);
  }
  CHECK(p->ep[0].breaker.state == LR_BREAKER_OPEN);
  lr_relay_submit(rl, &r, 3, 0, INFINITY, 0, 0, NULL);
  CHECK(poll_all(rl, 10, out, NULL) == 1);
  CHECK(r.endpoint == 0 && r.probe == 1 && p->ep[0].breaker.probes_in_flight == 1);
  /* the slot is taken: another request goes to endpoint 1 */
  lr_relay_submit(rl, &s, 3, 0, INFINITY, 0, 0, NULL);
  CHECK(poll_all(rl, 10, out, NULL) == 1 && s.endpoint == 1 && s.probe == 0);
  report(rl, &s, 200, 10);
  poll_all(rl, 10, out, NULL);
  /* the shared state refuses the probe (another process probes), for a moment */
  lr_relay_unsend(rl, &r, 10.01, 10);
  CHECK(r.probe == 0 && p->ep[0].breaker.probes_in_flight == 0);
  CHECK(p->ep[0].breaker.state == LR_BREAKER_HALF_OPEN);
  CHECK(poll_all(rl, 10, out, NULL) == 1 && r.endpoint == 1); /* elsewhere meanwhile */
  report(rl, &r, 200, 10);
  poll_all(rl, 10, out, NULL);
  /* the slot is free again: the next request is this process's probe */
  lr_relay_submit(rl, &s, 3, 0, INFINITY, 0, 0, NULL);
  CHECK(poll_all(rl, 10.02, out, NULL) == 1 && s.endpoint == 0 && s.probe == 1);
  report(rl, &s, 200, 10.1);
  CHECK(p->ep[0].breaker.state == LR_BREAKER_CLOSED);
  lr_relay_free(rl);
}

TEST(unsend_does_not_spend_the_retry_budget) {
  /* budget 0: the floor of 10 retries per window and no more */
  lr_relay *rl = make_relay(2, 0, NULL, NULL);
  lr_req r, *out[16];
  lr_relay_submit(rl, &r, 3, 0, INFINITY, 0, 0, NULL);
  poll_all(rl, 0, out, NULL);
  report(rl, &r, 500, 0);
  CHECK(poll_all(rl, 0, out, NULL) == 1 && r.endpoint == 1 && r.attempts == 2); /* a retry */
  for (int k = 0; k < 30; k++) {
    lr_relay_unsend(rl, &r, 0, 0);
    CHECK(r.attempts == 1);
    CHECK(poll_all(rl, 0, out, NULL) == 1);
    CHECK(r.state == LR_REQ_SENDING && r.attempts == 2);
  }
  report(rl, &r, 200, 0.1);
  poll_all(rl, 0.1, out, NULL);
  CHECK(r.kind == LR_E_NONE && r.attempts == 2);
  lr_relay_free(rl);
}

/* ---- several processes sharing one record per endpoint ------------------- */

/* The store: what a lua_shared_dict holds for one endpoint. */
typedef struct {
  double fails, open_until, cooldown, throttled_until, in_flight;
  int proven;
} record;

#define SIM_PROCS 4
#define SIM_SLOTS 64
#define SIM_EPOCHS 32

typedef struct {
  lr_req r;
  int used;
  double answer_at;
} sim_slot;

typedef struct {
  lr_relay *rl;
  sim_slot slot[SIM_SLOTS];
} sim_proc;

typedef struct {
  record rec[2];
  int use_admit;
  int epoch;                  /* how often a process opened the shared record from closed */
  int sends[SIM_EPOCHS];      /* attempts sent to the dead endpoint, by epoch */
  int sent_while_open;        /* attempts sent to it while the record held it open */
  int refused, ok, failed, submitted;
} sim;

static lr_shared_view view_of(const record *d) {
  lr_shared_view v = {.fails = d->fails, .open_until = d->open_until, .cooldown_s = d->cooldown,
                      .throttled_until = d->throttled_until, .in_flight = d->in_flight, .proven = d->proven};
  return v;
}

/* The process writes what it knows: an open period (the later one wins). */
static void publish(sim *s, lr_pool *p, int i, double now) {
  record *d = &s->rec[i];
  lr_shared_view x;
  lr_shared_export(p, i, now, &x);
  if (x.open_until > d->open_until) {
    if (d->open_until <= now && s->epoch < SIM_EPOCHS - 1) s->epoch++;
    d->open_until = x.open_until;
    d->cooldown = x.cooldown_s;
  }
  if (x.throttled_until > d->throttled_until) d->throttled_until = x.throttled_until;
}

static void sim_answer(sim *s, sim_proc *pr, sim_slot *sl, double now) {
  lr_req *r = &sl->r;
  int i = r->endpoint, probe = r->probe;
  record *d = &s->rec[i];
  lr_outcome o = {.status = i == 0 ? 500 : 200, .transport = LR_E_NONE, .body_ok = 1};
  lr_relay_report(pr->rl, r, &o, now);
  d->in_flight--;
  d->proven = 1;
  if (r->verdict == LR_VERDICT_FAILURE) d->fails++;
  if (r->verdict == LR_VERDICT_SUCCESS) {
    d->fails = 0;
    if (probe) d->open_until = 0; /* our probe closed it: for everyone */
  }
  publish(s, lr_relay_pool(pr->rl), i, now);
}

static void sim_tick(sim *s, sim_proc *pr, double now) {
  lr_pool *p = lr_relay_pool(pr->rl);
  for (int k = 0; k < SIM_SLOTS; k++) {
    sim_slot *sl = &pr->slot[k];
    if (sl->used && sl->r.state == LR_REQ_SENDING && sl->answer_at <= now) sim_answer(s, pr, sl, now);
  }
  for (int k = 0; k < SIM_SLOTS; k++) /* a new request every tick */
    if (!pr->slot[k].used) {
      pr->slot[k].used = 1;
      lr_relay_submit(pr->rl, &pr->slot[k].r, 3, 0, INFINITY, 0, 0, &pr->slot[k]);
      s->submitted++;
      break;
    }
  for (int i = 0; i < 2; i++) {
    lr_shared_view v = view_of(&s->rec[i]);
    if (lr_shared_import(p, i, &v, now)) publish(s, p, i, now);
  }
  for (int round = 0; round < 8; round++) {
    lr_req *out[SIM_SLOTS];
    double wake;
    int n = lr_relay_poll(pr->rl, now, out, SIM_SLOTS, &wake), again = 0;
    for (int k = 0; k < n; k++) {
      lr_req *r = out[k];
      sim_slot *sl = r->udata;
      if (r->state == LR_REQ_DONE) {
        if (r->kind == LR_E_NONE) s->ok++;
        else s->failed++;
        sl->used = 0;
        continue;
      }
      record *d = &s->rec[r->endpoint];
      d->in_flight++; /* the store's atomic incr */
      lr_shared_view v = view_of(d);
      double retry_at;
      if (s->use_admit && !lr_shared_admit(p, r->endpoint, &v, r->probe, now, &retry_at)) {
        d->in_flight--;
        s->refused++;
        lr_relay_unsend(pr->rl, r, retry_at, now);
        again = 1;
        continue;
      }
      if (r->endpoint == 0) {
        s->sends[s->epoch]++;
        if (d->open_until > now) s->sent_while_open++;
      }
      sl->answer_at = now + 0.05;
    }
    if (!again) break;
  }
}

/* n processes, each with a new request every 10 ms and up to 16 attempts in
 * flight, for 75 s; endpoint 0 answers every attempt with a 500 after 50 ms,
 * endpoint 1 with a 200. Cool-downs: 10 s, then 20 s, then 40 s. */
static void simulate(sim *s, int n, int use_admit, const lr_breaker_cfg *bc) {
  memset(s, 0, sizeof *s);
  s->use_admit = use_admit;
  sim_proc *procs = calloc((size_t)n, sizeof *procs);
  lr_relay_cfg cfg = {.max_attempts = 5,
                      .backoff = {.base_delay_s = 0.5, .max_delay_s = 8, .max_retry_after_s = 60},
                      .budget = -1,
                      .concurrency = 16,
                      .attempt_timeout_s = 30};
  lr_endpoint_cfg eps[2] = {{.weight = 1}, {.weight = 1}};
  for (int k = 0; k < n; k++)
    procs[k].rl = lr_relay_new(&cfg, eps, 2, LR_STRATEGY_ROUND_ROBIN, bc, 1000 + (uint64_t)k, 0);
  for (int t = 0; t <= 7500; t++) {
    double now = t * 0.01;
    for (int j = 0; j < n; j++) sim_tick(s, &procs[(t + j) % n], now); /* a different order each tick */
  }
  for (int k = 0; k < n; k++) lr_relay_free(procs[k].rl);
  free(procs);
}

static int worst_epoch(const sim *s, int from) {
  int w = 0;
  for (int e = from; e <= s->epoch; e++)
    if (s->sends[e] > w) w = s->sends[e];
  return w;
}

TEST(processes_sharing_a_record_spend_threshold_plus_probes_per_cooldown) {
  lr_breaker_cfg cfgs[2] = {BCFG, BCFG};
  cfgs[1].failure_threshold = 5;
  cfgs[1].half_open_probes = 2;
  for (int c = 0; c < 2; c++) {
    const lr_breaker_cfg *bc = &cfgs[c];
    int bound = bc->failure_threshold + bc->half_open_probes;
    for (int n = 2; n <= SIM_PROCS; n++) {
      sim s;
      simulate(&s, n, 1, bc);
      int total = 0;
      for (int e = 0; e <= s.epoch; e++) total += s.sends[e];
      /* opened at once, then reopened by the failed probes at about 10, 30, 70 s */
      CHECK(s.epoch == 4);
      /* until it opens: the threshold (or the warm-up, whichever is larger) */
      int first = bc->failure_threshold > LR_WARMUP_IN_FLIGHT ? bc->failure_threshold : LR_WARMUP_IN_FLIGHT;
      CHECK(s.sends[0] <= first && s.sends[0] <= bound);
      /* each cool-down after: the half-open probes, across all processes */
      CHECK(worst_epoch(&s, 1) <= bc->half_open_probes);
      CHECK(worst_epoch(&s, 1) >= 1);
      CHECK(total <= bound + bc->half_open_probes * (s.epoch - 1));
      CHECK(s.sent_while_open == 0);
      CHECK(s.refused > 0);
      CHECK(s.failed == 0 && s.ok > 7000 * n); /* refused attempts went elsewhere: nobody failed */
      if (ctest_cur_failed)
        fprintf(stderr, "  admit, %d processes, threshold %d probes %d: %d epochs, sends %d %d %d %d %d, total %d\n", n,
                bc->failure_threshold, bc->half_open_probes, s.epoch, s.sends[0], s.sends[1], s.sends[2], s.sends[3],
                s.sends[4], total);
    }
  }
}

TEST(without_admit_the_processes_spend_more) {
  for (int n = 2; n <= SIM_PROCS; n++) {
    sim s;
    simulate(&s, n, 0, &BCFG);
    int bound = BCFG.failure_threshold + BCFG.half_open_probes;
    /* each process bursts at it before the first answer, and probes on its own */
    CHECK(s.sends[0] > bound || worst_epoch(&s, 1) > BCFG.half_open_probes);
    CHECK(worst_epoch(&s, 1) >= n); /* every process sends its own probe */
    if (ctest_cur_failed)
      fprintf(stderr, "  no admit, %d processes: %d epochs, sends %d %d %d %d\n", n, s.epoch, s.sends[0], s.sends[1],
              s.sends[2], s.sends[3]);
  }
}


TEST(shared_bucket_from_atomic_adds) {
  double excess, at;
  /* rate 2/s, cap 10, t0 = 0; a new bucket starts full: used starts at rate x (now - t0) */
  double used = 2 * 5.0; /* first take at 5 s: used was initialised to 10, the take of 1 added */
  CHECK(lr_shared_bucket(2, 10, 0, used + 1, 1, 5, &excess, &at) == 1 && excess == 0);
  used += 1;
  /* nine more fit (the bucket held 10), the eleventh does not, until 0.5 s later */
  for (int k = 0; k < 9; k++) {
    used += 1;
    CHECK(lr_shared_bucket(2, 10, 0, used, 1, 5, &excess, &at) == 1);
  }
  used += 1;
  CHECK(lr_shared_bucket(2, 10, 0, used, 1, 5, &excess, &at) == 0);
  CHECK(fabs(at - 5.5) < 1e-9);
  used -= 1; /* given back */
  /* an idle bucket holds no more than cap: 100 s later, 10 go, the eleventh waits */
  used += 1;
  CHECK(lr_shared_bucket(2, 10, 0, used, 1, 105, &excess, &at) == 1);
  CHECK(excess > 0);
  used += excess;
  for (int k = 0; k < 9; k++) {
    used += 1;
    CHECK(lr_shared_bucket(2, 10, 0, used, 1, 105, &excess, &at) == 1 && excess == 0);
  }
  used += 1;
  CHECK(lr_shared_bucket(2, 10, 0, used, 1, 105, &excess, &at) == 0);
  /* a take of tokens larger than what is left waits for the refill of the difference */
  CHECK(lr_shared_bucket(100, 1000, 0, 1000 + 500, 500, 0, &excess, &at) == 0 && fabs(at - 5) < 1e-9);
}

int main(void) {
  RUN(import_adopts_a_later_throttle_and_proof);
  RUN(import_opens_while_another_process_holds_it_open);
  RUN(import_opens_when_shared_failures_reach_the_threshold);
  RUN(import_of_an_expired_open_period_goes_half_open_not_open_again);
  RUN(import_closes_when_a_probe_elsewhere_succeeded_but_not_while_failures_run);
  RUN(admit_refuses_while_another_process_holds_it_open);
  RUN(admit_keeps_failures_plus_in_flight_within_the_threshold);
  RUN(admit_a_proven_endpoint_without_failures_however_many_are_in_flight);
  RUN(admit_caps_an_unproven_endpoint_at_the_warm_up);
  RUN(admit_half_open_probes_across_processes);
  RUN(admit_max_concurrency_across_processes);
  RUN(admit_waits_for_a_shared_throttle);
  RUN(export_fields);
  RUN(export_then_import_round_trip);
  RUN(unsend_restores_counts_and_the_request_is_picked_again_elsewhere);
  RUN(unsend_goes_back_to_the_front_of_its_queue);
  RUN(unsend_refunds_the_limiter);
  RUN(unsend_frees_a_half_open_probe_slot);
  RUN(unsend_does_not_spend_the_retry_budget);
  RUN(processes_sharing_a_record_spend_threshold_plus_probes_per_cooldown);
  RUN(without_admit_the_processes_spend_more);
  RUN(shared_bucket_from_atomic_adds);
  CTEST_END();
}
