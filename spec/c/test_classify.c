/* Unit tests of csrc/classify.c: what an attempt's outcome means. */
#include <math.h>
#include <string.h>

#include "classify.h"
#include "ctest.h"

static lr_classification status(int st, const char *header) {
  lr_hints h;
  lr_hints_init(&h);
  if (header) lr_hints_feed_line(&h, header, strlen(header), 1e9);
  lr_outcome o = {.status = st, .transport = LR_E_NONE, .body_ok = 1, .hints = header ? &h : NULL};
  return lr_classify(&o, INFINITY, 0);
}

static lr_classification transport(lr_error_kind k, double deadline, double now) {
  lr_outcome o = {.transport = k, .message = "boom"};
  return lr_classify(&o, deadline, now);
}

TEST(a_2xx_with_a_good_body_is_ok_and_healthy) {
  lr_classification c = status(200, NULL);
  CHECK(c.action == LR_ACT_OK && c.kind == LR_E_NONE && c.health == LR_VERDICT_SUCCESS);
}

TEST(a_2xx_with_a_bad_body_goes_elsewhere_and_spares_the_breaker) {
  lr_outcome o = {.status = 200, .transport = LR_E_NONE, .body_ok = 0};
  lr_classification c = lr_classify(&o, INFINITY, 0);
  CHECK(c.action == LR_ACT_RETRY_ELSEWHERE && c.kind == LR_E_DECODE && c.health == LR_VERDICT_NEUTRAL);
}

TEST(transport_failures) {
  lr_classification c = transport(LR_E_CONNECT, INFINITY, 0);
  CHECK(c.action == LR_ACT_RETRY && c.kind == LR_E_CONNECT && c.health == LR_VERDICT_FAILURE);
  c = transport(LR_E_TIMEOUT, 10, 5);
  CHECK(c.action == LR_ACT_RETRY && c.kind == LR_E_TIMEOUT && c.health == LR_VERDICT_FAILURE);
  c = transport(LR_E_TIMEOUT, 10, 10);
  CHECK(c.action == LR_ACT_FINAL && c.kind == LR_E_DEADLINE);
  c = transport(LR_E_HTTP, INFINITY, 0); /* body over the cap */
  CHECK(c.action == LR_ACT_FINAL && c.kind == LR_E_HTTP && c.health == LR_VERDICT_NEUTRAL);
  c = transport(LR_E_SERVER_ERROR, INFINITY, 0); /* a stream's error event */
  CHECK(c.action == LR_ACT_RETRY && c.health == LR_VERDICT_FAILURE);
}

TEST(rate_limited_with_and_without_a_hint) {
  lr_classification c = status(429, "Retry-After: 3");
  CHECK(c.kind == LR_E_RATE_LIMITED && c.free && !c.bare && c.action == LR_ACT_RETRY);
  CHECK_NEAR(c.throttle_s, 3, 1e-9);
  c = status(429, NULL);
  CHECK(c.kind == LR_E_RATE_LIMITED && c.free && c.bare && c.throttle_s == 0);
}

TEST(server_errors_count_against_the_endpoint) {
  lr_classification c = status(500, NULL);
  CHECK(c.kind == LR_E_SERVER_ERROR && c.health == LR_VERDICT_FAILURE && c.action == LR_ACT_RETRY &&
        c.throttle_s == 0);
  c = status(503, "Retry-After: 2");
  CHECK_NEAR(c.throttle_s, 2, 1e-9);
}

TEST(client_errors) {
  lr_classification c = status(401, NULL);
  CHECK(c.kind == LR_E_HTTP && c.health == LR_VERDICT_FAILURE && c.action == LR_ACT_RETRY);
  c = status(404, NULL);
  CHECK(c.kind == LR_E_HTTP && c.action == LR_ACT_RETRY_ELSEWHERE && c.free);
  c = status(408, NULL);
  CHECK(c.kind == LR_E_TIMEOUT && c.health == LR_VERDICT_FAILURE);
  c = status(409, NULL);
  CHECK(c.kind == LR_E_HTTP && c.action == LR_ACT_RETRY && c.health == LR_VERDICT_NEUTRAL);
  c = status(422, NULL);
  CHECK(c.kind == LR_E_INVALID_REQUEST && c.action == LR_ACT_FINAL && c.health == LR_VERDICT_SUCCESS);
  c = status(418, NULL);
  CHECK(c.kind == LR_E_HTTP && c.action == LR_ACT_FINAL);
}

TEST(should_retry_overrides) {
  CHECK(status(418, "x-should-retry: true").action == LR_ACT_RETRY);
  CHECK(status(500, "x-should-retry: false").action == LR_ACT_FINAL);
  CHECK(status(200, "x-should-retry: false").action == LR_ACT_OK);
}

int main(void) {
  RUN(a_2xx_with_a_good_body_is_ok_and_healthy);
  RUN(a_2xx_with_a_bad_body_goes_elsewhere_and_spares_the_breaker);
  RUN(transport_failures);
  RUN(rate_limited_with_and_without_a_hint);
  RUN(server_errors_count_against_the_endpoint);
  RUN(client_errors);
  RUN(should_retry_overrides);
  CTEST_END();
}
