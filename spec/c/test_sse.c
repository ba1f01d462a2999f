/* The event-stream decoder: a table of streams, each fed in every chunking
 * (one piece, every cut, every pair of cuts, byte by byte) with each piece in
 * an exactly-sized malloc'd block, and a long random stream. */
#include "ctest.h"
#include "rng.h"
#include "sse.h"

#include <limits.h>
#include <stdlib.h>

/* Events rendered one a line: event[#id][~retry][!]:data, where ! marks done
 * and bytes outside printable ASCII are escaped (\n, \r, \0, \xhh). */
typedef struct rec {
  char *s;
  size_t len, cap;
  int stop_after; /* the callback asks to stop at this event (1-based); 0 never */
  int seen;
} rec;

static void put(rec *r, const char *p, size_t n) {
  if (r->len + n + 1 > r->cap) {
    r->cap = (r->len + n + 1) * 2;
    r->s = realloc(r->s, r->cap);
    if (!r->s) abort();
  }
  memcpy(r->s + r->len, p, n);
  r->len += n;
  r->s[r->len] = '\0';
}

static void put_escaped(rec *r, const char *p, size_t n) {
  char e[8];
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '\n') put(r, "\\n", 2);
    else if (c == '\r') put(r, "\\r", 2);
    else if (c == 0) put(r, "\\0", 2);
    else if (c == '\\') put(r, "\\\\", 2);
    else if (c < 32 || c > 126) put(r, e, (size_t)snprintf(e, sizeof e, "\\x%02x", c));
    else put(r, p + i, 1);
  }
}

static void render(rec *r, const lr_sse_event *ev) {
  char n[32];
  put_escaped(r, ev->event, ev->event_len);
  if (ev->id_len) {
    put(r, "#", 1);
    put_escaped(r, ev->id, ev->id_len);
  }
  if (ev->retry_ms >= 0) put(r, n, (size_t)snprintf(n, sizeof n, "~%ld", ev->retry_ms));
  if (ev->done) put(r, "!", 1);
  put(r, ":", 1);
  put_escaped(r, ev->data, ev->data_len);
  put(r, "\n", 1);
}

static int on_event(void *ud, const lr_sse_event *ev) {
  rec *r = ud;
  CHECK(ev->done == (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0));
  CHECK(ev->data[ev->data_len] == '\0' && ev->event[ev->event_len] == '\0' && ev->id[ev->id_len] == '\0');
  CHECK(ev->event_len > 0 && ev->retry_ms >= -1);
  render(r, ev);
  return ++r->seen == r->stop_after;
}

/* The piece in a block of exactly its size (none at all when empty). */
static int feed_exact(lr_sse *s, const char *p, size_t n, rec *r) {
  char *b = n ? malloc(n) : NULL;
  if (n && !b) abort();
  if (n) memcpy(b, p, n);
  int rc = lr_sse_feed(s, b, n, on_event, r);
  free(b);
  return rc;
}

#define S(lit) lit, sizeof(lit) - 1
#define CAP 16

typedef struct sse_case {
  const char *name;
  const char *in;
  size_t len;
  const char *want; /* rendered events */
  int rc;           /* the last feed's answer */
  int pending;      /* lr_sse_finish's */
  size_t max_event;
  int stop_after;
} sse_case;

static const sse_case cases[] = {
    {"openai_chunks",
     S("data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
       "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n"
       "data: [DONE]\n\n"),
     "message:{\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n"
     "message:{\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n"
     "message!:[DONE]\n",
     LR_SSE_OK, 0, 0, 0},
    {"anthropic_events",
     S("event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
       "event: ping\ndata: {\"type\": \"ping\"}\n\n"
       "event: content_block_delta\ndata: {\"delta\":{\"text\":\"Hi\"}}\n\n"
       "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
     "message_start:{\"type\":\"message_start\"}\nping:{\"type\": \"ping\"}\n"
     "content_block_delta:{\"delta\":{\"text\":\"Hi\"}}\nmessage_stop:{\"type\":\"message_stop\"}\n",
     LR_SSE_OK, 0, 0, 0},
    {"crlf", S("data: a\r\n\r\ndata: b\r\ndata: c\r\n\r\n"), "message:a\nmessage:b\\nc\n", LR_SSE_OK, 0, 0, 0},
    {"cr", S("data: a\r\rdata: b\rdata: c\r\r"), "message:a\nmessage:b\\nc\n", LR_SSE_OK, 0, 0, 0},
    {"mixed_line_ends", S("data: a\r\ndata: b\rdata: c\n\rdata: d\n\r\n"), "message:a\\nb\\nc\nmessage:d\n",
     LR_SSE_OK, 0, 0, 0},
    {"cr_then_crlf", S("data: a\r\r\ndata: b\n\n"), "message:a\nmessage:b\n", LR_SSE_OK, 0, 0, 0},
    {"lf_then_cr_is_two_ends", S("data: a\n\r"), "message:a\n", LR_SSE_OK, 0, 0, 0},
    {"multi_line_data", S("data: line1\ndata: line2\ndata:\ndata: line4\n\n"),
     "message:line1\\nline2\\n\\nline4\n", LR_SSE_OK, 0, 0, 0},
    {"comments", S(": ping\n\n:\n\ndata: x\n: in the middle\ndata: y\n\n:no space\n\n"), "message:x\\ny\n",
     LR_SSE_OK, 0, 0, 0},
    {"fields", S("event: delta\nid: 7\nretry: 1500\ndata: x\n\ndata: y\n\n"), "delta#7~1500:x\nmessage#7:y\n",
     LR_SSE_OK, 0, 0, 0},
    {"invalid_retry", S("retry: 12a\ndata: x\n\nretry:\ndata: y\n\nretry:  5\ndata: z\n\n"
                        "retry: -5\nretry: 1.5\nretry: 5 \ndata: w\n\n"),
     "message:x\nmessage:y\nmessage:z\nmessage:w\n", LR_SSE_OK, 0, 0, 0},
    {"retry_waits_for_an_event", S("retry: 10\nretry: 20\ndata: x\n\nretry: 3000\n\ndata: y\n\nretry\ndata: z\n\n"),
     "message~20:x\nmessage~3000:y\nmessage:z\n", LR_SSE_OK, 0, 0, 0},
    {"retry_digits", S("retry: 007\ndata: x\n\nretry: 0\ndata: y\n\n"), "message~7:x\nmessage~0:y\n", LR_SSE_OK,
     0, 0, 0},
    {"id_persists",
     S("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 2\0x\ndata: d\n\nid: 3\n\ndata: e\n\nid: 4 \ndata: f\n\n"),
     "message#1:a\nmessage#1:b\nmessage:c\nmessage:d\nmessage#3:e\nmessage#4 :f\n", LR_SSE_OK, 0, 0, 0},
    {"one_space_stripped", S("data:  two\n\ndata:no\n\ndata:\tx\n\nevent:  e\ndata: y\n\n"),
     "message: two\nmessage:no\nmessage:\\x09x\n e:y\n", LR_SSE_OK, 0, 0, 0},
    {"field_without_colon", S("data\n\ndata\ndata\n\nevent\ndata: x\n\n"), "message:\nmessage:\\n\nmessage:x\n",
     LR_SSE_OK, 0, 0, 0},
    {"unknown_fields", S("foo: bar\nDATA: up\n data: sp\ndata : sp\nEvent: e\ndata: x\n\n"), "message:x\n",
     LR_SSE_OK, 0, 0, 0},
    {"empty_data", S("data:\n\ndata: \n\n"), "message:\nmessage:\n", LR_SSE_OK, 0, 0, 0},
    {"event_name_reset", S("event: a\n\ndata: x\n\nevent: b\ndata: y\n\ndata: z\n\n"), "message:x\nb:y\nmessage:z\n",
     LR_SSE_OK, 0, 0, 0},
    {"bom", S("\xEF\xBB\xBF" "data: x\n\n"), "message:x\n", LR_SSE_OK, 0, 0, 0},
    {"bom_once", S("\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\ndata: y\n\n"), "message:y\n", LR_SSE_OK, 0, 0, 0},
    {"bom_partial", S("\xEF\xBB" "data: x\n\ndata: y\n\n"), "message:y\n", LR_SSE_OK, 0, 0, 0},
    {"bom_partial_line", S("\xEF\xBB\ndata: x\n\n"), "message:x\n", LR_SSE_OK, 0, 0, 0},
    {"bom_in_data", S("data: \xEF\xBB\xBFx\n\n"), "message:\\xef\\xbb\\xbfx\n", LR_SSE_OK, 0, 0, 0},
    {"bom_only", S("\xEF\xBB\xBF"), "", LR_SSE_OK, 0, 0, 0},
    {"bom_cut_short", S("\xEF\xBB"), "", LR_SSE_OK, 1, 0, 0},
    {"unterminated_event", S("data: x\n"), "", LR_SSE_OK, 1, 0, 0},
    {"unterminated_line", S("data: x"), "", LR_SSE_OK, 1, 0, 0},
    {"unterminated_after_one", S("data: x\n\ndata: y"), "message:x\n", LR_SSE_OK, 1, 0, 0},
    {"trailing_comment", S("data: x\n\n: bye\n"), "message:x\n", LR_SSE_OK, 0, 0, 0},
    {"trailing_fields_without_data", S("data: x\n\nevent: a\nid: 5\n"), "message:x\n", LR_SSE_OK, 0, 0, 0},
    {"nul_in_data", S("data: a\0b\n\n"), "message:a\\0b\n", LR_SSE_OK, 0, 0, 0},
    {"done_exactly", S("data: [DONE] \n\ndata:[DONE]\n\ndata: [DONE]\ndata: [DONE]\n\nevent: x\ndata: [DONE]\n\n"),
     "message:[DONE] \nmessage!:[DONE]\nmessage:[DONE]\\n[DONE]\nx!:[DONE]\n", LR_SSE_OK, 0, 0, 0},
    {"empty_stream", S(""), "", LR_SSE_OK, 0, 0, 0},
    {"blank_lines_only", S("\n\r\n\r\r\n"), "", LR_SSE_OK, 0, 0, 0},
    {"line_at_cap", S("data: 0123456789\ndata:\n\n"), "message:0123456789\\n\n", LR_SSE_OK, 0, CAP, 0},
    {"line_over_cap", S("data: 0123456789\n\ndata: 0123456789abcdef\n\ndata: never\n\n"), "message:0123456789\n",
     LR_SSE_TOO_BIG, 1, CAP, 0},
    {"event_over_cap", S("data: 01234\ndata: 56789\n\ndata: never\n\n"), "", LR_SSE_TOO_BIG, 1, CAP, 0},
    {"comment_over_cap", S(": 0123456789abcdef\n\ndata: never\n\n"), "", LR_SSE_TOO_BIG, 1, CAP, 0},
    {"unterminated_over_cap", S("data: x\n\ndata: 0123456789abcdef"), "message:x\n", LR_SSE_TOO_BIG, 1, CAP, 0},
    {"stop_at_first", S("data: a\n\ndata: b\n\n"), "message:a\n", LR_SSE_STOPPED, 0, 0, 1},
    {"stop_at_second", S("data: a\r\n\r\ndata: b\r\n\r\ndata: c\r\n\r\n"), "message:a\nmessage:b\n",
     LR_SSE_STOPPED, 0, 0, 2},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static long chunkings_fed;

static size_t count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* Feeds c cut at cuts[0..ncuts) (ascending); 1 when everything matches. */
static int run_case(const sse_case *c, const size_t *cuts, int ncuts) {
  lr_sse s;
  rec r = {NULL, 0, 0, c->stop_after, 0};
  size_t from = 0;
  int rc = LR_SSE_OK, pending, ok;
  lr_sse_init(&s, c->max_event);
  for (int i = 0; i <= ncuts && rc == LR_SSE_OK; i++) {
    size_t to = i < ncuts ? cuts[i] : c->len;
    rc = feed_exact(&s, c->in + from, to - from, &r);
    from = to;
  }
  pending = lr_sse_finish(&s);
  ok = rc == c->rc && pending == c->pending && lr_sse_events(&s) == count_lines(c->want) &&
       strcmp(r.s ? r.s : "", c->want) == 0;
  if (!ok) {
    fprintf(stderr, "  %s cut at", c->name);
    for (int i = 0; i < ncuts; i++) fprintf(stderr, " %zu", cuts[i]);
    fprintf(stderr, ": rc %d pending %d events %zu\n%s  want rc %d pending %d\n%s", rc, pending,
            lr_sse_events(&s), r.s ? r.s : "", c->rc, c->pending, c->want);
  }
  chunkings_fed++;
  lr_sse_free(&s);
  free(r.s);
  return ok;
}

/* Every case in one piece, at every cut, every pair of cuts (up to 200
 * bytes) and byte by byte: the same events each time. One report per case. */
TEST(table_in_every_chunking) {
  size_t cuts[256];
  for (size_t k = 0; k < N_CASES; k++) {
    const sse_case *c = &cases[k];
    int ok = run_case(c, NULL, 0);
    for (size_t i = 0; ok && i <= c->len; i++) {
      cuts[0] = i;
      ok = run_case(c, cuts, 1);
    }
    for (size_t i = 1; ok && c->len <= 200 && i < c->len; i++)
      for (size_t j = i + 1; ok && j < c->len; j++) {
        cuts[0] = i;
        cuts[1] = j;
        ok = run_case(c, cuts, 2);
      }
    if (ok && c->len > 1 && c->len <= sizeof cuts / sizeof cuts[0]) {
      for (size_t i = 1; i < c->len; i++) cuts[i - 1] = i;
      ok = run_case(c, cuts, (int)c->len - 1);
    }
    CHECK(ok);
  }
}

static int on_event_count(void *ud, const lr_sse_event *ev) {
  (void)ev;
  ++*(int *)ud;
  return 0;
}

TEST(init_and_free) {
  lr_sse s;
  lr_sse_init(&s, 0);
  CHECK(s.max_event == (size_t)1 << 20);
  CHECK(lr_sse_events(&s) == 0 && lr_sse_finish(&s) == 0 && s.retry_ms == -1);
  lr_sse_free(&s);
  lr_sse_free(&s);
  CHECK(lr_sse_feed(&s, NULL, 0, on_event_count, NULL) == LR_SSE_OK);
  lr_sse_init(&s, 5);
  CHECK(s.max_event == 5);
  lr_sse_free(&s);
}

TEST(cr_pending_across_feeds) {
  lr_sse s;
  rec r = {0};
  lr_sse_init(&s, 0);
  CHECK(lr_sse_feed(&s, S("data: a\r"), on_event, &r) == LR_SSE_OK);
  CHECK(lr_sse_feed(&s, S(""), on_event, &r) == LR_SSE_OK); /* an empty feed keeps the pending '\r' */
  CHECK(lr_sse_feed(&s, S("\ndata: b\r"), on_event, &r) == LR_SSE_OK);
  CHECK(lr_sse_feed(&s, S("\n\r"), on_event, &r) == LR_SSE_OK);
  CHECK(lr_sse_events(&s) == 1);
  CHECK(lr_sse_feed(&s, S("\n"), on_event, &r) == LR_SSE_OK); /* ends the blank "\r" line, no more */
  CHECK(lr_sse_events(&s) == 1 && lr_sse_finish(&s) == 0);
  CHECK(r.s && strcmp(r.s, "message:a\\nb\n") == 0);
  lr_sse_free(&s);
  free(r.s);
}

TEST(errors_stick_until_reset) {
  lr_sse s;
  int n = 0;
  lr_sse_init(&s, CAP);
  CHECK(lr_sse_feed(&s, S("data: 0123456789abcdef"), on_event_count, &n) == LR_SSE_TOO_BIG);
  CHECK(s.error == LR_SSE_TOO_BIG);
  CHECK(lr_sse_feed(&s, S("\n\ndata: x\n\n"), on_event_count, &n) == LR_SSE_TOO_BIG);
  CHECK(lr_sse_feed(&s, NULL, 0, on_event_count, &n) == LR_SSE_TOO_BIG);
  CHECK(n == 0 && lr_sse_finish(&s) == 1 && lr_sse_finish(&s) == 1);
  lr_sse_reset(&s);
  CHECK(s.error == 0 && s.max_event == CAP);
  CHECK(lr_sse_feed(&s, S("data: x\n\n"), on_event_count, &n) == LR_SSE_OK && n == 1);
  lr_sse_free(&s);
}

TEST(stop_leaves_a_usable_decoder) {
  lr_sse s;
  rec r = {NULL, 0, 0, 1, 0};
  lr_sse_init(&s, 0);
  CHECK(lr_sse_feed(&s, S("id: 1\ndata: a\r\n\r\ndata: b\n\n"), on_event, &r) == LR_SSE_STOPPED);
  CHECK(lr_sse_events(&s) == 1 && lr_sse_finish(&s) == 0);
  CHECK(lr_sse_feed(&s, S("data: c\n\n"), on_event, &r) == LR_SSE_OK); /* "b" was dropped */
  CHECK(r.s && strcmp(r.s, "message#1:a\nmessage#1:c\n") == 0);
  lr_sse_free(&s);
  free(r.s);
}

TEST(finish_discards_and_keeps_retry) {
  lr_sse s;
  int n = 0;
  lr_sse_init(&s, 0);
  CHECK(lr_sse_feed(&s, S("id: 9\nretry: 3000\n\nevent: e\ndata: x\n"), on_event_count, &n) == LR_SSE_OK);
  CHECK(lr_sse_finish(&s) == 1 && lr_sse_finish(&s) == 0);
  CHECK(s.retry_ms == 3000 && n == 0);
  lr_sse_reset(&s);
  CHECK(lr_sse_feed(&s, S("\xEF\xBB"), on_event_count, &n) == LR_SSE_OK);
  CHECK(lr_sse_finish(&s) == 1 && lr_sse_finish(&s) == 0);
  lr_sse_free(&s);
}

TEST(reset_starts_a_new_stream) {
  lr_sse s;
  rec r = {0};
  lr_sse_init(&s, 0);
  CHECK(lr_sse_feed(&s, S("\xEF\xBB\xBFid: 1\nretry: 5\nevent: e\ndata: a\n\ndata: partial"), on_event, &r) == 0);
  char *data = s.data.p, *line = s.line.p;
  lr_sse_reset(&s);
  CHECK(lr_sse_events(&s) == 0 && lr_sse_finish(&s) == 0);
  CHECK(lr_sse_feed(&s, S("\xEF\xBB\xBF" "data: b\r"), on_event, &r) == 0); /* the BOM is skipped again */
  CHECK(lr_sse_feed(&s, S("\n\n"), on_event, &r) == 0);
  CHECK(r.s && strcmp(r.s, "e#1~5:a\nmessage:b\n") == 0);
  CHECK(s.data.p == data && s.line.p == line); /* the buffers were reused */
  lr_sse_free(&s);
  free(r.s);
}

TEST(no_callback_counts) {
  lr_sse s;
  lr_sse_init(&s, 0);
  CHECK(lr_sse_feed(&s, S("data: a\n\ndata: b\n\n"), NULL, NULL) == LR_SSE_OK);
  CHECK(lr_sse_events(&s) == 2);
  lr_sse_free(&s);
}

static int on_event_retry(void *ud, const lr_sse_event *ev) {
  *(long *)ud = ev->retry_ms;
  return 0;
}

TEST(retry_saturates) {
  lr_sse s;
  long retry = 0;
  lr_sse_init(&s, 0);
  CHECK(lr_sse_feed(&s, S("retry: 99999999999999999999999999\ndata: x\n\n"), on_event_retry, &retry) == 0);
  CHECK(retry == LONG_MAX);
  lr_sse_free(&s);
}

/* The default cap, 1 MiB, counts a data line whole: "data: " and the value. */
TEST(default_cap_boundary) {
  size_t cap = (size_t)1 << 20;
  char *big = malloc(cap + 3);
  lr_sse s;
  int n = 0;
  if (!big) abort();
  memcpy(big, "data: ", 6);
  memset(big + 6, 'x', cap - 6);
  memcpy(big + cap, "\n\n", 2);
  lr_sse_init(&s, 0);
  CHECK(lr_sse_feed(&s, big, cap + 2, on_event_count, &n) == LR_SSE_OK && n == 1);
  memcpy(big + cap, "x\n\n", 3);
  CHECK(lr_sse_feed(&s, big, cap + 3, on_event_count, &n) == LR_SSE_TOO_BIG && n == 1);
  lr_sse_free(&s);
  free(big);
}

/* A long stream of every kind of line, expected events rendered as it is
 * written, fed whole and in random pieces; the second run after a reset
 * grows no buffer. */
static void write_line(rec *stream, lr_rng *rng, const char *l, size_t n) {
  static const char *const ends[] = {"\n", "\r", "\r\n"};
  const char *e = ends[lr_rng_next(rng) % 3];
  /* after "\r", an empty line ending "\n" would be the rest of a "\r\n" */
  if (n == 0 && stream->len && stream->s[stream->len - 1] == '\r' && e[0] == '\n') e = "\r";
  put(stream, l, n);
  put(stream, e, strlen(e));
}

static void random_stream(rec *stream, rec *want, int events) {
  static const char alphabet[] = "abc xyz:{}\"[],\t#\0\xff\xEF\xBB\xBF";
  static const char *const names[] = {"delta", "ping", "a b", ":x"};
  lr_rng rng;
  char l[256], id[32] = "", name[16] = "";
  long retry = -1;
  lr_rng_seed(&rng, 2024);
  put(stream, "\xEF\xBB\xBF", 3);
  for (int e = 0; e < events; e++) {
    char data[256];
    size_t dn = 0, n;
    if (lr_rng_next(&rng) % 8 == 0) write_line(stream, &rng, S(": keep-alive"));
    if (lr_rng_next(&rng) % 20 == 0) {
      retry = (long)(lr_rng_next(&rng) % 100000);
      write_line(stream, &rng, l, (size_t)snprintf(l, sizeof l, "retry: %ld", retry));
    }
    if (lr_rng_next(&rng) % 20 == 0) write_line(stream, &rng, S("")); /* dispatches nothing */
    name[0] = '\0';
    if (lr_rng_next(&rng) % 4 == 0) {
      strcpy(name, names[lr_rng_next(&rng) % 4]);
      write_line(stream, &rng, l, (size_t)snprintf(l, sizeof l, "event: %s", name));
    }
    if (lr_rng_next(&rng) % 10 == 0) {
      snprintf(id, sizeof id, "%d", e);
      write_line(stream, &rng, l, (size_t)snprintf(l, sizeof l, "id:%s", id));
    }
    for (int k = 1 + (int)(lr_rng_next(&rng) % 3); k > 0; k--) {
      size_t len = lr_rng_next(&rng) % 80;
      n = (size_t)snprintf(l, sizeof l, "data: ");
      for (size_t i = 0; i < len; i++) l[n++] = data[dn++] = alphabet[lr_rng_next(&rng) % (sizeof alphabet - 1)];
      data[dn++] = '\n';
      write_line(stream, &rng, l, n);
    }
    write_line(stream, &rng, S(""));
    lr_sse_event ev = {data, dn - 1, name[0] ? name : "message", name[0] ? strlen(name) : 7, id, strlen(id),
                       retry, dn - 1 == 6 && memcmp(data, "[DONE]", 6) == 0};
    render(want, &ev);
    retry = -1;
  }
}

static void feed_random(lr_sse *s, const rec *stream, rec *got, uint64_t seed) {
  lr_rng rng;
  lr_rng_seed(&rng, seed);
  for (size_t at = 0; at < stream->len;) {
    size_t n = lr_rng_next(&rng) % 4 ? 1 + lr_rng_next(&rng) % 512 : 1 + lr_rng_next(&rng) % 8;
    if (n > stream->len - at) n = stream->len - at;
    CHECK(feed_exact(s, stream->s + at, n, got) == LR_SSE_OK);
    at += n;
  }
}

TEST(long_random_stream) {
  rec stream = {0}, want = {0}, got = {0};
  lr_sse s;
  random_stream(&stream, &want, 10000);
  CHECK(count_lines(want.s) == 10000);
  lr_sse_init(&s, 0);
  CHECK(lr_sse_feed(&s, stream.s, stream.len, on_event, &got) == LR_SSE_OK);
  CHECK(lr_sse_finish(&s) == 0 && lr_sse_events(&s) == 10000);
  CHECK(got.len == want.len && strcmp(got.s, want.s) == 0);
  for (uint64_t seed = 1; seed <= 3; seed++) {
    size_t caps[4] = {s.line.cap, s.data.cap, s.event.cap, s.id.cap};
    lr_sse_reset(&s);
    got.len = 0;
    feed_random(&s, &stream, &got, seed);
    CHECK(lr_sse_finish(&s) == 0 && lr_sse_events(&s) == 10000);
    CHECK(got.len == want.len && strcmp(got.s, want.s) == 0);
    if (seed > 1) CHECK(s.line.cap == caps[0] && s.data.cap == caps[1] && s.event.cap == caps[2] &&
                        s.id.cap == caps[3]);
  }
  lr_sse_free(&s);
  free(stream.s);
  free(want.s);
  free(got.s);
}

int main(void) {
  RUN(table_in_every_chunking);
  RUN(init_and_free);
  RUN(cr_pending_across_feeds);
  RUN(errors_stick_until_reset);
  RUN(stop_leaves_a_usable_decoder);
  RUN(finish_discards_and_keeps_retry);
  RUN(reset_starts_a_new_stream);
  RUN(no_callback_counts);
  RUN(retry_saturates);
  RUN(default_cap_boundary);
  RUN(long_random_stream);
  printf("  (%zu streams, fed in %ld chunkings)\n", N_CASES, chunkings_fed);
  CTEST_END();
}
