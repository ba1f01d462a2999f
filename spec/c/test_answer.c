/* What an answer says (csrc/answer.c): how a stream event is taken, whether
 * a chunk finishes the answer, and the usage it reports. Both executors (the
 * libcurl one and the Lua one) read answers through these three functions. */
#include <stdlib.h>

#include "answer.h"
#include "ctest.h"
#include "sse.h"

/* An event as the decoder hands it over: event name ("" = "message"), data. */
static lr_sse_event ev(const char *event, const char *data) {
  lr_sse_event e;
  memset(&e, 0, sizeof e);
  e.event = event[0] ? event : "message";
  e.event_len = strlen(e.event);
  e.data = data;
  e.data_len = strlen(data);
  e.id = "";
  e.retry_ms = -1;
  e.done = strcmp(data, "[DONE]") == 0;
  return e;
}

static lr_stream_event_class cls(const char *event, const char *data, int done) {
  lr_sse_event e = ev(event, data);
  return lr_answer_classify(&e, done);
}

TEST(classify_done) {
  CHECK(cls("", "[DONE]", 0) == LR_SEV_DONE);
  CHECK(cls("", "[DONE]", 1) == LR_SEV_DONE); /* a second [DONE] is still [DONE] */
}

TEST(classify_skip_keep_alive_and_after_done) {
  CHECK(cls("", "", 0) == LR_SEV_SKIP);     /* a keep-alive (event without data) */
  CHECK(cls("ping", "", 0) == LR_SEV_SKIP); /* a named event without data */
  /* after [DONE] nothing reaches the caller, not even an error or bad data */
  CHECK(cls("", "{\"choices\":[]}", 1) == LR_SEV_SKIP);
  CHECK(cls("", "not json", 1) == LR_SEV_SKIP);
  CHECK(cls("error", "{\"error\":{}}", 1) == LR_SEV_SKIP);
  CHECK(cls("", "{\"error\":{\"message\":\"x\"}}", 1) == LR_SEV_SKIP);
}

TEST(classify_error_event_and_error_object) {
  CHECK(cls("error", "{\"error\":{\"message\":\"overloaded\"}}", 0) == LR_SEV_ERROR);
  CHECK(cls("error", "", 0) == LR_SEV_ERROR);         /* an error event needs no data */
  CHECK(cls("error", "overloaded", 0) == LR_SEV_ERROR); /* nor JSON data */
  CHECK(cls("", "{\"error\":{\"message\":\"x\",\"type\":\"server_error\"}}", 0) == LR_SEV_ERROR);
  CHECK(cls("", " \n{ \t\"error\" : null}", 0) == LR_SEV_ERROR);
  CHECK(cls("message", "{\"error\":\"x\"}", 0) == LR_SEV_ERROR);
  /* neither is an error: another event name, another key, "error" not the first key */
  CHECK(cls("errors", "{\"choices\":[]}", 0) == LR_SEV_DATA);
  CHECK(cls("Error", "{\"choices\":[]}", 0) == LR_SEV_DATA);
  CHECK(cls("err", "{\"choices\":[]}", 0) == LR_SEV_DATA);
  CHECK(cls("", "{\"errors\":[]}", 0) == LR_SEV_DATA);
  CHECK(cls("", "{\"choices\":[],\"error\":null}", 0) == LR_SEV_DATA);
}

TEST(classify_bad_for_data_that_is_not_a_json_object) {
  CHECK(cls("", "not json", 0) == LR_SEV_BAD);
  CHECK(cls("", "[1,2]", 0) == LR_SEV_BAD);
  CHECK(cls("", "\"text\"", 0) == LR_SEV_BAD);
  CHECK(cls("", "42", 0) == LR_SEV_BAD);
  CHECK(cls("", "{\"choices\":[", 0) == LR_SEV_BAD); /* cut */
  CHECK(cls("", "{\"a\":1}}", 0) == LR_SEV_BAD);     /* trailing bytes */
  CHECK(cls("", "[DONE] ", 0) == LR_SEV_BAD);        /* not exactly [DONE] */
  CHECK(cls("", "{\"error", 0) == LR_SEV_BAD);       /* too short to be an error object */
}

TEST(classify_data) {
  CHECK(cls("", "{\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}", 0) == LR_SEV_DATA);
  CHECK(cls("message", "{}", 0) == LR_SEV_DATA);
  CHECK(cls("", " { \"id\" : \"x\" } ", 0) == LR_SEV_DATA);
  CHECK(cls("completion", "{\"choices\":[]}", 0) == LR_SEV_DATA); /* any other event name */
}

/* The classes of the events of a whole stream, as the decoder splits it. */
typedef struct {
  char got[32];
  int n, done;
} seen;

static int collect(void *ud, const lr_sse_event *e) {
  seen *s = ud;
  lr_stream_event_class c = lr_answer_classify(e, s->done);
  if (c == LR_SEV_DONE) s->done = 1;
  if (s->n < (int)sizeof s->got - 1) s->got[s->n++] = "DSNEB"[c];
  return 0;
}

TEST(classify_the_events_of_a_decoded_stream) {
  static const char stream[] = ": keep-alive\n\n"
                               "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
                               "event: ping\n\n" /* no data: not even dispatched */
                               "event: ping\ndata:\n\n"
                               "data: {\"choices\":\n"
                               "data: []}\n\n"
                               "data: oops\n\n"
                               "event: error\ndata: {\"error\":{\"message\":\"x\"}}\n\n"
                               "data: [DONE]\n\n"
                               "data: {\"late\":1}\n\n";
  lr_sse s;
  lr_sse_init(&s, 0);
  seen got = {{0}, 0, 0};
  CHECK(lr_sse_feed(&s, stream, sizeof stream - 1, collect, &got) == LR_SSE_OK);
  /* DATA, SKIP (a ping with empty data), DATA (two data lines), BAD, ERROR, DONE, SKIP */
  if (strcmp(got.got, "DSDBENS") != 0) fprintf(stderr, "  classes %s\n", got.got);
  CHECK(strcmp(got.got, "DSDBENS") == 0);
  lr_sse_free(&s);
}

static int finish(const char *s) { return lr_answer_has_finish_reason(s, strlen(s)); }

TEST(finish_reason_null_or_not) {
  CHECK(!finish("{\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}"));
  CHECK(finish("{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}"));
  CHECK(finish("{\"choices\":[{\"finish_reason\":\"length\"}]}"));
  CHECK(finish("{\"choices\":[{\"finish_reason\":\"tool_calls\"}]}"));
  CHECK(!finish("{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}")); /* no key */
  CHECK(!finish(""));
  CHECK(!finish("{\"choices\":[]}"));
}

TEST(finish_reason_with_white_space) {
  CHECK(finish("{\"finish_reason\" : \"stop\"}"));
  CHECK(finish("{\"finish_reason\":\n  \"stop\"}"));
  CHECK(finish("{\"finish_reason\"\r\n:\t\"stop\"}"));
  CHECK(!finish("{\"finish_reason\" : null}"));
  CHECK(!finish("{\"finish_reason\":\n\tnull}"));
  CHECK(!finish("{\"finish_reason\"\t:null}"));
}

TEST(finish_reason_any_choice_and_cut_buffers) {
  /* the first choice is not finished, the second is */
  CHECK(finish("{\"choices\":[{\"index\":0,\"finish_reason\":null},{\"index\":1,\"finish_reason\":\"stop\"}]}"));
  CHECK(!finish("{\"choices\":[{\"finish_reason\":null},{\"finish_reason\":null}]}"));
  /* the key or its value cut off by the end of the buffer */
  CHECK(!finish("{\"finish_reason\""));
  CHECK(!finish("{\"finish_reason\":"));
  CHECK(!finish("{\"finish_reason\":  "));
  CHECK(!finish("{\"finish_rea"));
  /* n is the length: bytes after it are not read */
  static const char b[] = "{\"finish_reason\":\"stop\"}";
  CHECK(!lr_answer_has_finish_reason(b, 17)); /* up to the colon */
  CHECK(lr_answer_has_finish_reason(b, 18));
  CHECK(!lr_answer_has_finish_reason(b, 0));
}

static double usage(const char *s) { return lr_answer_usage_tokens(s, strlen(s)); }

TEST(usage_tokens_found) {
  CHECK_NEAR(usage("{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}"), 7, 0);
  CHECK_NEAR(usage("{\"usage\":{\"total_tokens\":0}}"), 0, 0);
  CHECK_NEAR(usage("{\"usage\":{\"total_tokens\":123456}}"), 123456, 0);
}

TEST(usage_tokens_with_white_space_around_the_colon) {
  CHECK_NEAR(usage("{\"total_tokens\" : 12}"), 12, 0);
  CHECK_NEAR(usage("{\"total_tokens\":\n\t 42}"), 42, 0);
  CHECK_NEAR(usage("{\"total_tokens\"\r\n:\r\n 5}"), 5, 0);
  CHECK_NEAR(usage("{\"usage\": {\n  \"total_tokens\"  :  99\n}}"), 99, 0);
}

TEST(usage_tokens_missing_is_minus_one) {
  CHECK_NEAR(usage("{\"choices\":[]}"), -1, 0);
  CHECK_NEAR(usage(""), -1, 0);
  CHECK_NEAR(usage("{\"usage\":null}"), -1, 0);
  CHECK_NEAR(usage("{\"usage\":{\"total_tokens\":null}}"), -1, 0);
  CHECK_NEAR(usage("{\"usage\":{\"total_tokens\":\"7\"}}"), -1, 0);
  CHECK_NEAR(usage("{\"usage\":{\"total_tokens\":"), -1, 0); /* cut after the colon */
  CHECK_NEAR(usage("{\"usage\":{\"total_tokens\""), -1, 0);
  CHECK_NEAR(usage("{\"usage\":{\"prompt_tokens\":3}}"), -1, 0);
  /* n is the length: a number past it is not read, one cut by it is read as far as it goes */
  static const char b[] = "{\"total_tokens\":345}";
  CHECK_NEAR(lr_answer_usage_tokens(b, 16), -1, 0);
  CHECK_NEAR(lr_answer_usage_tokens(b, 17), 3, 0);
  CHECK_NEAR(lr_answer_usage_tokens(b, sizeof b - 1), 345, 0);
}


TEST(fault_outcomes) {
  char msg[96];
  CHECK(lr_answer_fault(LR_SF_ERROR_EVENT, 100, msg, sizeof msg) == LR_E_SERVER_ERROR);
  CHECK(strcmp(msg, "the stream carried an error event") == 0);
  CHECK(lr_answer_fault(LR_SF_BAD_EVENT, 100, msg, sizeof msg) == LR_E_DECODE);
  CHECK(lr_answer_fault(LR_SF_TOO_BIG, 4096, msg, sizeof msg) == LR_E_HTTP);
  CHECK(strcmp(msg, "a stream event exceeds 4096 bytes") == 0);
  CHECK(lr_answer_fault(LR_SF_NOMEM, 100, msg, sizeof msg) == LR_E_CONNECT);
  CHECK(lr_answer_fault(LR_SF_NONE, 100, msg, sizeof msg) == LR_E_NONE && msg[0] == 0);
  CHECK(lr_answer_max_event(1000) == 1000);
  CHECK(lr_answer_max_event((size_t)64 << 20) == (size_t)4 << 20);
}

static int span_is(const char *b, lr_span sp, const char *want) {
  if (!want) return sp.len == 0;
  return sp.len == strlen(want) && memcmp(b + sp.off, want, sp.len) == 0;
}

static int upstream(const char *b, const char *code, const char *type, const char *param) {
  lr_upstream_error e;
  if (lr_answer_error(b, strlen(b), &e) != 0) return 0;
  return span_is(b, e.code, code) && span_is(b, e.type, type) && span_is(b, e.param, param);
}

TEST(upstream_error_fields) {
  CHECK(upstream("{\"error\":{\"message\":\"too long\",\"type\":\"invalid_request_error\","
                 "\"param\":\"messages\",\"code\":\"context_length_exceeded\"}}",
                 "\"context_length_exceeded\"", "\"invalid_request_error\"", "\"messages\""));
  CHECK(upstream("{\"error\":{\"message\":\"x\",\"type\":\"server_error\",\"param\":null,\"code\":null}}", NULL,
                 "\"server_error\"", NULL));
  CHECK(upstream(" { \"error\" : { \"code\" : 400 , \"status\": \"INVALID_ARGUMENT\" } } ", "400", NULL, NULL));
  CHECK(upstream("{\"object\":\"error\",\"message\":\"m\",\"type\":\"BadRequestError\",\"param\":null,\"code\":400}",
                 "400", "\"BadRequestError\"", NULL));
  /* objects, arrays, booleans are no code */
  CHECK(upstream("{\"error\":{\"code\":{\"a\":1},\"type\":[1],\"param\":true}}", NULL, NULL, NULL));
  CHECK(upstream("{\"error\":{\"code\":\"a\\\"b\",\"code\":\"last\"}}", "\"last\"", NULL, NULL));
}

TEST(upstream_error_refused) {
  lr_upstream_error e;
  const char *no[] = {"", "null", "[]", "{}", "{\"error\":\"model not found\"}", "{\"error\":null}",
                      "{\"object\":\"chat.completion\",\"code\":1}", "{\"error\":{\"code\":\"x\"}",
                      "<html>502</html>", "{\"error\":{\"code\":\"x\"}} trailing"};
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
    e.code.len = 99;
    CHECK(lr_answer_error(no[i], strlen(no[i]), &e) == -1);
    CHECK(e.code.len == 0 && e.type.len == 0 && e.param.len == 0);
  }
  /* bounded: a body over LR_ERROR_BODY bytes is not read */
  static char big[LR_ERROR_BODY + 64];
  int k = snprintf(big, sizeof big, "{\"error\":{\"code\":\"c\",\"message\":\"");
  memset(big + k, 'a', sizeof big - (size_t)k);
  memcpy(big + LR_ERROR_BODY - 3, "\"}}", 3);
  CHECK(lr_answer_error(big, LR_ERROR_BODY, &e) == 0 && e.code.len == 3);
  memcpy(big + LR_ERROR_BODY - 3, "aaa", 3);
  memcpy(big + LR_ERROR_BODY - 2, "\"}}", 3);
  CHECK(lr_answer_error(big, LR_ERROR_BODY + 1, &e) == -1);
}

int main(void) {
  RUN(classify_done);
  RUN(classify_skip_keep_alive_and_after_done);
  RUN(classify_error_event_and_error_object);
  RUN(classify_bad_for_data_that_is_not_a_json_object);
  RUN(classify_data);
  RUN(classify_the_events_of_a_decoded_stream);
  RUN(finish_reason_null_or_not);
  RUN(finish_reason_with_white_space);
  RUN(finish_reason_any_choice_and_cut_buffers);
  RUN(usage_tokens_found);
  RUN(usage_tokens_with_white_space_around_the_colon);
  RUN(usage_tokens_missing_is_minus_one);
  RUN(fault_outcomes);
  RUN(upstream_error_fields);
  RUN(upstream_error_refused);
  CTEST_END();
}
