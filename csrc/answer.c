/* See answer.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "answer.h"

#include <stdio.h>
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

int lr_answer_event_type(const lr_sse_event *ev, const char **type, size_t *len) {
  if (ev->event_len && !(ev->event_len == 7 && !memcmp(ev->event, "message", 7))) {
    *type = ev->event;
    *len = ev->event_len;
    return 0;
  }
  size_t off, n;
  if (lr_json_member(ev->data, ev->data_len, "type", 4, &off, &n) != 0 || n < 2 || ev->data[off] != '"') return -1;
  *type = ev->data + off + 1;
  *len = n - 2;
  return 0;
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

static double usage_field(const char *u, size_t n, const char *name, size_t len) {
  size_t off, vlen;
  return lr_json_member(u, n, name, len, &off, &vlen) == 0 ? lr_json_whole(u + off, vlen) : -1;
}

int lr_answer_usage(const char *b, size_t n, double *prompt, double *completion, double *total) {
  size_t off, len;
  *prompt = *completion = *total = -1;
  if (lr_json_member(b, n, "usage", 5, &off, &len) != 0 || len == 0 || b[off] != '{') return -1;
  *prompt = usage_field(b + off, len, "prompt_tokens", 13);
  if (*prompt < 0) *prompt = usage_field(b + off, len, "input_tokens", 12); /* Responses' names */
  *completion = usage_field(b + off, len, "completion_tokens", 17);
  if (*completion < 0) *completion = usage_field(b + off, len, "output_tokens", 13);
  *total = usage_field(b + off, len, "total_tokens", 12);
  return 0;
}

/* A member of the object o (at base + o.off) as a span into base: strings and numbers only. */
static lr_span scalar_member(const char *base, lr_span o, const char *name) {
  lr_span v = {0, 0};
  size_t off, len;
  if (lr_json_member(base + o.off, o.len, name, strlen(name), &off, &len) != 0 || len == 0) return v;
  char c = base[o.off + off];
  if (c == '"' || c == '-' || (c >= '0' && c <= '9')) {
    v.off = o.off + off;
    v.len = len;
  }
  return v;
}

int lr_answer_error(const char *b, size_t n, lr_upstream_error *e) {
  lr_span zero = {0, 0}, o = {0, n};
  size_t off, len;
  e->code = e->type = e->param = zero;
  if (n > LR_ERROR_BODY || lr_json_check_object(b, n, LR_MAX_JSON_DEPTH) != 0) return -1;
  if (lr_json_member(b, n, "error", 5, &off, &len) == 0 && len && b[off] == '{') {
    o.off = off;
    o.len = len;
  } else if (!(lr_json_member(b, n, "object", 6, &off, &len) == 0 && len == 7 && !memcmp(b + off, "\"error\"", 7))) {
    return -1;
  }
  e->code = scalar_member(b, o, "code");
  e->type = scalar_member(b, o, "type");
  e->param = scalar_member(b, o, "param");
  return 0;
}

size_t lr_answer_max_event(size_t max_response_bytes) {
  size_t cap = (size_t)4 << 20;
  return max_response_bytes < cap ? max_response_bytes : cap;
}

lr_error_kind lr_answer_fault(lr_stream_fault f, size_t max_event, char *buf, size_t n) {
  switch (f) {
  case LR_SF_ERROR_EVENT:
    snprintf(buf, n, "the stream carried an error event");
    return LR_E_SERVER_ERROR;
  case LR_SF_BAD_EVENT:
    snprintf(buf, n, "a stream event is not a JSON object");
    return LR_E_DECODE;
  case LR_SF_TOO_BIG:
    snprintf(buf, n, "a stream event exceeds %zu bytes", max_event);
    return LR_E_HTTP;
  case LR_SF_RESP_FAILED: /* the server failed this response: another endpoint may not */
    snprintf(buf, n, "the Responses stream ended with response.failed");
    return LR_E_SERVER_ERROR;
  case LR_SF_RESP_INCOMPLETE: /* the server stopped it (max_output_tokens, content_filter): final, as a cut */
    snprintf(buf, n, "the Responses stream ended with response.incomplete");
    return LR_E_STREAM_INTERRUPTED;
  case LR_SF_NOMEM:
    snprintf(buf, n, "out of memory while reading the stream");
    return LR_E_CONNECT;
  default:
    if (n) buf[0] = 0;
    return LR_E_NONE;
  }
}
