/* Rate-limit hints from raw header lines. Lines are copied into exactly-sized
 * malloc'd blocks without a NUL, so ASan/valgrind catch a read past n. */
#include "ctest.h"
#include "hints.h"
#include "rng.h"

#include <stdlib.h>

#define NOW 1714564800.0 /* 2024-05-01T12:00:00Z */

static char *exact_copy(const char *s, size_t n) {
  char *b = malloc(n);
  if (n && !b) abort();
  if (n) memcpy(b, s, n);
  return b;
}

static void feed_line(lr_hints *h, const char *line) {
  size_t n = strlen(line);
  char *b = exact_copy(line, n);
  lr_hints_feed_line(h, b, n, NOW);
  free(b);
}

/* A fresh hints struct fed the given lines (NULL-terminated). */
static lr_hints fed(const char *const *lines) {
  lr_hints h;
  lr_hints_init(&h);
  for (; *lines; lines++) feed_line(&h, *lines);
  return h;
}

#define FED(...) fed((const char *const[]){__VA_ARGS__, NULL})

static int all_unknown(const lr_hints *h) {
  return h->retry_after_s == -1 && h->retry_after_ms_s == -1 && h->reset_requests_s == -1 &&
         h->reset_tokens_s == -1 && h->reset_s == -1 && h->limit_requests == -1 &&
         h->limit_tokens == -1 && h->remaining_requests == -1 && h->remaining_tokens == -1 &&
         h->should_retry == -1 && h->event_stream == 0;
}

/* Splits text[0..n) in an exact buffer; on success checks name and value. */
static int split(const char *text, size_t n, const char *want_name, const char *want_value) {
  char *b = exact_copy(text, n);
  const char *name = (const char *)1, *value = (const char *)1;
  size_t nl = 12345, vl = 12345;
  int r = lr_header_split(b, n, &name, &nl, &value, &vl);
  int good;
  if (r == 0) {
    good = want_name && nl == strlen(want_name) && memcmp(name, want_name, nl) == 0 &&
           vl == strlen(want_value) && (vl == 0 || memcmp(value, want_value, vl) == 0) &&
           name >= b && name + nl <= b + n && value >= b && value + vl <= b + n;
  } else {
    good = !want_name && name == (const char *)1 && value == (const char *)1 && nl == 12345 &&
           vl == 12345;
  }
  if (!good) fprintf(stderr, "  split(\"%.*s\") -> %d\n", (int)n, text, r);
  free(b);
  return good;
}

#define SPLITS(text, name, value) CHECK(split(text, strlen(text), name, value))
#define NO_SPLIT(text) CHECK(split(text, strlen(text), NULL, NULL))

TEST(init_is_all_unknown) {
  lr_hints h;
  memset(&h, 0x55, sizeof h);
  lr_hints_init(&h);
  CHECK(all_unknown(&h));
  CHECK(lr_hints_server_delay(&h) < 0);
}

TEST(header_split_forms) {
  SPLITS("Retry-After: 5\r\n", "Retry-After", "5");
  SPLITS("Retry-After: 5\n", "Retry-After", "5");
  SPLITS("Retry-After: 5", "Retry-After", "5");
  SPLITS("Retry-After:5", "Retry-After", "5");
  SPLITS("Retry-After: \t 5 \t\r\n", "Retry-After", "5");
  SPLITS("Retry-After : 5\r\n", "Retry-After", "5");
  SPLITS("Retry-After\t: 5\r\n", "Retry-After", "5");
  SPLITS("X-Empty:\r\n", "X-Empty", "");
  SPLITS("X-Empty:   \t\r\n", "X-Empty", "");
  SPLITS("Date: Wed, 01 May 2024 12:00:00 GMT\r\n", "Date", "Wed, 01 May 2024 12:00:00 GMT");
  SPLITS("a:b", "a", "b");
  SPLITS("A: b\rc\r\n", "A", "b\rc");
  SPLITS("Content-Type: text/event-stream; charset=utf-8\r\n", "Content-Type",
         "text/event-stream; charset=utf-8");
  SPLITS("x: y\r\n\r\n", "x", "y");
  SPLITS("HTTPX: 1\r\n", "HTTPX", "1"); /* only "HTTP/" starts a status line */
  SPLITS("x-http/1: y", "x-http/1", "y");
}

TEST(header_split_rejects) {
  NO_SPLIT("HTTP/1.1 200 OK\r\n");
  NO_SPLIT("HTTP/2 429\r\n");
  NO_SPLIT("http/1.1 100 Continue\r\n");
  NO_SPLIT("HTTP/1.1 200 OK: yes\r\n");
  NO_SPLIT("\r\n");
  NO_SPLIT("\n");
  NO_SPLIT("\r");
  NO_SPLIT("");
  NO_SPLIT("no colon here\r\n");
  NO_SPLIT(": value\r\n");
  NO_SPLIT("  : value\r\n");
  NO_SPLIT(" folded: continuation\r\n");
  NO_SPLIT("\tcontinued\r\n");
  NO_SPLIT("   \r\n");
  CHECK(split(NULL, 0, NULL, NULL));
  CHECK(split("a:b", 1, NULL, NULL));       /* n bounds the line: no colon within it */
  CHECK(split("ab: c", 3, "ab", ""));       /* the value ends at n */
  CHECK(split("ab: cd", 5, "ab", "c"));
}

TEST(feed_each_header) {
  lr_hints h = FED("retry-after: 5\r\n", "retry-after-ms: 250\r\n", "x-ratelimit-limit-requests: 500\r\n",
                   "x-ratelimit-limit-tokens: 200000\r\n", "x-ratelimit-remaining-requests: 499\r\n",
                   "x-ratelimit-remaining-tokens: 199000\r\n", "x-ratelimit-reset-requests: 6m0s\r\n",
                   "x-ratelimit-reset-tokens: 20ms\r\n", "x-ratelimit-reset: 30\r\n",
                   "x-should-retry: true\r\n", "content-type: text/event-stream\r\n");
  CHECK_NEAR(h.retry_after_s, 5, 0);
  CHECK_NEAR(h.retry_after_ms_s, 0.25, 1e-15);
  CHECK_NEAR(h.limit_requests, 500, 0);
  CHECK_NEAR(h.limit_tokens, 200000, 0);
  CHECK_NEAR(h.remaining_requests, 499, 0);
  CHECK_NEAR(h.remaining_tokens, 199000, 0);
  CHECK_NEAR(h.reset_requests_s, 360, 0);
  CHECK_NEAR(h.reset_tokens_s, 0.02, 1e-15);
  CHECK_NEAR(h.reset_s, 30, 0);
  CHECK(h.should_retry == 1);
  CHECK(h.event_stream == 1);
}

TEST(feed_value_forms) {
  lr_hints h = FED("Retry-After: Wed, 01 May 2024 12:00:30 GMT", "x-ratelimit-reset-requests: 1.5",
                   "x-ratelimit-reset-tokens: 0", "x-ratelimit-reset: 1714564860", "x-should-retry: FALSE");
  CHECK_NEAR(h.retry_after_s, 30, 0);
  CHECK_NEAR(h.reset_requests_s, 1.5, 0); /* plain seconds accepted */
  CHECK_NEAR(h.reset_tokens_s, 0, 0);
  CHECK_NEAR(h.reset_s, 60, 0); /* an epoch */
  CHECK(h.should_retry == 0);
  h = FED("x-ratelimit-reset: 1h2m3.5s", "x-should-retry: maybe");
  CHECK_NEAR(h.reset_s, 3723.5, 0);
  CHECK(h.should_retry == -1);
}

TEST(names_are_case_insensitive) {
  lr_hints h = FED("RETRY-AFTER: 7", "Retry-After-Ms: 1500", "X-RateLimit-Remaining-Requests: 0",
                   "X-RATELIMIT-RESET-REQUESTS: 2s", "Anthropic-RateLimit-Tokens-Remaining: 10",
                   "X-Should-Retry: True", "CONTENT-TYPE: Text/Event-Stream");
  CHECK_NEAR(h.retry_after_s, 7, 0);
  CHECK_NEAR(h.retry_after_ms_s, 1.5, 0);
  CHECK_NEAR(h.remaining_requests, 0, 0);
  CHECK_NEAR(h.reset_requests_s, 2, 0);
  CHECK_NEAR(h.remaining_tokens, 10, 0);
  CHECK(h.should_retry == 1);
  CHECK(h.event_stream == 1);
}

TEST(content_type_media_type) {
  CHECK(FED("content-type: text/event-stream").event_stream == 1);
  CHECK(FED("content-type: text/event-stream; charset=utf-8").event_stream == 1);
  CHECK(FED("content-type: text/event-stream ;charset=utf-8").event_stream == 1);
  CHECK(FED("content-type:text/event-stream;").event_stream == 1);
  CHECK(FED("content-type: application/json").event_stream == 0);
  CHECK(FED("content-type: text/event-streams").event_stream == 0);
  CHECK(FED("content-type: text/event").event_stream == 0);
  CHECK(FED("content-type: xtext/event-stream").event_stream == 0);
  CHECK(FED("content-type: text/plain; x=text/event-stream").event_stream == 0);
  CHECK(FED("content-type:").event_stream == 0);
  CHECK(FED("content-type: text/event-stream", "content-type: application/json").event_stream == 0);
  CHECK(FED("x-content-type: text/event-stream").event_stream == 0);
}

TEST(minus_one_and_garbage_are_unknown) {
  lr_hints h = FED("x-ratelimit-remaining-requests: -1", "x-ratelimit-remaining-tokens: -1",
                   "x-ratelimit-limit-requests: -1", "x-ratelimit-limit-tokens: -1",
                   "x-ratelimit-reset-requests: -1", "x-ratelimit-reset-tokens: -1", "x-ratelimit-reset: -1",
                   "retry-after: -1", "retry-after-ms: -1", "anthropic-ratelimit-requests-remaining: -1",
                   "anthropic-ratelimit-requests-reset: -1");
  CHECK(all_unknown(&h));
  CHECK(lr_hints_server_delay(&h) < 0);
  h = FED("retry-after: soon", "retry-after-ms: 1e3", "x-ratelimit-remaining-requests: many",
          "x-ratelimit-reset-requests: 5x", "x-ratelimit-reset: never", "x-ratelimit-limit-tokens: NaN",
          "anthropic-ratelimit-tokens-reset: tomorrow", "retry-after: inf", "retry-after-ms: ",
          "retry-after:", "x-ratelimit-remaining-tokens: 1e400");
  CHECK(all_unknown(&h));
  /* an unreadable repeat leaves the value read before */
  h = FED("retry-after: 5", "retry-after: soon", "x-ratelimit-remaining-requests: 3",
          "x-ratelimit-remaining-requests: -1");
  CHECK_NEAR(h.retry_after_s, 5, 0);
  CHECK_NEAR(h.remaining_requests, 3, 0);
}

TEST(unknown_headers_ignored) {
  lr_hints h = FED("x-ratelimit-remaining: 0", "retry-after-msx: 5", "retry-afte: 5", "retry_after: 5",
                   "x-retry-after: 5", "ratelimit-reset: 5", "x-ratelimit-reset-request: 5",
                   "anthropic-ratelimit-input-tokens-remaining: 0", "retry-after-ms : 5x",
                   "Server: retry-after: 5", "x-should-retry-x: true", "content-types: text/event-stream");
  CHECK(all_unknown(&h));
}

TEST(status_line_resets) {
  lr_hints h = FED("HTTP/1.1 100 Continue\r\n", "retry-after: 9\r\n", "content-type: text/event-stream\r\n",
                   "x-should-retry: false\r\n", "\r\n", "HTTP/1.1 429 Too Many Requests\r\n",
                   "retry-after-ms: 20\r\n", "\r\n");
  CHECK(h.retry_after_s == -1);
  CHECK_NEAR(h.retry_after_ms_s, 0.02, 1e-15);
  CHECK(h.event_stream == 0);
  CHECK(h.should_retry == -1);
  h = FED("HTTP/1.1 302 Found", "x-ratelimit-remaining-requests: 0", "x-ratelimit-reset-requests: 1s",
          "HTTP/2 200", "content-type: application/json");
  CHECK(h.remaining_requests == -1 && h.reset_requests_s == -1);
  CHECK(lr_hints_server_delay(&h) < 0);
  h = FED("retry-after: 3", "http/2 200");
  CHECK(all_unknown(&h));
  h = FED("retry-after: 3", "\r\n", "   ", "garbage line");
  CHECK_NEAR(h.retry_after_s, 3, 0); /* blank and broken lines reset nothing */
}

TEST(request_id_kept_when_visible_ascii_and_short) {
  lr_hints h = FED("X-Request-Id:  req_abc123 \r\n");
  CHECK(strcmp(h.request_id, "req_abc123") == 0);
  char line[LR_REQUEST_ID_MAX + 32];
  snprintf(line, sizeof line, "x-request-id: %0*d", LR_REQUEST_ID_MAX, 7);
  h = FED(line);
  CHECK(strlen(h.request_id) == LR_REQUEST_ID_MAX);
  snprintf(line, sizeof line, "x-request-id: %0*d", LR_REQUEST_ID_MAX + 1, 7);
  h = FED("x-request-id: a", line); /* too long: dropped, not cut */
  CHECK(h.request_id[0] == 0);
  h = FED("x-request-id: a b");
  CHECK(h.request_id[0] == 0);
  h = FED("x-request-id: a\x01b");
  CHECK(h.request_id[0] == 0);
  h = FED("x-request-id: caf\xc3\xa9");
  CHECK(h.request_id[0] == 0);
  h = FED("x-request-id:");
  CHECK(h.request_id[0] == 0);
  h = FED("x-request-id: one", "HTTP/1.1 200 OK");
  CHECK(h.request_id[0] == 0); /* only the final response's */
  h = FED("x-request-id: one", "x-request-id: two");
  CHECK(strcmp(h.request_id, "two") == 0);
  CHECK(all_unknown(&h));
}

TEST(feed_block_reads_a_raw_head) {
  const char *block = "HTTP/1.1 100 Continue\r\nx-request-id: early\r\n\r\n"
                      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Request-Id: req_9\r\n"
                      "retry-after: 2\nno colon here\r\n\r\n";
  lr_hints h;
  lr_hints_init(&h);
  lr_hints_feed_block(&h, block, strlen(block), NOW);
  CHECK(strcmp(h.request_id, "req_9") == 0);
  CHECK(h.event_stream == 1);
  CHECK_NEAR(h.retry_after_s, 2, 0);
  lr_hints_init(&h);
  lr_hints_feed_block(&h, "x-request-id: last", 18, NOW); /* no final line end */
  CHECK(strcmp(h.request_id, "last") == 0);
  lr_hints_init(&h);
  lr_hints_feed_block(&h, "", 0, NOW);
  CHECK(all_unknown(&h));
}

TEST(anthropic_headers) {
  lr_hints h = FED("anthropic-ratelimit-requests-remaining: 0",
                   "anthropic-ratelimit-requests-reset: 2024-05-01T12:00:30Z",
                   "anthropic-ratelimit-tokens-remaining: 0",
                   "anthropic-ratelimit-tokens-reset: 2024-05-01T12:01:00.5+00:00");
  CHECK_NEAR(h.remaining_requests, 0, 0);
  CHECK_NEAR(h.reset_requests_s, 30, 1e-9);
  CHECK_NEAR(h.remaining_tokens, 0, 0);
  CHECK_NEAR(h.reset_tokens_s, 60.5, 1e-9);
  CHECK_NEAR(lr_hints_server_delay(&h), 60.5, 1e-9);
  h = FED("anthropic-ratelimit-requests-reset: 2024-05-01T11:00:00Z", /* past: 0 */
          "anthropic-ratelimit-tokens-reset: 2024-05-01T14:00:00+02:00");
  CHECK_NEAR(h.reset_requests_s, 0, 0);
  CHECK_NEAR(h.reset_tokens_s, 0, 0);
  h = FED("anthropic-ratelimit-requests-reset: 30", "anthropic-ratelimit-tokens-reset: 6m0s");
  CHECK(h.reset_requests_s == -1 && h.reset_tokens_s == -1);
  lr_hints_init(&h);
  const char v[] = "2024-05-01T12:00:30Z";
  lr_hints_feed(&h, "anthropic-ratelimit-requests-reset", 34, v, strlen(v), NAN);
  CHECK(h.reset_requests_s == -1); /* no usable now: unknown */
}

TEST(feed_takes_name_and_value_directly) {
  lr_hints h;
  lr_hints_init(&h);
  lr_hints_feed(&h, "retry-afterXXX", 11, " 12 xx", 3, NOW); /* lengths bound both */
  CHECK_NEAR(h.retry_after_s, 12, 0);
  lr_hints_feed(&h, "x-should-retry", 14, "\ttrue ", 6, NOW);
  CHECK(h.should_retry == 1);
  lr_hints_feed(&h, "", 0, "", 0, NOW);
  lr_hints_feed(&h, NULL, 0, NULL, 0, NOW);
  lr_hints_feed(&h, "content-type", 12, NULL, 0, NOW);
  CHECK(h.event_stream == 0);
}

static double delay(double ra, double ra_ms, double rem_req, double reset_req, double rem_tok,
                    double reset_tok, double reset) {
  lr_hints h;
  lr_hints_init(&h);
  h.retry_after_s = ra;
  h.retry_after_ms_s = ra_ms;
  h.remaining_requests = rem_req;
  h.reset_requests_s = reset_req;
  h.remaining_tokens = rem_tok;
  h.reset_tokens_s = reset_tok;
  h.reset_s = reset;
  return lr_hints_server_delay(&h);
}

TEST(server_delay_precedence) {
  /*           ra   ra_ms  rem_r reset_r rem_t reset_t reset */
  CHECK(delay(-1, -1, -1, -1, -1, -1, -1) < 0);
  CHECK_NEAR(delay(5, 0.02, 0, 9, 0, 9, 9), 0.02, 0);  /* retry-after-ms first */
  CHECK_NEAR(delay(5, 0, -1, -1, -1, -1, -1), 0, 0);   /* a known 0 counts */
  CHECK_NEAR(delay(5, -1, 0, 9, 0, 9, 9), 5, 0);       /* then Retry-After, even if smaller */
  CHECK_NEAR(delay(0, -1, 0, 9, -1, -1, -1), 0, 0);
  CHECK_NEAR(delay(-1, -1, 0, 2, 0, 5, 9), 5, 0);      /* the larger exhausted reset */
  CHECK_NEAR(delay(-1, -1, 0, 7, 0, 5, 9), 7, 0);
  CHECK_NEAR(delay(-1, -1, 0, 2, 10, 5, 9), 2, 0);     /* tokens not exhausted */
  CHECK_NEAR(delay(-1, -1, 3, 2, 0, 5, 9), 5, 0);      /* requests not exhausted */
  CHECK(delay(-1, -1, 3, 2, 10, 5, 9) < 0);            /* nothing exhausted */
  CHECK(delay(-1, -1, -1, 2, -1, 5, 9) < 0);           /* remaining unknown */
  CHECK_NEAR(delay(-1, -1, 0, -1, -1, -1, 9), 9, 0);   /* x-ratelimit-reset when requests hit 0 */
  CHECK_NEAR(delay(-1, -1, 0, -1, 0, -1, 9), 9, 0);
  CHECK(delay(-1, -1, -1, -1, 0, -1, 9) < 0);          /* ... not for tokens */
  CHECK(delay(-1, -1, 3, -1, -1, -1, 9) < 0);
  CHECK(delay(-1, -1, 0, -1, -1, -1, -1) < 0);
  CHECK_NEAR(delay(-1, -1, 0, 0, -1, -1, 9), 0, 0);    /* a known zero reset wins over reset_s */
}

TEST(server_delay_from_lines) {
  lr_hints h = FED("HTTP/2 429", "x-ratelimit-limit-requests: 60", "x-ratelimit-remaining-requests: 0",
                   "x-ratelimit-reset-requests: 1s", "x-ratelimit-remaining-tokens: 0",
                   "x-ratelimit-reset-tokens: 6m0s");
  CHECK_NEAR(lr_hints_server_delay(&h), 360, 0);
  feed_line(&h, "retry-after: 2");
  CHECK_NEAR(lr_hints_server_delay(&h), 2, 0);
  feed_line(&h, "retry-after-ms: 120.5");
  CHECK_NEAR(lr_hints_server_delay(&h), 0.1205, 1e-15);
  h = FED("x-ratelimit-remaining-requests: -1", "x-ratelimit-reset-requests: 1s"); /* Azure */
  CHECK(lr_hints_server_delay(&h) < 0);
}

/* Random lines built from header-ish pieces: every field stays -1 or a
 * finite non-negative number, and every read stays inside the line. */
TEST(random_lines_keep_invariants) {
  static const char *const names[] = {"retry-after", "Retry-After-Ms", "x-ratelimit-reset",
                                      "x-ratelimit-reset-tokens", "x-ratelimit-remaining-requests",
                                      "anthropic-ratelimit-requests-reset", "content-type",
                                      "x-should-retry", "HTTP/1.1", "", " x"};
  static const char *const values[] = {"5", "-1", "1h2m3.5s", "Wed, 01 May 2024 12:00:30 GMT",
                                       "2024-05-01T12:00:30Z", "text/event-stream", "true", "1e999",
                                       "99999999999999999999", "", "\xff\xfe", "1714564830", ":"};
  static const char *const seps[] = {": ", ":", " : ", " ", ":\t"};
  static const char *const ends[] = {"\r\n", "\n", "", "\r", " \r\n"};
  lr_rng rng;
  lr_rng_seed(&rng, 99);
  lr_hints h;
  lr_hints_init(&h);
  char line[256];
  for (int i = 0; i < 20000; i++) {
    int n = snprintf(line, sizeof line, "%s%s%s%s", names[lr_rng_next(&rng) % 11],
                     seps[lr_rng_next(&rng) % 5], values[lr_rng_next(&rng) % 13], ends[lr_rng_next(&rng) % 5]);
    size_t drop = lr_rng_next(&rng) % 3, cut = (size_t)n > drop ? (size_t)n - drop : 0;
    char *b = exact_copy(line, cut);
    lr_hints_feed_line(&h, b, cut, NOW);
    free(b);
    const double f[] = {h.retry_after_s, h.retry_after_ms_s, h.reset_requests_s, h.reset_tokens_s, h.reset_s,
                        h.limit_requests, h.limit_tokens, h.remaining_requests, h.remaining_tokens,
                        lr_hints_server_delay(&h)};
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) CHECK(f[k] == -1 || (isfinite(f[k]) && f[k] >= 0));
    CHECK(h.should_retry >= -1 && h.should_retry <= 1);
    CHECK(h.event_stream == 0 || h.event_stream == 1);
  }
}

int main(void) {
  RUN(init_is_all_unknown);
  RUN(header_split_forms);
  RUN(header_split_rejects);
  RUN(feed_each_header);
  RUN(feed_value_forms);
  RUN(names_are_case_insensitive);
  RUN(content_type_media_type);
  RUN(minus_one_and_garbage_are_unknown);
  RUN(unknown_headers_ignored);
  RUN(status_line_resets);
  RUN(request_id_kept_when_visible_ascii_and_short);
  RUN(feed_block_reads_a_raw_head);
  RUN(anthropic_headers);
  RUN(feed_takes_name_and_value_directly);
  RUN(server_delay_precedence);
  RUN(server_delay_from_lines);
  RUN(random_lines_keep_invariants);
  CTEST_END();
}
