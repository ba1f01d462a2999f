/* Unit tests of csrc/outcome.c: an attempt's outcome from what the executor saw. */
#include <string.h>

#include "ctest.h"
#include "outcome.h"

static char msg[512];
static const char *keep;
static size_t keep_len;

static lr_outcome shape(lr_attempt_facts f) {
  lr_outcome o;
  memset(&o, 0, sizeof o);
  if (!f.max_response_bytes) f.max_response_bytes = 1 << 20;
  lr_outcome_shape(&f, &o, msg, sizeof msg, &keep, &keep_len);
  return o;
}

static int says(const lr_outcome *o, const char *m) { return o->message && strcmp(o->message, m) == 0; }

TEST(buffered_answers) {
  const char *good = "{\"usage\":{\"total_tokens\":12}}";
  lr_outcome o = shape((lr_attempt_facts){.status = 200, .body = good, .body_len = strlen(good)});
  CHECK(o.transport == LR_E_NONE && o.body_ok && o.usage_tokens == 12 && !o.message && !keep);
  o = shape((lr_attempt_facts){.status = 200, .body = "[1]", .body_len = 3});
  CHECK(o.transport == LR_E_NONE && !o.body_ok && o.message && keep && keep_len == 3);
  o = shape((lr_attempt_facts){.status = 500, .body = "oops", .body_len = 4});
  CHECK(o.status == 500 && !o.body_ok && !o.message && keep_len == 4 && o.usage_tokens < 0);
}

TEST(transfer_failures) {
  lr_hints h;
  lr_hints_init(&h);
  lr_outcome o = shape((lr_attempt_facts){.end = LR_END_TIMEOUT, .status = 200, .hints = &h, .text = "slow"});
  CHECK(o.transport == LR_E_TIMEOUT && says(&o, "timeout: slow") && o.status == 0 && !o.hints);
  o = shape((lr_attempt_facts){.end = LR_END_CUT, .text = "refused"});
  CHECK(o.transport == LR_E_CONNECT && says(&o, "refused"));
  o = shape((lr_attempt_facts){.end = LR_END_TOO_LARGE, .status = 200, .hints = &h, .max_response_bytes = 1024});
  CHECK(o.transport == LR_E_HTTP && says(&o, "response body exceeds max_response_bytes (1024)") && o.status == 200 &&
        o.hints == &h);
  o = shape((lr_attempt_facts){.end = LR_END_FIRST_BYTE, .limit_s = 2});
  CHECK(o.transport == LR_E_TIMEOUT && says(&o, "timeout: no response within first_byte (2 s)"));
  o = shape((lr_attempt_facts){.end = LR_END_ERROR, .status = 502, .error = LR_E_HTTP, .text = "bad head",
                               .body = "x", .body_len = 1});
  CHECK(o.transport == LR_E_HTTP && says(&o, "bad head") && o.status == 502 && keep_len == 1);
}

TEST(streams) {
  lr_evstream s;
  lr_evq q = {0};
  lr_evstream_init(&s, 4096);
  const char *ok = "data: {\"choices\":[{\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
  lr_evstream_feed(&s, &q, ok, strlen(ok));
  lr_outcome o = shape((lr_attempt_facts){.status = 200, .stream = &s});
  CHECK(o.body_ok && !o.message && o.transport == LR_E_NONE);
  lr_evstream_reset(&s);
  lr_evstream_feed(&s, &q, "data: {\"a\":1}\n\n", 15);
  o = shape((lr_attempt_facts){.status = 200, .stream = &s});
  CHECK(!o.body_ok && says(&o, "the stream ended without [DONE] or a finish_reason"));
  o = shape((lr_attempt_facts){.end = LR_END_CUT, .status = 200, .stream = &s, .text = "reset"});
  CHECK(o.transport == LR_E_CONNECT && says(&o, "the stream was cut: reset") && o.status == 200);
  o = shape((lr_attempt_facts){.end = LR_END_IDLE, .status = 200, .stream = &s, .limit_s = 0.5});
  CHECK(o.transport == LR_E_TIMEOUT && says(&o, "timeout: the stream was silent for idle (0.5 s)"));
  o = shape((lr_attempt_facts){.end = LR_END_TOO_LARGE, .status = 200, .stream = &s, .max_response_bytes = 2048});
  CHECK(says(&o, "stream exceeds max_response_bytes (2048)"));
  lr_evstream_feed(&s, &q, "event: error\ndata: {\"error\":\"down\"}\n\n", 38);
  o = shape((lr_attempt_facts){.end = LR_END_CUT, .status = 200, .stream = &s});
  CHECK(o.transport == LR_E_SERVER_ERROR && keep && o.message); /* the decoder's fault comes first */
  lr_evstream_free(&s);
  lr_evq_free(&q);
}

int main(void) {
  RUN(buffered_answers);
  RUN(transfer_failures);
  RUN(streams);
  CTEST_END();
}
