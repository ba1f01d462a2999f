/* See evbuf.h. */
#include "evbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsoncheck.h"

int lr_evq_push(lr_evq *q, const char *data, size_t n) {
  size_t need = q->len + 4 + n;
  if (n > UINT32_MAX || need < n) return -1;
  if (need > q->cap) {
    size_t cap = q->cap ? q->cap : 4096;
    while (cap < need) cap *= 2;
    char *b = realloc(q->buf, cap);
    if (!b) return -1;
    q->buf = b;
    q->cap = cap;
  }
  uint32_t len = (uint32_t)n;
  memcpy(q->buf + q->len, &len, 4);
  memcpy(q->buf + q->len + 4, data, n);
  q->len = need;
  q->n++;
  return 0;
}

const char *lr_evq_next(const char *buf, size_t buf_len, size_t *off, size_t *len) {
  if (*off + 4 > buf_len) return NULL;
  uint32_t l;
  memcpy(&l, buf + *off, 4);
  if (l > buf_len - *off - 4) return NULL;
  const char *p = buf + *off + 4;
  *len = l;
  *off += 4 + (size_t)l;
  return p;
}

void lr_evq_clear(lr_evq *q) {
  q->len = 0;
  q->n = 0;
}

void lr_evq_free(lr_evq *q) {
  free(q->buf);
  memset(q, 0, sizeof *q);
}

void lr_evstream_init(lr_evstream *s, size_t max_event) {
  lr_sse_init(&s->sse, max_event);
  s->api = LR_API_CHAT;
  s->saw_done = s->saw_finish = 0;
  s->fault = LR_SF_NONE;
  s->usage = -1;
  s->fault_text_len = 0;
}

void lr_evstream_reset(lr_evstream *s) {
  lr_sse_reset(&s->sse);
  s->saw_done = s->saw_finish = 0;
  s->fault = LR_SF_NONE;
  s->usage = -1;
  s->fault_text_len = 0;
}

void lr_evstream_free(lr_evstream *s) { lr_sse_free(&s->sse); }

typedef struct {
  lr_evstream *s;
  lr_evq *q;
} feed_ctx;

static int stop(lr_evstream *s, int fault, const char *text, size_t n) {
  s->fault = fault;
  if (n > sizeof s->fault_text) n = sizeof s->fault_text;
  if (n) memcpy(s->fault_text, text, n);
  s->fault_text_len = n;
  return 1;
}

#define IS(t, n, lit) ((n) == sizeof lit - 1 && memcmp((t), lit, sizeof lit - 1) == 0)

/* A Responses event: named, no [DONE]; complete only after response.completed
 * (its usage inside "response"); response.failed and .incomplete end it. */
static int on_responses_event(feed_ctx *f, const lr_sse_event *ev) {
  lr_evstream *s = f->s;
  if (s->saw_done || ev->data_len == 0 || ev->done) return 0; /* after the end, keep-alives, a stray [DONE] */
  const char *t;
  size_t n;
  int typed = lr_answer_event_type(ev, &t, &n) == 0;
  if (typed && IS(t, n, "error")) return stop(s, LR_SF_ERROR_EVENT, ev->data, ev->data_len);
  if (lr_json_check_object(ev->data, ev->data_len, LR_MAX_JSON_DEPTH) != 0)
    return stop(s, LR_SF_BAD_EVENT, ev->data, ev->data_len);
  if (typed && IS(t, n, "response.failed")) return stop(s, LR_SF_RESP_FAILED, ev->data, ev->data_len);
  if (typed && IS(t, n, "response.incomplete")) return stop(s, LR_SF_RESP_INCOMPLETE, ev->data, ev->data_len);
  if (typed && IS(t, n, "response.completed")) {
    s->saw_done = 1;
    double u = lr_answer_usage_tokens(ev->data, ev->data_len);
    if (u >= 0) s->usage = u;
  }
  if (lr_evq_push(f->q, ev->data, ev->data_len) != 0) return stop(s, LR_SF_NOMEM, NULL, 0);
  return 0;
}

static int on_event(void *ud, const lr_sse_event *ev) {
  feed_ctx *f = ud;
  lr_evstream *s = f->s;
  if (s->api == LR_API_RESPONSES) return on_responses_event(f, ev);
  switch (lr_answer_classify(ev, s->saw_done)) {
  case LR_SEV_DONE:
    s->saw_done = 1;
    return 0;
  case LR_SEV_SKIP:
    return 0;
  case LR_SEV_ERROR:
    return stop(s, LR_SF_ERROR_EVENT, ev->data, ev->data_len);
  case LR_SEV_BAD:
    return stop(s, LR_SF_BAD_EVENT, ev->data, ev->data_len);
  case LR_SEV_DATA:
    break;
  }
  if (!s->saw_finish && lr_answer_has_finish_reason(ev->data, ev->data_len)) s->saw_finish = 1;
  double u = lr_answer_usage_tokens(ev->data, ev->data_len);
  if (u >= 0) s->usage = u;
  if (lr_evq_push(f->q, ev->data, ev->data_len) != 0) return stop(s, LR_SF_NOMEM, NULL, 0);
  return 0;
}

int lr_evstream_feed(lr_evstream *s, lr_evq *q, const char *b, size_t n) {
  if (s->fault != LR_SF_NONE) return s->fault;
  feed_ctx f = {s, q};
  int rc = lr_sse_feed(&s->sse, b, n, on_event, &f);
  if (rc == LR_SSE_TOO_BIG) s->fault = LR_SF_TOO_BIG;
  else if (rc == LR_SSE_NOMEM) s->fault = LR_SF_NOMEM;
  return s->fault;
}

int lr_evstream_complete(const lr_evstream *s) {
  return s->fault == LR_SF_NONE && (s->saw_done || s->saw_finish);
}
