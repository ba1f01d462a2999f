/* Fuzz target: every delay parser, the header splitter and the hints.
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -Icsrc ...
 * elsewhere: add -DLR_FUZZ_STANDALONE for a plain main (fuzz.h). */
#include <math.h>

#include "backoff.h"
#include "fuzz.h"
#include "hints.h"

#define NOW 1714564800.0
#define SENTINEL -7.0
/* 0000-01-01 and 10000-01-01 (a leap second), each widened by a day of UTC offsets */
#define MIN_EPOCH (-62167219200.0 - 86400)
#define MAX_EPOCH (253402300800.0 + 86400)

typedef struct result {
  int rc;
  double v;
} result;

/* The parser's answer; a failure must leave *out alone. */
static result parse(const char *s, size_t n, int which) {
  result r = {0, SENTINEL};
  switch (which) {
  case 0: r.rc = lr_parse_seconds(s, n, &r.v); break;
  case 1: r.rc = lr_parse_go_duration(s, n, &r.v); break;
  case 2: r.rc = lr_parse_retry_after_ms(s, n, &r.v); break;
  case 3: r.rc = lr_parse_retry_after(s, n, NOW, &r.v); break;
  case 4: r.rc = lr_parse_reset(s, n, NOW, &r.v); break;
  case 5: r.rc = lr_parse_http_date(s, n, &r.v); break;
  default: r.rc = lr_parse_rfc3339(s, n, &r.v); break;
  }
  REQUIRE(r.rc == 0 || (r.rc == -1 && r.v == SENTINEL));
  if (r.rc == 0 && which < 5) REQUIRE(isfinite(r.v) && r.v >= 0 && r.v <= 1e12);
  if (r.rc == 0 && which >= 5) REQUIRE(isfinite(r.v) && r.v >= MIN_EPOCH && r.v <= MAX_EPOCH);
  return r;
}

static void check_hints(const lr_hints *h) {
  const double f[] = {h->retry_after_s,   h->retry_after_ms_s, h->reset_requests_s,
                      h->reset_tokens_s,  h->reset_s,          h->limit_requests,
                      h->limit_tokens,    h->remaining_requests, h->remaining_tokens,
                      lr_hints_server_delay(h)};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) REQUIRE(f[i] == -1 || (isfinite(f[i]) && f[i] >= 0));
  REQUIRE(h->should_retry >= -1 && h->should_retry <= 1);
  REQUIRE(h->event_stream == 0 || h->event_stream == 1);
  size_t n = strnlen(h->request_id, sizeof h->request_id);
  REQUIRE(n <= LR_REQUEST_ID_MAX);
  for (size_t i = 0; i < n; i++) REQUIRE(h->request_id[i] > 0x20 && h->request_id[i] < 0x7f);
}

static int is_ws(char c) { return c == ' ' || c == '\t'; }

static void check_split(const char *s, size_t n) {
  const char *name = NULL, *value = NULL;
  size_t nl = 0, vl = 0;
  int rc = lr_header_split(s, n, &name, &nl, &value, &vl);
  if (rc != 0) {
    REQUIRE(rc == -1 && !name && !value);
    return;
  }
  REQUIRE(name == s && nl > 0 && nl < n && !is_ws(name[0]) && !is_ws(name[nl - 1]));
  REQUIRE(memchr(name, ':', nl) == NULL);
  REQUIRE(value >= name + nl && value + vl <= s + n);
  REQUIRE(vl == 0 || (!is_ws(value[0]) && !is_ws(value[vl - 1]) && value[vl - 1] != '\r' &&
                         value[vl - 1] != '\n'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  result r[7];
  for (int i = 0; i < 7; i++) r[i] = parse(s, size, i);

  /* cheap cross-checks between parsers */
  if (r[0].rc == 0) {
    REQUIRE(r[3].rc == 0 && r[3].v == r[0].v);
    double want = r[0].v > 1e9 ? fmax(0, r[0].v - NOW) : r[0].v;
    REQUIRE(r[4].rc == 0 && r[4].v == want);
    REQUIRE(r[2].rc == 0 && r[2].v == r[0].v / 1000);
  } else {
    REQUIRE(r[4].rc == r[1].rc && (r[1].rc != 0 || r[4].v == r[1].v));
  }
  if (r[5].rc == 0) REQUIRE(r[3].rc == 0); /* every date is a Retry-After */

  /* surrounding spaces and tabs change nothing */
  if (size <= 4096) {
    char *padded = malloc(size + 3);
    if (!padded) abort();
    padded[0] = ' ';
    padded[1] = '\t';
    if (size) memcpy(padded + 2, s, size);
    padded[size + 2] = ' ';
    for (int i = 0; i < 7; i++) {
      result p = parse(padded, size + 3, i);
      REQUIRE(p.rc == r[i].rc && p.v == r[i].v);
    }
    free(padded);
  }

  /* the input as one header line, then as a header block */
  check_split(s, size);
  lr_hints h;
  lr_hints_init(&h);
  lr_hints_feed_line(&h, s, size, NOW);
  check_hints(&h);
  lr_hints_init(&h);
  for (size_t start = 0, i = 0; i <= size; i++) {
    if (i == size || s[i] == '\n') {
      size_t end = i < size ? i + 1 : i;
      check_split(s + start, end - start);
      lr_hints_feed_line(&h, s + start, end - start, NOW);
      check_hints(&h);
      start = end;
    }
  }
  /* the same block fed whole reads the same */
  lr_hints whole;
  lr_hints_init(&whole);
  lr_hints_feed_block(&whole, s, size, NOW);
  REQUIRE(strcmp(whole.request_id, h.request_id) == 0 && whole.event_stream == h.event_stream &&
          whole.should_retry == h.should_retry && whole.retry_after_s == h.retry_after_s &&
          lr_hints_server_delay(&whole) == lr_hints_server_delay(&h));
  /* and split at its first byte's choosing, fed straight to lr_hints_feed */
  if (size > 0) {
    size_t cut = data[0] % size;
    lr_hints_init(&h);
    lr_hints_feed(&h, s + 1, cut ? cut - 1 : 0, s + cut, size - cut, NOW);
    check_hints(&h);
  }
  return 0;
}
