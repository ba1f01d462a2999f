/* Rate-limit hints: one attempt's response headers, normalised from the
 * dialects of OpenAI, Azure, Anthropic and relays (see REFERENCE.md). */
#include "hints.h"

#include "backoff.h"

#include <stddef.h>
#include <string.h>

void lr_hints_init(lr_hints *h) {
  h->retry_after_s = -1;
  h->retry_after_ms_s = -1;
  h->reset_requests_s = -1;
  h->reset_tokens_s = -1;
  h->reset_s = -1;
  h->limit_requests = -1;
  h->limit_tokens = -1;
  h->remaining_requests = -1;
  h->remaining_tokens = -1;
  h->should_retry = -1;
  h->event_stream = 0;
  h->request_id[0] = 0;
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }
static int is_ws(char c) { return c == ' ' || c == '\t'; }

int lr_equals_ci(const char *s, size_t n, const char *w) {
  size_t i = 0;
  for (; i < n && w[i]; i++)
    if (lower(s[i]) != w[i]) return 0;
  return i == n && !w[i];
}

static int is_status_line(const char *line, size_t n) { return n >= 5 && lr_equals_ci(line, 5, "http/"); }

int lr_header_split(const char *line, size_t n, const char **name, size_t *name_len,
                    const char **value, size_t *value_len) {
  const char *end, *colon, *ne, *v;
  if (n == 0) return -1;
  end = line + n;
  while (end > line && (end[-1] == '\r' || end[-1] == '\n' || is_ws(end[-1]))) end--;
  /* A line starting with white space continues the previous one (obs-fold). */
  if (end == line || is_ws(*line) || is_status_line(line, (size_t)(end - line))) return -1;
  colon = memchr(line, ':', (size_t)(end - line));
  if (!colon) return -1;
  for (ne = colon; ne > line && is_ws(ne[-1]); ne--) {}
  if (ne == line) return -1;
  for (v = colon + 1; v < end && is_ws(*v); v++) {}
  *name = line;
  *name_len = (size_t)(ne - line);
  *value = v;
  *value_len = (size_t)(end - v);
  return 0;
}

/* How a header's value is read. */
enum form {
  F_NUMBER,      /* plain non-negative number */
  F_MS,          /* retry-after-ms */
  F_RETRY_AFTER, /* seconds or an HTTP date */
  F_DURATION,    /* a Go duration, or plain seconds (some compatible servers send "1.5") */
  F_RESET,       /* x-ratelimit-reset: epoch, seconds or duration */
  F_MOMENT,      /* anthropic: an RFC 3339 moment */
  F_FLAG,        /* x-should-retry */
  F_MEDIA_TYPE,  /* content-type */
  F_REQUEST_ID   /* x-request-id */
};

#define FIELD(f) offsetof(lr_hints, f)
static const struct {
  const char *name; /* lower case */
  enum form form;
  size_t field; /* the double it sets, for the numeric forms */
} known_headers[] = {
    {"retry-after", F_RETRY_AFTER, FIELD(retry_after_s)},
    {"retry-after-ms", F_MS, FIELD(retry_after_ms_s)},
    {"x-ratelimit-limit-requests", F_NUMBER, FIELD(limit_requests)},
    {"x-ratelimit-limit-tokens", F_NUMBER, FIELD(limit_tokens)},
    {"x-ratelimit-remaining-requests", F_NUMBER, FIELD(remaining_requests)},
    {"x-ratelimit-remaining-tokens", F_NUMBER, FIELD(remaining_tokens)},
    {"x-ratelimit-reset-requests", F_DURATION, FIELD(reset_requests_s)},
    {"x-ratelimit-reset-tokens", F_DURATION, FIELD(reset_tokens_s)},
    {"x-ratelimit-reset", F_RESET, FIELD(reset_s)},
    {"anthropic-ratelimit-requests-remaining", F_NUMBER, FIELD(remaining_requests)},
    {"anthropic-ratelimit-requests-reset", F_MOMENT, FIELD(reset_requests_s)},
    {"anthropic-ratelimit-tokens-remaining", F_NUMBER, FIELD(remaining_tokens)},
    {"anthropic-ratelimit-tokens-reset", F_MOMENT, FIELD(reset_tokens_s)},
    {"x-should-retry", F_FLAG, 0},
    {"content-type", F_MEDIA_TYPE, 0},
    {"x-request-id", F_REQUEST_ID, 0},
};
#undef FIELD

/* A delay from now_epoch until an RFC 3339 moment (0 once it passed). */
static int parse_moment(const char *v, size_t n, double now_epoch, double *out) {
  double at;
  if (lr_parse_rfc3339(v, n, &at)) return -1;
  double d = at - now_epoch;
  if (!(d <= 1e12)) return -1; /* absurd, or NaN from a bad now */
  *out = d > 0 ? d : 0;
  return 0;
}

static int parse_number(enum form form, const char *v, size_t n, double now_epoch, double *out) {
  switch (form) {
  case F_NUMBER: return lr_parse_seconds(v, n, out);
  case F_MS: return lr_parse_retry_after_ms(v, n, out);
  case F_RETRY_AFTER: return lr_parse_retry_after(v, n, now_epoch, out);
  case F_DURATION: return lr_parse_go_duration(v, n, out) == 0 ? 0 : lr_parse_seconds(v, n, out);
  case F_RESET: return lr_parse_reset(v, n, now_epoch, out);
  case F_MOMENT: return parse_moment(v, n, now_epoch, out);
  default: return -1;
  }
}

void lr_hints_feed(lr_hints *h, const char *name, size_t name_len, const char *value,
                   size_t value_len, double now_epoch) {
  const char *v = value;
  size_t n = value_len, i = 0, count = sizeof known_headers / sizeof known_headers[0];
  double x;
  while (i < count && !lr_equals_ci(name, name_len, known_headers[i].name)) i++;
  if (i == count) return;
  while (n && is_ws(*v)) v++, n--;
  while (n && is_ws(v[n - 1])) n--;
  if (known_headers[i].form == F_FLAG) {
    if (lr_equals_ci(v, n, "true")) h->should_retry = 1;
    else if (lr_equals_ci(v, n, "false")) h->should_retry = 0;
  } else if (known_headers[i].form == F_MEDIA_TYPE) {
    const char *semi = n ? memchr(v, ';', n) : NULL;
    size_t m = semi ? (size_t)(semi - v) : n;
    while (m && is_ws(v[m - 1])) m--;
    h->event_stream = lr_equals_ci(v, m, "text/event-stream");
  } else if (known_headers[i].form == F_REQUEST_ID) {
    size_t k = 0;
    while (k < n && v[k] > 0x20 && v[k] < 0x7f) k++;
    int ok = n > 0 && k == n && n <= LR_REQUEST_ID_MAX;
    if (ok) memcpy(h->request_id, v, n);
    h->request_id[ok ? n : 0] = 0;
  } else if (parse_number(known_headers[i].form, v, n, now_epoch, &x) == 0) {
    *(double *)((char *)h + known_headers[i].field) = x;
  }
}

void lr_hints_feed_line(lr_hints *h, const char *line, size_t n, double now_epoch) {
  const char *name, *value;
  size_t name_len, value_len;
  if (is_status_line(line, n)) lr_hints_init(h);
  else if (!lr_header_split(line, n, &name, &name_len, &value, &value_len))
    lr_hints_feed(h, name, name_len, value, value_len, now_epoch);
}

void lr_hints_feed_block(lr_hints *h, const char *block, size_t n, double now_epoch) {
  const char *p = block, *end = block + n;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl + 1 : end;
    lr_hints_feed_line(h, p, (size_t)(le - p), now_epoch);
    p = le;
  }
}

double lr_hints_server_delay(const lr_hints *h) {
  double d = -1;
  if (h->retry_after_ms_s >= 0) return h->retry_after_ms_s;
  if (h->retry_after_s >= 0) return h->retry_after_s;
  if (h->remaining_requests == 0 && h->reset_requests_s > d) d = h->reset_requests_s;
  if (h->remaining_tokens == 0 && h->reset_tokens_s > d) d = h->reset_tokens_s;
  if (d >= 0) return d;
  if (h->remaining_requests == 0 && h->reset_s >= 0) return h->reset_s;
  return -1;
}
