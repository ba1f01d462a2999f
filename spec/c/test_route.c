/* Unit tests of routing by model: the model table (csrc/models.c), strategy
 * "cost" (csrc/pool.c) and fallbacks between models (csrc/fallback.c, relay.c). */
#include <math.h>
#include <stdlib.h>

#include "ctest.h"
#include "relay.h"

static lr_breaker_cfg bcfg = {.failure_threshold = 3, .failure_rate = 0.5, .min_calls = 100, .window_s = 30,
                              .cooldown_s = 10, .max_cooldown_s = 40, .half_open_probes = 1};

static void make_pool(lr_pool *p, int n, lr_strategy s) {
  lr_endpoint_cfg eps[8];
  for (int i = 0; i < n; i++) eps[i] = (lr_endpoint_cfg){.weight = 1};
  lr_pool_init(p, eps, n, s, &bcfg, 0);
}

TEST(a_map_serves_logical_names_under_the_endpoints_names) {
  lr_pool p;
  make_pool(&p, 3, LR_STRATEGY_WEIGHTED);
  lr_models *m = &p.models;
  CHECK(lr_models_serve(m, 0, "gpt-4.1", "gpt-4.1-2025-04-14") == 0);
  CHECK(lr_models_serve(m, 1, "gpt-4.1", NULL) == 0);
  CHECK(lr_models_serve(m, 1, "mini", "mini") == 0); /* the same name: served as it is */
  CHECK(lr_pool_serving(&p, "gpt-4.1", 7) == 7);     /* 2 lists nothing: it serves every model */
  CHECK(lr_pool_serving(&p, "gpt-4.1-2025-04-14", 18) == 4); /* an upstream name is no logical one */
  CHECK(lr_pool_serving(&p, "mini", 4) == 6);
  int g = lr_models_find(m, "gpt-4.1", 7);
  size_t len;
  const char *w = lr_models_wire(m, 0, g, &len);
  CHECK(w && len == 18 && memcmp(w, "gpt-4.1-2025-04-14", 18) == 0);
  w = lr_models_wire(m, 1, g, &len);
  CHECK(w && len == 7 && memcmp(w, "gpt-4.1", 7) == 0);
  w = lr_models_wire(m, 2, g, &len); /* serves every model: as it is */
  CHECK(w && len == 7 && memcmp(w, "gpt-4.1", 7) == 0);
  CHECK(lr_models_wire(m, 0, -1, &len) == NULL);
  lr_pool_free(&p);
}

/* picks n times from the mask for model g; counts per endpoint */
static void picks(lr_pool *p, uint64_t mask, int g, int n, int *count) {
  lr_rng rng;
  lr_rng_seed(&rng, 7);
  double wake;
  int why;
  for (int k = 0; k < n; k++) {
    int i = lr_pool_pick_model(p, mask, g, 0, 1, &rng, &wake, &why);
    if (i >= 0) count[i]++;
  }
}

TEST(cost_picks_the_cheapest_usable_and_spills_to_the_next) {
  lr_pool p;
  make_pool(&p, 3, LR_STRATEGY_COST);
  lr_models *m = &p.models;
  lr_models_price(m, 0, "*", 9 + 9);
  lr_models_price(m, 1, "gpt-4.1", 2 + 8);
  lr_models_price(m, 2, "gpt-4.1", 2.5 + 10);
  int g = lr_models_find(m, "gpt-4.1", 7);
  int count[3] = {0};
  picks(&p, 7, g, 100, count);
  CHECK(count[1] == 100);
  lr_pool_throttle(&p, 1, 0, 10); /* the cheapest is paused: the next cheapest at once */
  memset(count, 0, sizeof count);
  picks(&p, 7, g, 100, count);
  CHECK(count[2] == 100);
  p.ep[2].max_concurrency = 1;
  p.ep[2].in_flight = 1; /* at its cap: the dearest */
  memset(count, 0, sizeof count);
  picks(&p, 7, g, 10, count);
  CHECK(count[0] == 10);
  p.ep[0].in_flight = 0;
  lr_pool_throttle(&p, 0, 0, 10);
  double wake;
  int why;
  lr_rng rng;
  lr_rng_seed(&rng, 1);
  CHECK(lr_pool_pick_model(&p, 7, g, 0, 1, &rng, &wake, &why) == -1); /* none usable: wait as ever */
  CHECK(why & LR_BLOCK_THROTTLE);
  lr_pool_free(&p);
}

TEST(cost_ranks_unpriced_last_and_shares_equal_prices_by_weight) {
  lr_pool p;
  make_pool(&p, 3, LR_STRATEGY_COST);
  lr_models *m = &p.models;
  lr_models_price(m, 1, "a", 4);
  lr_models_price(m, 2, "a", 4);
  int a = lr_models_find(m, "a", 1);
  int count[3] = {0};
  picks(&p, 7, a, 2000, count);
  CHECK(count[0] == 0 && count[1] > 800 && count[2] > 800); /* 0 has no price: after both */
  memset(count, 0, sizeof count);
  picks(&p, 1, a, 10, count); /* only the unpriced one serves: it takes them */
  CHECK(count[0] == 10);
  memset(count, 0, sizeof count);
  picks(&p, 7, -1, 2000, count); /* a model no price names: no ranking, weighted */
  CHECK(count[0] > 400 && count[1] > 400 && count[2] > 400);
  lr_pool_free(&p);
}

TEST(fallback_kinds_and_lists) {
  CHECK(lr_fallback_list_for(LR_E_RATE_LIMITED, 0) == 0);
  CHECK(lr_fallback_list_for(LR_E_SERVER_ERROR, 0) == 0);
  CHECK(lr_fallback_list_for(LR_E_TIMEOUT, 0) == 0);
  CHECK(lr_fallback_list_for(LR_E_CONNECT, 0) == 0);
  CHECK(lr_fallback_list_for(LR_E_CIRCUIT_OPEN, 0) == 0);
  CHECK(lr_fallback_list_for(LR_E_INVALID_REQUEST, 1) == 1);
  CHECK(lr_fallback_list_for(LR_E_INVALID_REQUEST, 0) == -1);
  CHECK(lr_fallback_list_for(LR_E_HTTP, 0) == -1);
  CHECK(lr_fallback_list_for(LR_E_DEADLINE, 0) == -1);
  CHECK(lr_fallback_list_for(LR_E_CANCELLED, 0) == -1);
  CHECK(lr_fallback_list_for(LR_E_NONE, 0) == -1);
  lr_fallbacks f = {0};
  int to[] = {4, 5};
  CHECK(lr_fallbacks_set(&f, 0, 3, to, 2) == 0);
  lr_fallback_state s = {.origin = 3};
  CHECK(lr_fallback_next(&f, 0, &s) == 4);
  CHECK(lr_fallback_next(&f, 0, &s) == 5);
  CHECK(lr_fallback_next(&f, 0, &s) == -1);
  CHECK(lr_fallback_next(&f, 1, &s) == -1); /* no context list for 3 */
  lr_fallback_state none = {.origin = -1};
  CHECK(lr_fallback_next(&f, 0, &none) == -1);
  lr_fallbacks_free(&f);
}

/* ---- through the relay ---- */

static lr_relay *make_relay(int n, int max_attempts) {
  lr_relay_cfg cfg = {.max_attempts = max_attempts,
                      .backoff = {.base_delay_s = 0.5, .max_delay_s = 8, .max_retry_after_s = 60},
                      .budget = -1, .concurrency = 8, .attempt_timeout_s = 30};
  lr_endpoint_cfg eps[8];
  for (int i = 0; i < n; i++) eps[i] = (lr_endpoint_cfg){.weight = 1};
  lr_relay *rl = lr_relay_new(&cfg, eps, n, LR_STRATEGY_PRIORITY, &bcfg, 99, 0);
  lr_relay_enable_events(rl, 1);
  return rl;
}

static lr_req *poll_one(lr_relay *rl, double now) {
  lr_req *out[8];
  double w;
  return lr_relay_poll(rl, now, out, 8, &w) ? out[0] : NULL;
}

static void status(lr_relay *rl, lr_req *r, int st, int ctx, double now) {
  lr_outcome o = {.status = st, .body_ok = st == 200, .context_exceeded = ctx};
  lr_relay_report(rl, r, &o, now);
}

/* Endpoint 0 serves "big" only, endpoint 1 "mini" (as "mini-up") and "small". */
static lr_relay *two_models(int max_attempts, int *big, int *mini, int *small) {
  lr_relay *rl = make_relay(2, max_attempts);
  lr_models *m = &lr_relay_pool(rl)->models;
  lr_models_serve(m, 0, "big", NULL);
  lr_models_serve(m, 1, "mini", "mini-up");
  lr_models_serve(m, 1, "small", NULL);
  *big = lr_models_find(m, "big", 3);
  *mini = lr_models_find(m, "mini", 4);
  *small = lr_models_find(m, "small", 5);
  return rl;
}

TEST(a_model_that_fails_for_good_falls_back_to_the_next) {
  int big, mini, small;
  lr_relay *rl = two_models(2, &big, &mini, &small);
  int to[] = {mini};
  lr_fallbacks_set(lr_relay_fallbacks(rl), 0, big, to, 1);
  lr_req r;
  lr_relay_submit(rl, &r, lr_pool_serving(lr_relay_pool(rl), "big", 3), 0, INFINITY, 0, 0, NULL);
  lr_relay_route(&r, big, ~(uint64_t)0);
  CHECK(poll_one(rl, 0) == &r && r.endpoint == 0);
  size_t len;
  const char *w = lr_relay_wire_model(rl, &r, 0, &len);
  CHECK(w && len == 3 && memcmp(w, "big", 3) == 0);
  status(rl, &r, 500, 0, 0.1);
  CHECK(poll_one(rl, 0.1) == NULL); /* backing off on its one endpoint */
  CHECK(poll_one(rl, 5) == &r && r.endpoint == 0 && r.attempts == 2);
  status(rl, &r, 500, 0, 5.1); /* max_attempts for "big": it falls back, at once */
  CHECK(poll_one(rl, 5.1) == &r && r.state == LR_REQ_SENDING && r.endpoint == 1 && r.model == mini);
  w = lr_relay_wire_model(rl, &r, 1, &len);
  CHECK(w && len == 7 && memcmp(w, "mini-up", 7) == 0);
  lr_event ev[32];
  int n = lr_relay_events(rl, ev, 32), fb = -1;
  for (int k = 0; k < n; k++)
    if (ev[k].type == LR_EV_FALLBACK) fb = k;
  CHECK(fb >= 0 && ev[fb].from == big && ev[fb].to == mini && ev[fb].kind == LR_E_SERVER_ERROR &&
        ev[fb].status == 500 && ev[fb].endpoint == 0);
  status(rl, &r, 200, 0, 5.2);
  CHECK(poll_one(rl, 5.2) == &r && r.kind == LR_E_NONE && r.model == mini && r.attempts == 3);
  lr_relay_free(rl);
}

TEST(the_last_fallback_failing_ends_the_request_and_other_kinds_never_fall_back) {
  int big, mini, small;
  lr_relay *rl = two_models(1, &big, &mini, &small);
  int to[] = {mini};
  lr_fallbacks_set(lr_relay_fallbacks(rl), 0, big, to, 1);
  lr_req r;
  lr_relay_submit(rl, &r, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_route(&r, big, ~(uint64_t)0);
  poll_one(rl, 0);
  status(rl, &r, 503, 0, 0.1);
  CHECK(poll_one(rl, 0.1) == &r && r.model == mini);
  status(rl, &r, 500, 0, 0.2);
  CHECK(poll_one(rl, 0.2) == &r && r.state == LR_REQ_DONE && r.kind == LR_E_SERVER_ERROR && r.model == mini);
  /* a 400 without context_length_exceeded, a 401: final */
  lr_relay_submit(rl, &r, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_route(&r, big, ~(uint64_t)0);
  poll_one(rl, 1);
  status(rl, &r, 400, 0, 1.1);
  CHECK(poll_one(rl, 1.1) == &r && r.state == LR_REQ_DONE && r.kind == LR_E_INVALID_REQUEST && r.model == big);
  /* opts.endpoints leaves no endpoint of the fallback: it is skipped */
  lr_relay_submit(rl, &r, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_route(&r, big, 1);
  poll_one(rl, 2);
  status(rl, &r, 500, 0, 2.1);
  CHECK(poll_one(rl, 2.1) == &r && r.state == LR_REQ_DONE && r.kind == LR_E_SERVER_ERROR && r.model == big);
  lr_relay_free(rl);
}

TEST(context_length_exceeded_uses_the_context_window_list) {
  int big, mini, small;
  lr_relay *rl = two_models(3, &big, &mini, &small);
  int gen[] = {mini}, ctx[] = {big};
  lr_fallbacks_set(lr_relay_fallbacks(rl), 0, small, gen, 1);
  lr_fallbacks_set(lr_relay_fallbacks(rl), 1, small, ctx, 1);
  lr_req r;
  lr_relay_submit(rl, &r, 2, 0, INFINITY, 0, 0, NULL);
  lr_relay_route(&r, small, ~(uint64_t)0);
  poll_one(rl, 0);
  CHECK(r.endpoint == 1);
  status(rl, &r, 400, 1, 0.1);
  CHECK(poll_one(rl, 0.1) == &r && r.state == LR_REQ_SENDING && r.model == big && r.endpoint == 0);
  status(rl, &r, 400, 1, 0.2); /* "big" too: the context list has nothing more */
  CHECK(poll_one(rl, 0.2) == &r && r.state == LR_REQ_DONE && r.kind == LR_E_INVALID_REQUEST);
  lr_relay_free(rl);
}

TEST(a_stream_that_sent_events_never_falls_back) {
  int big, mini, small;
  lr_relay *rl = two_models(1, &big, &mini, &small);
  int to[] = {mini};
  lr_fallbacks_set(lr_relay_fallbacks(rl), 0, big, to, 1);
  lr_req r;
  lr_relay_submit(rl, &r, 1, 0, INFINITY, 0, 0, NULL);
  lr_relay_route(&r, big, ~(uint64_t)0);
  poll_one(rl, 0);
  lr_outcome o = {.transport = LR_E_CONNECT, .partial = 1};
  lr_relay_report(rl, &r, &o, 0.1);
  CHECK(poll_one(rl, 0.1) == &r && r.state == LR_REQ_DONE && r.kind == LR_E_STREAM_INTERRUPTED);
  lr_relay_free(rl);
}

int main(void) {
  RUN(a_map_serves_logical_names_under_the_endpoints_names);
  RUN(cost_picks_the_cheapest_usable_and_spills_to_the_next);
  RUN(cost_ranks_unpriced_last_and_shares_equal_prices_by_weight);
  RUN(fallback_kinds_and_lists);
  RUN(a_model_that_fails_for_good_falls_back_to_the_next);
  RUN(the_last_fallback_failing_ends_the_request_and_other_kinds_never_fall_back);
  RUN(context_length_exceeded_uses_the_context_window_list);
  RUN(a_stream_that_sent_events_never_falls_back);
  CTEST_END();
}
