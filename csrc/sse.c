/* The event-stream decoder. See sse.h. Lines are found with memchr and
 * handled straight from the caller's buffer; only a line cut by a feed's end
 * is copied, so the steady state copies each data byte once and allocates
 * nothing. */
#include "sse.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_EVENT ((size_t)1 << 20)

static const char utf8_bom[] = "\xEF\xBB\xBF";

void lr_sse_init(lr_sse *s, size_t max_event) {
  memset(s, 0, sizeof *s);
  s->max_event = max_event ? max_event : DEFAULT_MAX_EVENT;
  s->retry_ms = -1;
}

void lr_sse_reset(lr_sse *s) {
  s->line.len = s->data.len = s->event.len = s->id.len = 0;
  s->retry_ms = -1;
  s->events = 0;
  s->bom = s->cr = s->error = 0;
}

static void buf_free(lr_sse_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

void lr_sse_free(lr_sse *s) {
  buf_free(&s->line);
  buf_free(&s->data);
  buf_free(&s->event);
  buf_free(&s->id);
}

size_t lr_sse_events(const lr_sse *s) { return s->events; }

/* Room for n more bytes and a NUL, growing by doubling. */
static int reserve(lr_sse *s, lr_sse_buf *b, size_t n) {
  size_t need = b->len + n + 1, cap = b->cap ? b->cap : 64;
  char *p;
  if (need <= b->cap) return 0;
  while (cap < need) cap = cap <= SIZE_MAX / 2 ? cap * 2 : need;
  p = realloc(b->p, cap);
  if (!p) return s->error = LR_SSE_NOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

static int append(lr_sse *s, lr_sse_buf *b, const char *v, size_t n) {
  if (reserve(s, b, n)) return s->error;
  memcpy(b->p + b->len, v, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

static int set(lr_sse *s, lr_sse_buf *b, const char *v, size_t n) {
  b->len = 0;
  return append(s, b, v, n);
}

/* retry: only a value of ASCII digits counts; a huge one saturates. */
static void set_retry(lr_sse *s, const char *v, size_t n) {
  long ms = 0;
  size_t i;
  if (n == 0) return;
  for (i = 0; i < n; i++) {
    int d = v[i] - '0';
    if (d < 0 || d > 9) return;
    ms = ms > (LONG_MAX - d) / 10 ? LONG_MAX : ms * 10 + d;
  }
  s->retry_ms = ms;
}

static int dispatch(lr_sse *s, lr_sse_cb cb, void *ud) {
  lr_sse_event ev;
  int stop;
  if (s->data.len == 0) { /* nothing to dispatch, but the type is spent */
    s->event.len = 0;
    return 0;
  }
  s->data.p[--s->data.len] = '\0'; /* the last line's "\n" */
  ev.data = s->data.p;
  ev.data_len = s->data.len;
  ev.event = s->event.len ? s->event.p : "message";
  ev.event_len = s->event.len ? s->event.len : 7;
  ev.id = s->id.len ? s->id.p : "";
  ev.id_len = s->id.len;
  ev.retry_ms = s->retry_ms;
  ev.done = ev.data_len == 6 && memcmp(ev.data, "[DONE]", 6) == 0;
  s->events++;
  stop = cb ? cb(ud, &ev) : 0;
  s->data.len = s->event.len = 0;
  s->retry_ms = -1;
  return stop ? LR_SSE_STOPPED : LR_SSE_OK;
}

/* One complete line, without its line end. */
static int line(lr_sse *s, const char *l, size_t n, lr_sse_cb cb, void *ud) {
  const char *colon, *v;
  size_t name_len, v_len;
  if (n == 0) return dispatch(s, cb, ud);
  if (l[0] == ':') return 0; /* a comment: keep-alives */
  colon = memchr(l, ':', n);
  name_len = colon ? (size_t)(colon - l) : n;
  v = colon ? colon + 1 : l + n;
  v_len = n - (size_t)(v - l);
  if (v_len && *v == ' ') v++, v_len--;
  switch (name_len) {
  case 4:
    /* the size check of the whole line leaves room for v and its "\n" */
    if (memcmp(l, "data", 4) == 0 && (append(s, &s->data, v, v_len) || append(s, &s->data, "\n", 1)))
      return s->error;
    break;
  case 5:
    if (memcmp(l, "event", 5) == 0) return set(s, &s->event, v, v_len);
    if (memcmp(l, "retry", 5) == 0) set_retry(s, v, v_len);
    break;
  case 2:
    if (memcmp(l, "id", 2) == 0 && !memchr(v, '\0', v_len)) return set(s, &s->id, v, v_len);
    break;
  }
  return 0;
}

/* data + the current line stay within max_event (data.len <= max_event always). */
static int too_big(lr_sse *s, size_t line_len) {
  if (line_len <= s->max_event - s->data.len) return 0;
  return s->error = LR_SSE_TOO_BIG;
}

static const char *find(const char *p, const char *end, char c) {
  const char *f = memchr(p, c, (size_t)(end - p));
  return f ? f : end;
}

static int lines(lr_sse *s, const char *p, const char *end, lr_sse_cb cb, void *ud) {
  /* the next '\n' and '\r' (end if none), each searched for again only once
   * p passes it: a stream with one kind of line end stays linear */
  const char *lf = find(p, end, '\n'), *cr = find(p, end, '\r'), *eol, *l;
  size_t n;
  int rc;
  while (p < end) {
    if (lf < p) lf = find(p, end, '\n');
    if (cr < p) cr = find(p, end, '\r');
    eol = lf < cr ? lf : cr;
    n = (size_t)(eol - p);
    if (too_big(s, s->line.len + n)) return s->error;
    if (eol == end) return append(s, &s->line, p, n);
    l = p;
    if (s->line.len) {
      if (append(s, &s->line, p, n)) return s->error;
      l = s->line.p;
      n = s->line.len;
    }
    p = eol + 1;
    if (*eol == '\r') {
      if (p == end) s->cr = 1;
      else if (*p == '\n') p++;
    }
    rc = line(s, l, n, cb, ud);
    s->line.len = 0;
    if (rc) return rc;
  }
  return 0;
}

int lr_sse_feed(lr_sse *s, const char *buf, size_t len, lr_sse_cb cb, void *ud) {
  const char *p = buf, *end;
  int rc;
  if (s->error || len == 0) return s->error;
  end = buf + len;
  while (s->bom < 3) { /* one leading BOM is skipped, even split across feeds */
    if (p == end) return 0;
    if (*p != utf8_bom[s->bom]) {
      int matched = s->bom;
      s->bom = 3;
      /* a BOM's start that was not one is ordinary bytes (no line end among them) */
      if (matched && (rc = lines(s, utf8_bom, utf8_bom + matched, cb, ud))) return rc;
      break;
    }
    s->bom++;
    p++;
  }
  if (s->cr) { /* "\r" + "\n" cut between feeds is one line end */
    s->cr = 0;
    if (*p == '\n') p++;
  }
  return lines(s, p, end, cb, ud);
}

int lr_sse_finish(lr_sse *s) {
  int pending = s->error || s->line.len || s->data.len || (s->bom > 0 && s->bom < 3);
  s->line.len = s->data.len = s->event.len = 0;
  if (s->bom > 0) s->bom = 3;
  s->cr = 0;
  return pending;
}
