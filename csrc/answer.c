/* See answer.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "answer.h"

#include <string.h>

#include "jsoncheck.h"

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* {"error": ...}: how OpenAI-compatible servers report a failure mid-stream. */
static int is_error_object(const char *b, size_t n) {
  const char *p = skip_ws(b, b + n), *end = b + n;
  if (p == end || *p != '{') return 0;
  p = skip_ws(p + 1, end);
  return (size_t)(end - p) >= 7 && memcmp(p, "\"error\"", 7) == 0;
}

lr_stream_event_class lr_answer_classify(const lr_sse_event *ev, int done) {
  if (ev->done) return LR_SEV_DONE;
  int error_event = ev->event_len == 5 && !memcmp(ev->event, "error", 5);
  if (done || (ev->data_len == 0 && !error_event)) return LR_SEV_SKIP;
  if (error_event || is_error_object(ev->data, ev->data_len)) return LR_SEV_ERROR;
  if (lr_json_check_object(ev->data, ev->data_len, LR_MAX_JSON_DEPTH) != 0) return LR_SEV_BAD;
  return LR_SEV_DATA;
}

int lr_answer_has_finish_reason(const char *b, size_t n) {
  static const char key[] = "\"finish_reason\"";
  const char *p = b, *end = b + n;
  while ((p = memmem(p, (size_t)(end - p), key, sizeof key - 1))) {
    p = skip_ws(p + sizeof key - 1, end);
    if (p < end && *p == ':') p = skip_ws(p + 1, end);
    if (p < end && *p != 'n') return 1;
  }
  return 0;
}

double lr_answer_usage_tokens(const char *b, size_t n) {
  static const char key[] = "\"total_tokens\"";
  const char *p = memmem(b, n, key, sizeof key - 1), *end = b + n;
  if (!p) return -1;
  p = skip_ws(p + sizeof key - 1, end);
  if (p < end && *p == ':') p = skip_ws(p + 1, end);
  double v = 0;
  int digits = 0;
  while (p < end && *p >= '0' && *p <= '9' && digits < 15) {
    v = v * 10 + (*p++ - '0');
    digits++;
  }
  return digits ? v : -1;
}
