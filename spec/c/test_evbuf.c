/* Unit tests of csrc/evbuf.c: a streamed answer's events and what they said. */
#define _GNU_SOURCE /* memmem */
#include <string.h>

#include "ctest.h"
#include "evbuf.h"

static int feed(lr_evstream *s, lr_evq *q, const char *text) { return lr_evstream_feed(s, q, text, strlen(text)); }

static int event_is(const lr_evq *q, size_t *off, const char *want) {
  size_t len;
  const char *e = lr_evq_next(q->buf, q->len, off, &len);
  return e && len == strlen(want) && memcmp(e, want, len) == 0;
}

TEST(data_events_are_queued_in_order_with_finish_and_usage_noted) {
  lr_evstream s;
  lr_evq q = {0};
  lr_evstream_init(&s, 4096);
  CHECK(feed(&s, &q, ": keep-alive\n\ndata: {\"a\":1}\n\nda") == LR_SF_NONE);
  CHECK(q.n == 1 && !s.saw_finish && s.usage < 0);
  CHECK(feed(&s, &q, "ta: {\"choices\":[{\"finish_reason\":\"stop\"}],\"usage\":{\"total_tokens\":7}}\n\n") ==
        LR_SF_NONE);
  CHECK(q.n == 2 && s.saw_finish && !s.saw_done && s.usage == 7 && lr_evstream_complete(&s));
  size_t off = 0, len;
  CHECK(event_is(&q, &off, "{\"a\":1}"));
  CHECK(lr_evq_next(q.buf, q.len, &off, &len) != NULL);
  CHECK(lr_evq_next(q.buf, q.len, &off, &len) == NULL);
  CHECK(feed(&s, &q, "data: [DONE]\n\ndata: {\"late\":1}\n\n") == LR_SF_NONE);
  CHECK(s.saw_done && q.n == 2); /* nothing after [DONE] reaches the caller */
  lr_evq_clear(&q);
  CHECK(q.n == 0 && q.len == 0);
  lr_evstream_reset(&s);
  CHECK(!s.saw_done && !s.saw_finish && s.usage < 0 && !lr_evstream_complete(&s));
  lr_evstream_free(&s);
  lr_evq_free(&q);
}

TEST(an_error_event_is_a_sticky_fault_with_its_text) {
  lr_evstream s;
  lr_evq q = {0};
  lr_evstream_init(&s, 4096);
  CHECK(feed(&s, &q, "data: {\"a\":1}\n\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\ndata: {\"b\":2}\n\n") ==
        LR_SF_ERROR_EVENT);
  CHECK(q.n == 1 && s.fault_text_len > 0 && memmem(s.fault_text, s.fault_text_len, "overloaded", 10));
  CHECK(feed(&s, &q, "data: {\"c\":3}\n\n") == LR_SF_ERROR_EVENT && q.n == 1);
  CHECK(!lr_evstream_complete(&s));
  lr_evstream_free(&s);
  lr_evq_free(&q);
}

TEST(bad_and_oversized_events) {
  lr_evstream s;
  lr_evq q = {0};
  lr_evstream_init(&s, 4096);
  CHECK(feed(&s, &q, "data: not json\n\n") == LR_SF_BAD_EVENT);
  CHECK(s.fault_text_len == 8 && memcmp(s.fault_text, "not json", 8) == 0);
  lr_evstream_reset(&s);
  char big[6000];
  memset(big, 'x', sizeof big);
  memcpy(big, "data: ", 6);
  CHECK(lr_evstream_feed(&s, &q, big, sizeof big) == LR_SF_TOO_BIG && s.fault_text_len == 0);
  lr_evstream_free(&s);
  lr_evq_free(&q);
}

TEST(a_responses_stream_is_complete_only_after_response_completed) {
  lr_evstream s;
  lr_evq q = {0};
  lr_evstream_init(&s, 4096);
  s.api = LR_API_RESPONSES;
  CHECK(feed(&s, &q, "event: response.created\ndata: {\"type\":\"response.created\"}\n\n"
                     "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n"
                     "data: [DONE]\n\n") == LR_SF_NONE);
  CHECK(q.n == 2 && !lr_evstream_complete(&s)); /* [DONE] ends no Responses stream */
  /* an unnamed event is typed by its data; usage is read inside "response" */
  CHECK(feed(&s, &q, "data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":3,"
                     "\"output_tokens\":2,\"total_tokens\":5}}}\n\n") == LR_SF_NONE);
  CHECK(q.n == 3 && lr_evstream_complete(&s) && s.usage == 5);
  CHECK(feed(&s, &q, "event: response.failed\ndata: {\"type\":\"response.failed\"}\n\n") == LR_SF_NONE);
  CHECK(q.n == 3); /* nothing after the terminal event */
  lr_evstream_reset(&s);
  CHECK(s.api == LR_API_RESPONSES && !lr_evstream_complete(&s)); /* the api survives a reset */
  /* a finish_reason in a Responses event completes nothing */
  CHECK(feed(&s, &q, "data: {\"type\":\"x\",\"finish_reason\":\"stop\"}\n\n") == LR_SF_NONE);
  CHECK(!lr_evstream_complete(&s));
  lr_evstream_free(&s);
  lr_evq_free(&q);
}

TEST(responses_failed_incomplete_and_error_events_are_faults) {
  static const struct {
    const char *text;
    int fault;
    lr_error_kind kind;
  } cases[] = {
      {"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{}}\n\n", LR_SF_RESP_FAILED,
       LR_E_SERVER_ERROR},
      {"data: {\"type\":\"response.incomplete\"}\n\n", LR_SF_RESP_INCOMPLETE, LR_E_STREAM_INTERRUPTED},
      {"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\"}\n\n", LR_SF_ERROR_EVENT, LR_E_SERVER_ERROR},
      {"data: {\"type\":\"error\",\"message\":\"x\"}\n\n", LR_SF_ERROR_EVENT, LR_E_SERVER_ERROR},
      {"event: response.output_text.delta\ndata: [1]\n\n", LR_SF_BAD_EVENT, LR_E_DECODE},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    lr_evstream s;
    lr_evq q = {0};
    lr_evstream_init(&s, 4096);
    s.api = LR_API_RESPONSES;
    CHECK(feed(&s, &q, cases[k].text) == cases[k].fault);
    CHECK(q.n == 0 && !lr_evstream_complete(&s) && s.fault_text_len > 0 && LR_SF_KEEPS_TEXT(s.fault));
    char msg[96];
    CHECK(lr_answer_fault((lr_stream_fault)s.fault, 4096, msg, sizeof msg) == cases[k].kind && msg[0]);
    lr_evstream_free(&s);
    lr_evq_free(&q);
  }
}

int main(void) {
  RUN(a_responses_stream_is_complete_only_after_response_completed);
  RUN(responses_failed_incomplete_and_error_events_are_faults);
  RUN(data_events_are_queued_in_order_with_finish_and_usage_noted);
  RUN(an_error_event_is_a_sticky_fault_with_its_text);
  RUN(bad_and_oversized_events);
  CTEST_END();
}
