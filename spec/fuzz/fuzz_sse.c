/* Fuzz target: the event-stream decoder against a plain reading of the whole
 * input by the same rules, fed in the pieces the first byte chooses to a
 * decoder that was used and reset first. The first two bytes are settings,
 * the rest is the stream:
 *   byte 0: bits 0-1 how to cut (fixed pieces of 1 + p * p bytes, byte by
 *           byte then random pieces, random pieces, one piece); bits 2-5 p,
 *           also the seed; bits 6-7 the event whose callback asks to stop
 *           (0: none)
 *   byte 1: max_event 1..128, or the default (1 MiB) when bit 7 is set
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -Icsrc ...
 * elsewhere: add -DLR_FUZZ_STANDALONE for a plain main (fuzz.h). */
#include <limits.h>

#include "fuzz.h"
#include "rng.h"
#include "sse.h"

/* What a run produced: each event serialised, and the answers. */
typedef struct trace {
  fuzz_buf out;
  size_t max_event;
  int stop_after, seen;
  int rc, pending;
} trace;

NO_COVERAGE static int no_line_end(const char *s, size_t n) { return !memchr(s, '\r', n) && !memchr(s, '\n', n); }

NO_COVERAGE static int on_event(void *ud, const lr_sse_event *ev) {
  trace *t = ud;
  REQUIRE(ev->data && ev->event && ev->id);
  REQUIRE(ev->data_len < t->max_event);
  REQUIRE(ev->done == (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0));
  REQUIRE(ev->data[ev->data_len] == '\0' && ev->event[ev->event_len] == '\0' && ev->id[ev->id_len] == '\0');
  REQUIRE(!memchr(ev->data, '\r', ev->data_len));
  REQUIRE(ev->event_len > 0 && no_line_end(ev->event, ev->event_len));
  REQUIRE(no_line_end(ev->id, ev->id_len) && !memchr(ev->id, '\0', ev->id_len));
  REQUIRE(ev->retry_ms >= -1);
  size_t head[4] = {ev->data_len, ev->event_len, ev->id_len, (size_t)ev->retry_ms};
  fuzz_put(&t->out, head, sizeof head);
  fuzz_put(&t->out, ev->data, ev->data_len);
  fuzz_put(&t->out, ev->event, ev->event_len);
  fuzz_put(&t->out, ev->id, ev->id_len);
  return ++t->seen == t->stop_after;
}

NO_COVERAGE static void trace_init(trace *t, size_t max_event, int stop_after) {
  memset(t, 0, sizeof *t);
  t->max_event = max_event;
  t->stop_after = stop_after;
}

NO_COVERAGE static int equal(const trace *a, const trace *b) {
  return a->rc == b->rc && a->pending == b->pending && a->seen == b->seen && fuzz_buf_equal(&a->out, &b->out);
}

/* The rules read straight off the spec, over the whole input at once. */
typedef struct field {
  char *p;
  size_t len, cap;
} field;

NO_COVERAGE static void field_set(field *f, const char *s, size_t n, int add_lf) {
  if (f->len + n + 2 > f->cap) {
    f->cap = (f->len + n + 2) * 2;
    f->p = realloc(f->p, f->cap);
    if (!f->p) abort();
  }
  if (n) memcpy(f->p + f->len, s, n);
  f->len += n;
  if (add_lf) f->p[f->len++] = '\n';
  f->p[f->len] = '\0';
}

NO_COVERAGE static void reference(const char *s, size_t n, trace *t) {
  field data = {NULL, 0, 0}, event = {NULL, 0, 0}, id = {NULL, 0, 0};
  long retry = -1;
  size_t i = 0;
  t->rc = LR_SSE_OK;
  field_set(&id, "", 0, 0);
  if (n < 3 && memcmp(s, "\xEF\xBB\xBF", n) == 0) { /* nothing yet past a BOM's start */
    t->pending = n > 0;
    goto done;
  }
  if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) i = 3;
  for (;;) {
    size_t j = i, len;
    while (j < n && s[j] != '\r' && s[j] != '\n') j++;
    len = j - i;
    if (data.len + len > t->max_event) {
      t->rc = LR_SSE_TOO_BIG;
      t->pending = 1;
      break;
    }
    if (j == n) {
      t->pending = len > 0 || data.len > 0;
      break;
    }
    const char *l = s + i, *colon = memchr(l, ':', len), *v = colon ? colon + 1 : l + len;
    size_t name_len = colon ? (size_t)(colon - l) : len, v_len = len - (size_t)(v - l);
    i = j + 1 + (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n');
    if (v_len && *v == ' ') v++, v_len--;
    if (len == 0 && data.len) {
      data.p[--data.len] = '\0';
      lr_sse_event ev = {data.p, data.len, event.len ? event.p : "message", event.len ? event.len : 7,
                         id.p, id.len, retry, data.len == 6 && memcmp(data.p, "[DONE]", 6) == 0};
      retry = -1;
      data.len = event.len = 0;
      if (on_event(t, &ev)) {
        t->rc = LR_SSE_STOPPED;
        t->pending = 0;
        break;
      }
    } else if (len == 0) {
      event.len = 0;
    } else if (l[0] == ':') { /* a comment */
    } else if (name_len == 4 && memcmp(l, "data", 4) == 0) {
      field_set(&data, v, v_len, 1);
    } else if (name_len == 5 && memcmp(l, "event", 5) == 0) {
      event.len = 0;
      field_set(&event, v, v_len, 0);
    } else if (name_len == 2 && memcmp(l, "id", 2) == 0 && !memchr(v, '\0', v_len)) {
      id.len = 0;
      field_set(&id, v, v_len, 0);
    } else if (name_len == 5 && memcmp(l, "retry", 5) == 0 && v_len) {
      long r = 0;
      size_t k = 0;
      for (; k < v_len && v[k] >= '0' && v[k] <= '9'; k++) {
        int digit = v[k] - '0';
        r = r > (LONG_MAX - digit) / 10 ? LONG_MAX : r * 10 + digit;
      }
      if (k == v_len) retry = r;
    }
  }
done:
  free(data.p);
  free(event.p);
  free(id.p);
}

/* Feeds s[0..n) cut by mode. Each piece is copied to the end of a block of
 * n bytes, so a read past the piece is a read past the block. */
NO_COVERAGE static void feed_cut(lr_sse *d, const char *s, size_t n, int mode, int param, trace *t) {
  lr_rng rng;
  size_t at = 0, piece;
  char *block = malloc(n ? n : 1);
  if (!block) abort();
  lr_rng_seed(&rng, (uint64_t)param * 7919 + n);
  t->rc = LR_SSE_OK;
  while (t->rc == LR_SSE_OK && at < n) {
    switch (mode) {
    case 0: piece = 1 + (size_t)(param * param); break;
    case 1: /* a byte at a time costs a call a byte: only at the start */
    case 2:
      if (mode == 1 && at < 256) piece = 1;
      else if (lr_rng_next(&rng) % 8) piece = lr_rng_next(&rng) % 65; /* sometimes empty */
      else piece = lr_rng_next(&rng) % (n - at + 1);
      break;
    default: piece = n; break;
    }
    if (piece > n - at) piece = n - at;
    memcpy(block + n - piece, s + at, piece);
    t->rc = lr_sse_feed(d, block + n - piece, piece, on_event, t);
    at += piece;
  }
  free(block);
  if (t->rc == LR_SSE_TOO_BIG || t->rc == LR_SSE_NOMEM) /* errors stick */
    REQUIRE(lr_sse_feed(d, "data: x\n\n", 9, on_event, t) == t->rc);
  t->pending = lr_sse_finish(d);
  REQUIRE((size_t)t->seen == lr_sse_events(d));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* leaves every piece of state set: BOM, id, type, retry, data, and a
   * pending '\r' or a partial line */
  static const char *const used[] = {"\xEF\xBB\xBFid: 1\nevent: e\nretry: 5\ndata: x\r",
                                     "id: 1\nevent: e\nretry: 5\ndata: x\ndata: part"};
  if (size < 2) return 0;
  const char *s = (const char *)data + 2;
  size_t n = size - 2;
  int mode = data[0] & 3, param = (data[0] >> 2) & 15, stop_after = data[0] >> 6;
  lr_sse d;
  trace ref, got;
  lr_sse_init(&d, data[1] & 0x80 ? 0 : (size_t)(data[1] & 0x7f) + 1);

  trace_init(&ref, d.max_event, stop_after);
  reference(s, n, &ref);

  lr_sse_feed(&d, used[param & 1], strlen(used[param & 1]), NULL, NULL);
  lr_sse_reset(&d);
  trace_init(&got, d.max_event, stop_after);
  feed_cut(&d, s, n, mode, param, &got);
  REQUIRE(equal(&ref, &got));

  lr_sse_free(&d);
  free(ref.out.p);
  free(got.out.p);
  return 0;
}
