/* The HTTP/1.1 response decoder: each answer fed whole, cut at every point
 * (every 997th for the large ones), byte by byte, each piece in a block of
 * exactly its size; all splits must give the same trace (head, body, end,
 * error). Then every cap at its limit and one byte past it, each error, the
 * timeout messages. */
#include "ctest.h"
#include "http1.h"

#include <stdlib.h>

typedef struct sb {
  char *p;
  size_t len, cap;
} sb;

static void put(sb *s, const char *p, size_t n) {
  if (s->len + n + 1 > s->cap) {
    s->cap = (s->len + n + 1) * 2;
    s->p = realloc(s->p, s->cap);
    if (!s->p) abort();
  }
  memcpy(s->p + s->len, p, n);
  s->len += n;
  s->p[s->len] = '\0';
}

static void puts_(sb *s, const char *z) { put(s, z, strlen(z)); }

static void putf(sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void putf(sb *s, const char *fmt, ...) {
  char b[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b, sizeof b, fmt, ap);
  va_end(ap);
  put(s, b, (size_t)n);
}

static void rep(sb *s, char c, size_t n) {
  for (size_t i = 0; i < n; i++) put(s, &c, 1);
}

/* The trace of one run: "[status ka chunked cl ctype]" at the head, the
 * body, then "|end bytes_in" where end is MORE, DONE or "ERROR kind: msg". */
static void run(const char *in, size_t n, uint64_t max, int eof, const size_t *cuts, size_t ncuts, sb *t) {
  lr_http1 h;
  size_t at = 0, k = 0;
  int over = 0, head_seen = 0;
  lr_h1_event ev = LR_H1_MORE;
  lr_http1_init(&h, max);
  t->len = 0;
  puts_(t, "");
  while (!over && (at < n || k == 0)) {
    size_t end = k < ncuts ? cuts[k] : n;
    if (end > n) end = n;
    size_t len = end - at, off = 0;
    char *block = malloc(len ? len : 1);
    if (!block) abort();
    memcpy(block, in + at, len);
    for (;;) {
      const char *b;
      size_t bl, u;
      ev = lr_http1_feed(&h, block + off, len - off, &u, &b, &bl);
      CHECK(u <= len - off);
      off += u;
      if (ev == LR_H1_HEAD) {
        CHECK(!head_seen);
        head_seen = 1;
        putf(t, "[%d %d %d %lld %.*s]", h.status, h.keep_alive, h.chunked, (long long)h.content_length,
             (int)h.ctype_len, h.head + h.ctype_off);
        continue;
      }
      if (ev == LR_H1_BODY) {
        CHECK(bl > 0 && b >= block && b + bl <= block + len);
        put(t, b, bl);
        continue;
      }
      if (ev != LR_H1_MORE) over = 1;
      else CHECK(off == len);
      break;
    }
    free(block);
    at = end;
    k++;
  }
  if (!over && eof) ev = lr_http1_eof(&h);
  if (ev == LR_H1_ERROR) {
    putf(t, "|ERROR %s: %s", lr_error_kind_name(h.kind), h.message);
    CHECK(lr_http1_feed(&h, "x", 1, &at, &in, &n) == LR_H1_ERROR); /* sticky */
  } else {
    putf(t, "|%s", ev == LR_H1_DONE ? "DONE" : "MORE");
  }
  putf(t, " %llu", (unsigned long long)h.bytes_in);
  CHECK(h.body_bytes <= max);
  lr_http1_free(&h);
  lr_http1_free(&h);
}

/* Whole, every cut (or every 997th), byte by byte: the same trace; returns it. */
static char *trace_all(const char *in, size_t n, uint64_t max, int eof) {
  sb whole = {0}, t = {0};
  size_t step = n > 4000 ? 997 : 1;
  run(in, n, max, eof, NULL, 0, &whole);
  for (size_t c = 0; c <= n; c += step) {
    run(in, n, max, eof, &c, 1, &t);
    if (strcmp(t.p, whole.p) != 0) {
      CHECK(!"a cut changed the trace");
      fprintf(stderr, "  cut at %zu: %.300s\n  whole: %.300s\n", c, t.p, whole.p);
      break;
    }
  }
  size_t *cuts = malloc((n + 1) * sizeof *cuts);
  if (!cuts) abort();
  for (size_t i = 0; i < n; i++) cuts[i] = i + 1;
  run(in, n, max, eof, cuts, n, &t);
  if (strcmp(t.p, whole.p) != 0) {
    CHECK(!"byte by byte changed the trace");
    fprintf(stderr, "  bytes: %.300s\n  whole: %.300s\n", t.p, whole.p);
  }
  free(cuts);
  free(t.p);
  return whole.p;
}

#define MAX ((uint64_t)1 << 20)

static void expect(const char *in, int eof, const char *want) {
  char *got = trace_all(in, strlen(in), MAX, eof);
  if (strcmp(got, want) != 0) {
    CHECK(!"trace");
    fprintf(stderr, "  input: %.200s\n  got:  %s\n  want: %s\n", in, got, want);
  }
  free(got);
}

/* A trace that ends with an error whose message holds `msg`. */
static void expect_error(const sb *in, uint64_t max, const char *kind, const char *msg) {
  char *got = trace_all(in->p, in->len, max, 1);
  char want[256];
  snprintf(want, sizeof want, "|ERROR %s: ", kind);
  const char *e = strstr(got, "|ERROR ");
  if (!e || strncmp(e, want, strlen(want)) != 0 || !strstr(e, msg)) {
    CHECK(!"error");
    fprintf(stderr, "  got: %.300s\n  want: %s...%s\n", e ? e : got, want, msg);
  }
  free(got);
}

static void expect_ok(const sb *in, uint64_t max) {
  char *got = trace_all(in->p, in->len, max, 1);
  if (!strstr(got, "|DONE ")) {
    CHECK(!"done");
    fprintf(stderr, "  got: %.300s\n", got + (strlen(got) > 300 ? strlen(got) - 300 : 0));
  }
  free(got);
}

TEST(content_length) {
  expect("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello", 0,
         "[200 1 0 5 application/json]hello|DONE 75");
  /* bytes after the end are not taken: the connection is not reused then */
  expect("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naEXTRA", 1, "[200 1 0 1 ]a|DONE 39");
  expect("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, "[200 1 0 0 ]|DONE 38");
  expect("HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length:  5 \r\n\r\nhello", 0, "[200 1 0 5 ]hello|DONE 64");
  expect("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe", 1,
         "[200 1 0 5 ]he|ERROR connect: the answer was cut in its body: 2 of 5 bytes came 40");
  expect("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe", 0, "[200 1 0 5 ]he|MORE 40");
}

TEST(chunked) {
  expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
         "5;name=\"v\"\r\nhello\r\n0006 \r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
         0, "[200 1 1 -1 text/event-stream]hello world|DONE 133");
  /* bare LF everywhere, upper-case hex, a coding list ending in chunked */
  expect("HTTP/1.1 200 OK\nTransfer-Encoding: gzip, Chunked\n\nA\n0123456789\n0\n\n", 0,
         "[200 1 1 -1 ]0123456789|DONE 66");
  /* chunked wins over Content-Length, and the connection is not reused */
  expect("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", 0,
         "[200 0 1 -1 ]x|DONE 77");
  /* leading zeros are not digits that count */
  expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n000000000000000000000000001\r\nx\r\n0\r\n\r\n", 0,
         "[200 1 1 -1 ]x|DONE 84");
  expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc", 1,
         "[200 1 1 -1 ]abc|ERROR connect: the answer was cut in its body 53");
  expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n", 1,
         "[200 1 1 -1 ]|ERROR connect: the answer was cut in its trailers 56");
}

TEST(close_delimited_and_keep_alive) {
  expect("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n", 1,
         "[200 0 0 -1 text/event-stream]data: x\n\n|DONE 61");
  expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", 1, "[200 0 0 -1 ]zz|DONE 46");
  expect("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 0, "[200 0 0 1 ]x|DONE 39");
  expect("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", 0, "[200 1 0 1 ]x|DONE 63");
  expect("HTTP/1.1 200 OK\r\nConnection: foo, close\r\nContent-Length: 1\r\n\r\nx", 0, "[200 0 0 1 ]x|DONE 63");
  expect("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", 0, "[204 1 0 7 ]|DONE 46");
  expect("HTTP/1.1 304 Not Modified\r\n\r\n", 0, "[304 1 0 -1 ]|DONE 29");
  expect("HTTP/1.1 429\r\nRetry-After: 2\r\nContent-Length: 2\r\n\r\n{}", 0, "[429 1 0 2 ]{}|DONE 53");
}

TEST(interim_answers_are_skipped) {
  const char *in = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                   "HTTP/1.1 200 OK\r\nx-ratelimit-remaining-requests: 0\r\nContent-Length: 2\r\n\r\n{}";
  expect(in, 0, "[200 1 0 2 ]{}|DONE 140");
  /* the head kept is the final answer's, as received */
  lr_http1 h;
  size_t u;
  const char *b;
  size_t bl;
  lr_http1_init(&h, 100);
  CHECK(lr_http1_feed(&h, in, strlen(in), &u, &b, &bl) == LR_H1_HEAD);
  const char *final = strstr(in, "HTTP/1.1 200");
  CHECK(h.head_len == strlen(final) - 2 && memcmp(h.head, final, h.head_len) == 0);
  CHECK(h.interim == 2);
  lr_http1_free(&h);
}

TEST(malformed) {
  expect("{\"choices\":[]}", 1, "|ERROR connect: not an HTTP/1.x answer: malformed status line 1");
  expect("HTTP/2 200\r\n\r\n", 1, "|ERROR connect: not an HTTP/1.x answer: malformed status line 6");
  expect("HTTP/1.1 20\r\n\r\n", 1, "|ERROR connect: not an HTTP/1.x answer: malformed status line 13");
  expect("HTTP/1.1 200OK\r\n\r\n", 1, "|ERROR connect: not an HTTP/1.x answer: malformed status line 16");
  expect("HTTP/1.1 099 x\r\n\r\n", 1, "|ERROR connect: not an HTTP/1.x answer: malformed status line 16");
  expect("", 1, "|ERROR connect: the connection closed before an answer came 0");
  expect("HTTP/1.1 200 OK\r\nX-A", 1, "|ERROR connect: the answer was cut in its headers 20");
  expect("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", 1, "|ERROR connect: malformed header line in the answer 32");
  expect("HTTP/1.1 200 OK\r\nName : v\r\n\r\n", 1, "|ERROR connect: malformed header line in the answer 27");
  expect("HTTP/1.1 200 OK\r\n: v\r\n\r\n", 1, "|ERROR connect: malformed header line in the answer 22");
  expect("HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n", 1, "|ERROR connect: invalid Content-Length in the answer 37");
  expect("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", 1, "|ERROR connect: invalid Content-Length in the answer 39");
  expect("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 1,
         "|ERROR connect: conflicting Content-Length values in the answer 55");
  expect("HTTP/1.1 101 Switching Protocols\r\n\r\n", 1,
         "|ERROR connect: the answer switched protocols (101), which was not asked for 36");
  expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 1,
         "[200 1 1 -1 ]|ERROR connect: malformed chunk size in the answer 48");
  expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", 1,
         "[200 1 1 -1 ]|ERROR connect: malformed chunk size in the answer 48");
  expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX", 1,
         "[200 1 1 -1 ]hello|ERROR connect: malformed chunked body in the answer: no CRLF after a chunk 56");
}

TEST(caps_on_lines_and_the_head) {
  sb s = {0};
  /* a header line of exactly 8192 bytes (CRLF or LF after it) passes, 8193 does not */
  for (int lf = 0; lf < 2; lf++) {
    s.len = 0;
    puts_(&s, "HTTP/1.1 200 OK\r\nX-A: ");
    rep(&s, 'a', LR_H1_MAX_LINE - 5);
    puts_(&s, lf ? "\n" : "\r\n");
    puts_(&s, "Content-Length: 0\r\n\r\n");
    expect_ok(&s, MAX);
    s.len = 0;
    puts_(&s, "HTTP/1.1 200 OK\r\nX-A: ");
    rep(&s, 'a', LR_H1_MAX_LINE - 4);
    puts_(&s, lf ? "\n" : "\r\n");
    expect_error(&s, MAX, "http", "answer header line longer than 8192 bytes");
  }
  /* a header line with no end at all: refused at its 8194th byte, not read on */
  s.len = 0;
  puts_(&s, "HTTP/1.1 200 OK\r\nX-A: ");
  rep(&s, 'a', 200000);
  expect_error(&s, MAX, "http", "answer header line longer than 8192 bytes");
  s.len = 0;
  puts_(&s, "HTTP/1.1 200 ");
  rep(&s, 'x', LR_H1_MAX_LINE);
  expect_error(&s, MAX, "http", "answer status line longer than 8192 bytes");
  /* 64 KiB of headers in lines of 1000 bytes: the block's cap */
  s.len = 0;
  puts_(&s, "HTTP/1.1 200 OK\r\n");
  for (int i = 0; i < 64; i++) {
    putf(&s, "X-%02d: ", i);
    rep(&s, 'v', 992);
    puts_(&s, "\r\n");
  }
  size_t at64 = s.len;
  puts_(&s, "Content-Length: 0\r\n\r\n");
  expect_ok(&s, MAX);
  s.len = at64;
  puts_(&s, "X-Last: ");
  rep(&s, 'v', 1600);
  puts_(&s, "\r\n\r\n");
  expect_error(&s, MAX, "http", "the answer's headers exceed 64 KiB (65536 bytes)");
  /* 100 fields pass, 101 do not */
  s.len = 0;
  puts_(&s, "HTTP/1.1 200 OK\r\n");
  for (int i = 0; i < LR_H1_MAX_FIELDS - 1; i++) putf(&s, "X-%d: 1\r\n", i);
  size_t at99 = s.len;
  puts_(&s, "Content-Length: 0\r\n\r\n");
  expect_ok(&s, MAX);
  s.len = at99;
  puts_(&s, "X-100: 1\r\nContent-Length: 0\r\n\r\n");
  expect_error(&s, MAX, "http", "the answer has more than 100 header fields");
  free(s.p);
}

TEST(caps_on_interim_answers) {
  sb s = {0};
  for (int i = 0; i < LR_H1_MAX_INTERIM; i++) puts_(&s, "HTTP/1.1 100 Continue\r\n\r\n");
  size_t at = s.len;
  puts_(&s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  expect_ok(&s, MAX);
  s.len = at;
  for (int i = 0; i < 1000; i++) puts_(&s, "HTTP/1.1 100 Continue\r\n\r\n");
  expect_error(&s, MAX, "http", "more than 8 interim (1xx) answers before the final one");
  free(s.p);
}

TEST(caps_on_chunks_and_trailers) {
  sb s = {0};
  const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  /* the abuse that grew a worker to 7.6 GB: a chunk-size line of endless 1s */
  puts_(&s, head);
  rep(&s, '1', 1 << 20);
  expect_error(&s, MAX, "connect", "answer chunk size overflows 64 bits");
  s.len = 0;
  puts_(&s, head);
  puts_(&s, "FFFFFFFFFFFFFFFF\r\n"); /* 16 digits: read, then refused by the body's cap */
  expect_error(&s, MAX, "http", "response body exceeds max_response_bytes (1048576)");
  /* a chunk-size line of 1024 bytes passes, 1025 does not; endless extensions stop there */
  s.len = 0;
  puts_(&s, head);
  puts_(&s, "1;");
  rep(&s, 'e', LR_H1_MAX_CHUNK_LINE - 3);
  puts_(&s, "\r\nx\r\n0\r\n\r\n");
  expect_ok(&s, MAX);
  s.len = 0;
  puts_(&s, head);
  puts_(&s, "1;");
  rep(&s, 'e', 100000);
  expect_error(&s, MAX, "http", "answer chunk-size line longer than 1024 bytes");
  /* trailers: 32 lines pass, the 33rd does not; 8192 bytes pass, 8193 do not */
  s.len = 0;
  puts_(&s, head);
  puts_(&s, "0\r\n");
  for (int i = 0; i < LR_H1_MAX_TRAILER_LINES; i++) puts_(&s, "X-T: 1\r\n");
  size_t at = s.len;
  puts_(&s, "\r\n");
  expect_ok(&s, MAX);
  s.len = at;
  for (int i = 0; i < 100000; i++) puts_(&s, "X-T: 1\r\n");
  expect_error(&s, MAX, "http", "the answer has more than 32 trailer lines");
  s.len = 0;
  puts_(&s, head);
  puts_(&s, "0\r\nX-T: ");
  rep(&s, 't', LR_H1_MAX_TRAILER - 8);
  puts_(&s, "\r\n\r\n"); /* 5 + 8184 + CRLF + CRLF: 8193 bytes */
  expect_error(&s, MAX, "http", "answer trailers longer than 8192 bytes");
  s.len -= 5;
  puts_(&s, "\r\n\r\n");
  expect_ok(&s, MAX);
  free(s.p);
}

TEST(caps_on_the_body) {
  sb s = {0};
  puts_(&s, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n");
  expect_error(&s, 10, "http", "response body exceeds max_response_bytes (10)");
  s.len = 0;
  puts_(&s, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789");
  expect_ok(&s, 10);
  /* chunks adding up past the cap: the chunk that would pass it is refused */
  s.len = 0;
  puts_(&s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n");
  expect_ok(&s, 10);
  s.len = 0;
  puts_(&s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n");
  expect_error(&s, 10, "http", "response body exceeds max_response_bytes (10)");
  /* close-delimited: the cap's bytes are handed out, the next one is refused */
  s.len = 0;
  puts_(&s, "HTTP/1.1 200 OK\r\n\r\n0123456789");
  expect_ok(&s, 10);
  puts_(&s, "!");
  char *got = trace_all(s.p, s.len, 10, 1);
  CHECK(strcmp(got, "[200 0 0 -1 ]0123456789|ERROR http: response body exceeds max_response_bytes (10) 29") == 0);
  free(got);
  free(s.p);
}

TEST(cut_and_timeout_messages) {
  lr_http1 h;
  char m[160];
  size_t u, bl;
  const char *b;
  lr_http1_init(&h, 100);
  CHECK(lr_http1_timeout(&h, LR_H1_TIMER_TOTAL, LR_H1_AT_CONNECT, 8, m, sizeof m) == LR_E_TIMEOUT);
  CHECK(strcmp(m, "timeout.total (8 s) reached while connecting") == 0);
  lr_http1_timeout(&h, LR_H1_TIMER_CONNECT, LR_H1_AT_CONNECT, 5, m, sizeof m);
  CHECK(strcmp(m, "timeout: no connection within connect (5 s)") == 0);
  lr_http1_timeout(&h, LR_H1_TIMER_TOTAL, LR_H1_AT_SEND, 8, m, sizeof m);
  CHECK(strcmp(m, "timeout.total (8 s) reached while sending the request") == 0);
  lr_http1_timeout(&h, LR_H1_TIMER_TOTAL, LR_H1_AT_ANSWER, 8, m, sizeof m);
  CHECK(strcmp(m, "timeout.total (8 s) reached while waiting for the answer") == 0);
  lr_http1_timeout(&h, LR_H1_TIMER_FIRST_BYTE, LR_H1_AT_ANSWER, 3, m, sizeof m);
  CHECK(strcmp(m, "timeout: no response within first_byte (3 s)") == 0);
  lr_http1_feed(&h, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2", 35, &u, &b, &bl);
  lr_http1_timeout(&h, LR_H1_TIMER_TOTAL, LR_H1_AT_ANSWER, 8, m, sizeof m);
  CHECK(strcmp(m, "timeout.total (8 s) reached while reading the answer's headers") == 0);
  lr_http1_timeout(&h, LR_H1_TIMER_FIRST_BYTE, LR_H1_AT_ANSWER, 0.25, m, sizeof m);
  CHECK(strcmp(m, "timeout: the answer's headers stalled for first_byte (0.25 s)") == 0);
  CHECK(lr_http1_feed(&h, "00 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 37, &u, &b, &bl) == LR_H1_HEAD);
  lr_http1_timeout(&h, LR_H1_TIMER_TOTAL, LR_H1_AT_ANSWER, 8, m, sizeof m);
  CHECK(strcmp(m, "timeout.total (8 s) reached while reading the answer's body") == 0);
  lr_http1_timeout(&h, LR_H1_TIMER_IDLE, LR_H1_AT_ANSWER, 3, m, sizeof m);
  CHECK(strcmp(m, "timeout: the stream was silent for idle (3 s)") == 0);
  CHECK(lr_http1_feed(&h, "0\r\nX: 1\r\n", 9, &u, &b, &bl) == LR_H1_MORE);
  lr_http1_timeout(&h, LR_H1_TIMER_TOTAL, LR_H1_AT_ANSWER, 6, m, sizeof m);
  CHECK(strcmp(m, "timeout.total (6 s) reached while reading the answer's trailers") == 0);
  CHECK(lr_http1_cut(&h, "connection reset by peer") == LR_H1_ERROR);
  CHECK(h.kind == LR_E_CONNECT && strcmp(h.message, "the answer was cut in its trailers: connection reset by peer") == 0);
  lr_http1_free(&h);
  /* nothing came: the cut is "no answer"; once done, a cut changes nothing */
  lr_http1_init(&h, 100);
  CHECK(lr_http1_cut(&h, "closed") == LR_H1_ERROR && strcmp(h.message, "no answer: closed") == 0);
  lr_http1_free(&h);
  lr_http1_init(&h, 100);
  lr_http1_feed(&h, "HTTP/1.1 200 OK\r\n\r\nab", 21, &u, &b, &bl);
  CHECK(lr_http1_cut(&h, "connection reset by peer") == LR_H1_ERROR); /* a reset is no end of a close-delimited body */
  lr_http1_free(&h);
  lr_http1_init(&h, 100);
  lr_http1_feed(&h, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38, &u, &b, &bl);
  CHECK(lr_http1_feed(&h, "", 0, &u, &b, &bl) == LR_H1_DONE);
  CHECK(lr_http1_cut(&h, "closed") == LR_H1_DONE && lr_http1_eof(&h) == LR_H1_DONE);
  lr_http1_free(&h);
}

int main(void) {
  RUN(content_length);
  RUN(chunked);
  RUN(close_delimited_and_keep_alive);
  RUN(interim_answers_are_skipped);
  RUN(malformed);
  RUN(caps_on_lines_and_the_head);
  RUN(caps_on_interim_answers);
  RUN(caps_on_chunks_and_trailers);
  RUN(caps_on_the_body);
  RUN(cut_and_timeout_messages);
  CTEST_END();
}
