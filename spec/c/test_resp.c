/* The RESP2 codec: every reply fed whole, byte by byte and cut at every
 * point, each piece in a block of exactly its size; all must give the same
 * trace. Then replies back to back, each cap at its limit and one past it,
 * each malformed form, and the encoder (round trips, the size it asks for). */
#include "ctest.h"
#include "resp.h"

#include <stdint.h>
#include <stdlib.h>

#define ELEMS 64
#define ARENA 4096

/* A readable trace of one decoded reply (or of the error). */
static void render(const lr_resp *d, lr_resp_event ev, size_t used, char *t, size_t n) {
  size_t at = 0, i;
  if (ev == LR_RESP_ERROR) {
    snprintf(t, n, "ERROR %s", d->message);
    return;
  }
  if (ev == LR_RESP_MORE) {
    snprintf(t, n, "MORE");
    return;
  }
  for (i = 0; i < d->n_elems && at < n; i++) {
    const lr_resp_elem *e = &d->elems[i];
    static const char *names[] = {"+", "-", ":", "$", "*", "$nil", "*nil"};
    at += (size_t)snprintf(t + at, n - at, "%s", names[e->type]);
    if (at >= n) break;
    if (e->type == LR_RESP_INTEGER || e->type == LR_RESP_ARRAY)
      at += (size_t)snprintf(t + at, n - at, "%lld ", (long long)e->integer);
    else if (e->str) {
      CHECK(e->str >= d->arena && e->str + e->len <= d->arena + d->arena_cap);
      at += (size_t)snprintf(t + at, n - at, "[%.*s] ", (int)e->len, e->str);
    } else
      at += (size_t)snprintf(t + at, n - at, " ");
  }
  if (at < n) snprintf(t + at, n - at, "used %zu", used);
}

/* Decodes in[0..n) cut every `step` bytes (0: whole); trace into t. */
static lr_resp_event decode(const char *in, size_t n, size_t step, size_t max_elems, size_t arena_cap,
                            size_t max_bulk, char *t, size_t tn) {
  static lr_resp_elem elems[5000];
  static char arena[1 << 21];
  lr_resp d;
  size_t at = 0, total = 0;
  lr_resp_event ev = LR_RESP_MORE;
  lr_resp_init(&d, elems, max_elems, arena, arena_cap, max_bulk);
  while (at < n && ev == LR_RESP_MORE) {
    size_t piece = step && step < n - at ? step : n - at, u;
    char *block = malloc(piece);
    if (!block) abort();
    memcpy(block, in + at, piece);
    ev = lr_resp_feed(&d, block, piece, &u);
    CHECK(u <= piece);
    CHECK(ev != LR_RESP_MORE || u == piece);
    total += u;
    at += piece;
    free(block);
  }
  render(&d, ev, total, t, tn);
  return ev;
}

static char got_buf[8192];

/* Decodes whole, byte by byte and in 2..7-byte pieces; all must agree. */
static const char *dec(const char *in, size_t n) {
  static char whole[8192];
  decode(in, n, 0, ELEMS, ARENA, 0, whole, sizeof whole);
  for (size_t step = 1; step < 8 && step < n; step++) {
    decode(in, n, step, ELEMS, ARENA, 0, got_buf, sizeof got_buf);
    if (strcmp(whole, got_buf) != 0) {
      fprintf(stderr, "step %zu: %s\nwhole: %s\n", step, got_buf, whole);
      CHECK(strcmp(whole, got_buf) == 0);
    }
  }
  return whole;
}

#define DEC(lit) dec(lit, sizeof(lit) - 1)
#define EXPECT(lit, want)                                          \
  do {                                                             \
    const char *got_ = DEC(lit);                                   \
    if (strcmp(got_, want) != 0) fprintf(stderr, "got  %s\n", got_); \
    CHECK(strcmp(got_, want) == 0);                                \
  } while (0)

TEST(every_type) {
  EXPECT("+OK\r\n", "+[OK] used 5");
  EXPECT("+\r\n", "+[] used 3");
  EXPECT("-ERR unknown command 'FOO'\r\n", "-[ERR unknown command 'FOO'] used 28");
  EXPECT(":0\r\n", ":0 used 4");
  EXPECT(":-42\r\n", ":-42 used 6");
  EXPECT(":9223372036854775807\r\n", ":9223372036854775807 used 22");
  EXPECT(":-9223372036854775808\r\n", ":-9223372036854775808 used 23");
  EXPECT("$5\r\nhello\r\n", "$[hello] used 11");
  EXPECT("$0\r\n\r\n", "$[] used 6");
  EXPECT("$4\r\na\r\nb\r\n", "$[a\r\nb] used 10"); /* binary-safe: CRLF inside */
  EXPECT("*0\r\n", "*0 used 4");
}

TEST(nil_forms) {
  EXPECT("$-1\r\n", "$nil used 5");
  EXPECT("*-1\r\n", "*nil used 5");
  EXPECT("*3\r\n$-1\r\n*-1\r\n:1\r\n", "*3 $nil *nil :1 used 18");
}

TEST(nested_arrays) {
  EXPECT("*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n$1\r\nx\r\n", "*2 *2 :1 :2 *1 $[x] used 27");
  EXPECT("*2\r\n*0\r\n+a\r\n", "*2 *0 +[a] used 12");
  EXPECT("*1\r\n*1\r\n*1\r\n:7\r\n", "*1 *1 *1 :7 used 16");
}

/* What redis-server answers to the store's scripts. */
TEST(redis_shapes) {
  EXPECT("-NOSCRIPT No matching script. Please use EVAL.\r\n", "-[NOSCRIPT No matching script. Please use EVAL.] used 48");
  EXPECT("*3\r\n:1\r\n$2\r\n17\r\n*2\r\n$5\r\nopen \r\n:1733140000123\r\n",
         "*3 :1 $[17] *2 $[open ] :1733140000123 used 47");
  EXPECT("$40\r\n6b1bf486c81ceb7edf3c093f4c48582e38c0e791\r\n",
         "$[6b1bf486c81ceb7edf3c093f4c48582e38c0e791] used 47");
  EXPECT("-WRONGPASS invalid username-password pair or user is disabled.\r\n",
         "-[WRONGPASS invalid username-password pair or user is disabled.] used 64");
  EXPECT("*2\r\n$-1\r\n:-2\r\n", "*2 $nil :-2 used 14");
}

/* Every cut point of a reply gives the same trace as feeding it whole. */
TEST(every_split) {
  const char in[] = "*3\r\n$3\r\nfoo\r\n*2\r\n:1\r\n-E x\r\n+ok\r\n";
  size_t n = sizeof in - 1;
  char whole[512], cut[512];
  decode(in, n, 0, ELEMS, ARENA, 0, whole, sizeof whole);
  for (size_t k = 1; k < n; k++) {
    static lr_resp_elem elems[ELEMS];
    static char arena[ARENA];
    lr_resp d;
    size_t u1, u2;
    char *a = malloc(k), *b = malloc(n - k);
    if (!a || !b) abort();
    memcpy(a, in, k);
    memcpy(b, in + k, n - k);
    lr_resp_init(&d, elems, ELEMS, arena, ARENA, 0);
    CHECK(lr_resp_feed(&d, a, k, &u1) == LR_RESP_MORE && u1 == k);
    lr_resp_event ev = lr_resp_feed(&d, b, n - k, &u2);
    render(&d, ev, u1 + u2, cut, sizeof cut);
    CHECK(strcmp(whole, cut) == 0);
    free(a);
    free(b);
  }
}

/* Two replies in one slice: the second starts where the first ended. */
TEST(back_to_back) {
  static lr_resp_elem elems[ELEMS];
  static char arena[ARENA];
  const char in[] = "+OK\r\n*2\r\n$1\r\na\r\n:5\r\n:9";
  lr_resp d;
  size_t u, off;
  lr_resp_init(&d, elems, ELEMS, arena, ARENA, 0);
  CHECK(lr_resp_feed(&d, in, sizeof in - 1, &u) == LR_RESP_DONE && u == 5);
  CHECK(d.n_elems == 1 && d.elems[0].len == 2 && memcmp(d.elems[0].str, "OK", 2) == 0);
  CHECK(lr_resp_feed(&d, in + u, sizeof in - 1 - u, &u) == LR_RESP_DONE && u == 0); /* sticky */
  lr_resp_next(&d);
  off = 5;
  CHECK(lr_resp_feed(&d, in + off, sizeof in - 1 - off, &u) == LR_RESP_DONE && u == 15);
  CHECK(d.n_elems == 3 && d.elems[0].integer == 2 && d.elems[2].integer == 5);
  CHECK(d.elems[1].len == 1 && d.elems[1].str[0] == 'a');
  off += u;
  lr_resp_next(&d);
  CHECK(lr_resp_feed(&d, in + off, sizeof in - 1 - off, &u) == LR_RESP_MORE && u == 2);
  CHECK(lr_resp_feed(&d, "\r\n", 2, &u) == LR_RESP_DONE && d.elems[0].integer == 9);
}

static void expect_error(const char *in, size_t n, size_t max_elems, size_t arena, size_t max_bulk,
                         const char *needle) {
  char whole[512], bytes[512];
  CHECK(decode(in, n, 0, max_elems, arena, max_bulk, whole, sizeof whole) == LR_RESP_ERROR);
  decode(in, n, 1, max_elems, arena, max_bulk, bytes, sizeof bytes);
  CHECK(strcmp(whole, bytes) == 0);
  if (!strstr(whole, needle)) fprintf(stderr, "'%s' lacks '%s'\n", whole, needle);
  CHECK(strstr(whole, needle) != NULL);
}
#define ERR(lit, needle) expect_error(lit, sizeof(lit) - 1, ELEMS, ARENA, 0, needle)
#define ERR_CAPS(lit, elems, arena, bulk, needle) expect_error(lit, sizeof(lit) - 1, elems, arena, bulk, needle)

TEST(cap_line) {
  char in[600], t[600];
  in[0] = '+';
  memset(in + 1, 'a', 511);
  memcpy(in + 512, "\r\n", 2);
  CHECK(decode(in, 514, 0, ELEMS, ARENA, 0, t, sizeof t) == LR_RESP_DONE);
  in[512] = 'a';
  memcpy(in + 513, "\r\n", 2);
  expect_error(in, 515, ELEMS, ARENA, 0, "line longer than 512 bytes at byte 512");
}

TEST(cap_integer) {
  ERR(":9223372036854775808\r\n", "integer out of int64 range");
  ERR(":-9223372036854775809\r\n", "integer out of int64 range");
  ERR(":99999999999999999999999\r\n", "integer out of int64 range");
  ERR("$9223372036854775808\r\n", "integer out of int64 range after '$'");
  ERR("*18446744073709551617\r\n", "integer out of int64 range after '*'");
  EXPECT(":000000000000000000000000000042\r\n", ":42 used 33");
}

TEST(cap_bulk) {
  char in[64], t[256];
  memcpy(in, "$10\r\n0123456789\r\n", 17);
  CHECK(decode(in, 17, 0, ELEMS, ARENA, 10, t, sizeof t) == LR_RESP_DONE);
  expect_error(in, 17, ELEMS, ARENA, 9, "bulk string of 10 bytes over the cap (9)");
  ERR("$1048577\r\n", "bulk string of 1048577 bytes over the cap (1048576)"); /* the default */
  /* The arena bounds a whole reply's string bytes. */
  ERR_CAPS("*2\r\n$6\r\nabcdef\r\n$5\r\nghijk\r\n", ELEMS, 10, 0, "reply larger than the buffer (10 bytes)");
  ERR_CAPS("+abcdefghijk\r\n", ELEMS, 10, 0, "reply larger than the buffer");
}

TEST(cap_depth) {
  EXPECT("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "*1 *1 *1 *1 *1 *1 *1 *1 :1 used 36");
  ERR("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*0\r\n", "arrays nested deeper than 8");
}

TEST(cap_elements) {
  char t[512];
  const char four[] = "*3\r\n:1\r\n:2\r\n:3\r\n";
  CHECK(decode(four, sizeof four - 1, 0, 4, ARENA, 0, t, sizeof t) == LR_RESP_DONE);
  expect_error(four, sizeof four - 1, 3, ARENA, 0, "more than 3 elements in one reply at byte 3");
  ERR_CAPS("*2\r\n*1\r\n:1\r\n:2\r\n", 3, ARENA, 0, "more than 3 elements in one reply at byte 15");
  ERR("*4096\r\n", "more than 64 elements");
  /* the default cap, with the caller's buffer of that size */
  CHECK(decode("*4095\r\n", 7, 0, LR_RESP_DEFAULT_MAX_ELEMS, ARENA, 0, t, sizeof t) == LR_RESP_MORE);
  CHECK(decode("*4096\r\n", 7, 0, LR_RESP_DEFAULT_MAX_ELEMS, ARENA, 0, t, sizeof t) == LR_RESP_ERROR);
}

TEST(malformed) {
  ERR("!oops\r\n", "unexpected type byte 0x21 at byte 0");
  ERR("\r\n", "unexpected type byte 0x0d");
  ERR("*1\r\nX\r\n", "unexpected type byte 0x58 at byte 4");
  ERR("+OK\n", "LF without CR ending a line");
  ERR("+OK\rX", "CR without LF ending a line");
  ERR(":\r\n", "malformed integer (no digits) after ':'");
  ERR(":-\r\n", "malformed integer (no digits)");
  ERR(":12a\r\n", "malformed integer (not a digit)");
  ERR(": 1\r\n", "malformed integer (not a digit)");
  ERR(":+1\r\n", "malformed integer (not a digit)");
  ERR("$abc\r\n", "malformed integer (not a digit) after '$'");
  ERR("$-2\r\nxx\r\n", "negative bulk length -2");
  ERR("*-5\r\n", "negative array length -5");
  ERR("$3\r\nfoobar\r\n", "bulk string not followed by CRLF (bad length?) at byte 7");
  ERR("$3\r\nfoo\rX", "bulk string not followed by CRLF (CR without LF)");
  ERR("$3\r\nfoo\n\r", "bad length?");
  /* errors stick */
  {
    static lr_resp_elem elems[ELEMS];
    static char arena[ARENA];
    lr_resp d;
    size_t u;
    lr_resp_init(&d, elems, ELEMS, arena, ARENA, 0);
    CHECK(lr_resp_feed(&d, "?", 1, &u) == LR_RESP_ERROR && u == 1);
    lr_resp_next(&d);
    CHECK(lr_resp_feed(&d, "+OK\r\n", 5, &u) == LR_RESP_ERROR && u == 0);
  }
}

TEST(truncated_needs_more) {
  const char *parts[] = {"", "+O", "$5\r\nhel", "*2\r\n:1\r\n", "$3\r\nfoo", "$3\r\nfoo\r", ":12\r"};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    char t[128];
    CHECK(decode(parts[i], strlen(parts[i]), 0, ELEMS, ARENA, 0, t, sizeof t) == LR_RESP_MORE);
  }
}

TEST(encode) {
  const char *argv[] = {"EVALSHA", "6b1bf486", "1", "k\r\n\0x"};
  size_t argl[] = {7, 8, 1, 5};
  const char want[] = "*4\r\n$7\r\nEVALSHA\r\n$8\r\n6b1bf486\r\n$1\r\n1\r\n$5\r\nk\r\n\0x\r\n";
  char out[128];
  size_t need = lr_resp_encode(NULL, 0, 4, argv, argl);
  CHECK(need == sizeof want - 1);
  memset(out, '#', sizeof out);
  CHECK(lr_resp_encode(out, need - 1, 4, argv, argl) == need && out[0] == '#'); /* too small: nothing written */
  CHECK(lr_resp_encode(out, need, 4, argv, argl) == need && memcmp(out, want, need) == 0 && out[need] == '#');
  CHECK(lr_resp_encode(out, sizeof out, 0, argv, argl) == 4 && memcmp(out, "*0\r\n", 4) == 0);
}

/* Encoded commands decode to the same arguments, whole and byte by byte. */
TEST(encode_round_trip) {
  static char big[3000];
  const char *argv[12];
  size_t argl[12], n;
  char *out;
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 31 + 7);
  for (size_t argc = 0; argc <= 12; argc++) {
    for (size_t i = 0; i < argc; i++) {
      argv[i] = big + i * 100;
      argl[i] = i == 3 ? 0 : (i * i * 17) % 1100;
    }
    n = lr_resp_encode(NULL, 0, argc, argv, argl);
    out = malloc(n);
    if (!out) abort();
    CHECK(lr_resp_encode(out, n, argc, argv, argl) == n);
    for (size_t step = 0; step < 3; step++) {
      static lr_resp_elem elems[ELEMS];
      static char arena[1 << 14];
      lr_resp d;
      size_t at = 0, u = 0;
      lr_resp_event ev = LR_RESP_MORE;
      lr_resp_init(&d, elems, ELEMS, arena, sizeof arena, 0);
      while (ev == LR_RESP_MORE && at < n) {
        size_t piece = step && step < n - at ? step : n - at;
        ev = lr_resp_feed(&d, out + at, piece, &u);
        at += u;
      }
      CHECK(ev == LR_RESP_DONE && at == n && d.n_elems == argc + 1);
      CHECK(d.elems[0].type == LR_RESP_ARRAY && d.elems[0].integer == (int64_t)argc);
      for (size_t i = 0; i < argc && i + 1 < d.n_elems; i++)
        CHECK(d.elems[i + 1].type == LR_RESP_BULK && d.elems[i + 1].len == argl[i] &&
              (argl[i] == 0 || memcmp(d.elems[i + 1].str, argv[i], argl[i]) == 0));
    }
    free(out);
  }
}

int main(void) {
  RUN(every_type);
  RUN(nil_forms);
  RUN(nested_arrays);
  RUN(redis_shapes);
  RUN(every_split);
  RUN(back_to_back);
  RUN(cap_line);
  RUN(cap_integer);
  RUN(cap_bulk);
  RUN(cap_depth);
  RUN(cap_elements);
  RUN(malformed);
  RUN(truncated_needs_more);
  RUN(encode);
  RUN(encode_round_trip);
  CTEST_END();
}
