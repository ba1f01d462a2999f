/* JSON validation (and the error-kind names, the other tiny new file).
 * Documents are copied into exactly-sized malloc'd blocks without a NUL. */
#include "ctest.h"
#include "errors.h"
#include "jsoncheck.h"

#include <limits.h>
#include <stdlib.h>

static int check_n(int (*f)(const char *, size_t, int), const char *s, size_t n, int depth) {
  char *b = malloc(n);
  if (n && !b) abort();
  if (n) memcpy(b, s, n);
  int r = f(b, n, depth);
  free(b);
  return r;
}

static void expect_n(const char *s, size_t n, int depth, int want) {
  int r = check_n(lr_json_check, s, n, depth);
  if (r != want) fprintf(stderr, "  lr_json_check(\"%.*s\", %d) -> %d, want %d\n", (int)n, s, depth, r, want);
  CHECK(r == want);
}

#define VALID(s) expect_n(s, sizeof(s) - 1, 64, 0)
#define INVALID(s) expect_n(s, sizeof(s) - 1, 64, -1)

static const char *const valid_docs[] = {
    "0", "-0", "1", "-1", "123", "1.5", "-1.5e10", "1E+2", "1e-2", "0.0", "0e0", "-0.0e-0", "1e999999",
    "123456789012345678901234567890", "true", "false", "null", "\"\"", "\"abc\"",
    "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\uD83D\\uDE00\\uffff\"", "\"\\uD800\"", "\"\x7f\"",
    "\"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9D\x84\x9E \xF4\x8F\xBF\xBF \xEE\x80\x80\"", "[]", "{}", "[1,2,3]",
    "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}", " \t\r\n[ 1 , 2 ] \n", "{ \"a\" : { } }",
    "[[[[]]]]", "[{}, [], \"\", 0, -0.5E-3]", "{\"\":\"\"}", "{\"a\":1,\"a\":2}", "[\"]\"]", "{\"}\":\"{\"}",
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":\"Hi \\u00e9\\n\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":"
    "9,\"completion_tokens\":2,\"total_tokens\":11}}"};

TEST(valid_corpus) {
  for (size_t i = 0; i < sizeof valid_docs / sizeof valid_docs[0]; i++)
    expect_n(valid_docs[i], strlen(valid_docs[i]), 64, 0);
  expect_n("\"a\\u0000b\"", 10, 64, 0); /* an escaped NUL is fine */
}

TEST(invalid_numbers) {
  INVALID("01");
  INVALID("-01");
  INVALID("00");
  INVALID("[01]");
  INVALID("+1");
  INVALID(".5");
  INVALID("1.");
  INVALID("1.e5");
  INVALID("1e");
  INVALID("1e+");
  INVALID("1E-");
  INVALID("-");
  INVALID("--1");
  INVALID("-.5");
  INVALID("0x10");
  INVALID("NaN");
  INVALID("Infinity");
  INVALID("-Infinity");
  INVALID("1..2");
  INVALID("1.2.3");
  INVALID("1e5e5");
  INVALID("1 2");
  INVALID("- 1");
  INVALID("1_000");
  INVALID("\xd9\xa1");
}

TEST(invalid_literals) {
  INVALID("tru");
  INVALID("truex");
  INVALID("True");
  INVALID("nul");
  INVALID("nulll");
  INVALID("fals");
  INVALID("FALSE");
  INVALID("undefined");
  INVALID("'a'");
  INVALID("[true false]");
}

TEST(invalid_strings) {
  INVALID("\"abc");
  INVALID("\"abc\\\"");
  INVALID("\"\\\"");
  INVALID("\"\\x41\"");
  INVALID("\"\\u00G0\"");
  INVALID("\"\\u004\"");
  INVALID("\"\\u\"");
  INVALID("\"\\U0041\"");
  INVALID("\"\\a\"");
  INVALID("\"\\0\"");
  INVALID("\"\\'\"");
  INVALID("\"\t\"");
  INVALID("\"\n\"");
  INVALID("\"\r\"");
  INVALID("\"\x01\"");
  INVALID("\"\x1f\"");
  expect_n("\"\0\"", 3, 64, -1);
  INVALID("\"\xC0\xAF\"");         /* overlong '/' */
  INVALID("\"\xC1\xBF\"");         /* overlong */
  INVALID("\"\xE0\x80\xAF\"");     /* overlong, 3 bytes */
  INVALID("\"\xF0\x80\x80\xAF\""); /* overlong, 4 bytes */
  INVALID("\"\xED\xA0\x80\"");     /* a surrogate, encoded */
  INVALID("\"\xED\xBF\xBF\"");
  INVALID("\"\xF4\x90\x80\x80\""); /* above U+10FFFF */
  INVALID("\"\xF5\x80\x80\x80\"");
  INVALID("\"\xFF\"");
  INVALID("\"\x80\"");             /* a lone continuation byte */
  INVALID("\"\xC3\"");             /* cut sequences */
  INVALID("\"\xE2\x82\"");
  INVALID("\"\xF0\x9D\x84\"");
  INVALID("\"\xC3\x28\"");         /* a bad continuation */
  INVALID("\"\xE2\x28\xA1\"");
  INVALID("\"\xF0\x9D\x28\x9E\"");
  INVALID("\xC3\xA9");             /* not in a string */
  expect_n("\"\xC3", 2, 64, -1);   /* ends inside a sequence */
  expect_n("\"\xF0\x9D\x84\x9E", 4, 64, -1);
}

TEST(invalid_structure) {
  static const char *const bad[] = {
      "", " ", "\n\t", "[1,]", "[,1]", "[,]", "[1 2]", "{\"a\"}", "{\"a\":}", "{a:1}", "{\"a\":1,}", "{,}",
      "{\"a\" 1}", "{\"a\"::1}", "{1:1}", "{null:1}", "[", "]", "{", "}", "[}", "{]", "[1]]", "{}}",
      "[] []", "{\"a\":1}x", "/* c */ 1", "1 // c", "[1,2", "\xEF\xBB\xBF{}", "\f1", "\v1", "1\f",
      "[1;2]", "{\"a\":1;\"b\":2}", "{\"a\",1}", "[\"a\":1]", "{\"a\":1 \"b\":2}", "((1))", "<a/>",
      "{\"a\":[}", "[{]}", "{\"a\":{\"b\":1}", "\"a\"\"b\"", "[]1", "1[]", "{}\"\""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_n(bad[i], strlen(bad[i]), 64, -1);
  expect_n("1\0", 2, 64, -1);
  expect_n("{}\0", 3, 64, -1);
  expect_n(" \0 1", 4, 64, -1);
  expect_n(NULL, 0, 64, -1);
}

/* Every proper prefix of a document that ends in a bracket, quote or
 * literal is invalid, and is read within its bounds. */
TEST(truncated_documents) {
  for (size_t i = 0; i < sizeof valid_docs / sizeof valid_docs[0]; i++) {
    const char *d = valid_docs[i];
    size_t n = strlen(d);
    char last = d[n - 1];
    if (!strchr("]}\"el", last)) continue;
    for (size_t k = 0; k < n; k++) expect_n(d, k, 64, -1);
  }
  /* numbers: a prefix may be a number itself */
  expect_n("-1.5e10", 1, 64, -1);
  expect_n("-1.5e10", 2, 64, 0);
  expect_n("-1.5e10", 3, 64, -1);
  expect_n("-1.5e10", 5, 64, -1);
  expect_n("-1.5e10", 6, 64, 0);
}

static char *nested(const char *open, const char *close, const char *inner, int depth, size_t *len) {
  size_t lo = strlen(open), lc = strlen(close), li = strlen(inner);
  size_t n = (size_t)depth * (lo + lc) + li;
  char *b = malloc(n + 1), *p = b;
  if (!b) abort();
  for (int i = 0; i < depth; i++, p += lo) memcpy(p, open, lo);
  memcpy(p, inner, li);
  p += li;
  for (int i = 0; i < depth; i++, p += lc) memcpy(p, close, lc);
  *len = n;
  return b;
}

/* `reps` copies of open/close around inner make a document `depth` deep. */
static void depth_case(const char *open, const char *close, const char *inner, int reps, int depth) {
  size_t n;
  char *d = nested(open, close, inner, reps, &n);
  expect_n(d, n, depth, 0);
  expect_n(d, n, depth + 1, 0);
  expect_n(d, n, INT_MAX, 0);
  expect_n(d, n, depth - 1, -1);
  expect_n(d, n - 1, depth, -1);
  free(d);
}

TEST(depth_limit) {
  const int depths[] = {1, 2, 7, 8, 9, 63, 64, 65, 100, 1000, 4096};
  for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
    depth_case("[", "]", "", depths[i], depths[i]);
    depth_case("[", "]", "1", depths[i], depths[i]);
    depth_case("{\"a\":", "}", "1", depths[i], depths[i]);
    depth_case("{\"a\":", "}", "{}", depths[i], depths[i] + 1);
    depth_case("[{\"k\":", "}]", "0", depths[i], 2 * depths[i]);
  }
  depth_case("{\"a\":[", "]}", "null", 40, 80);
  expect_n("1", 1, 0, 0);      /* depth 0: scalars only */
  expect_n("\"x\"", 3, 0, 0);
  expect_n("[]", 2, 0, -1);
  expect_n("{}", 2, 0, -1);
  expect_n("[]", 2, -5, -1);
  expect_n("1", 1, -5, 0);
  expect_n("[[],[],{\"a\":1}]", 15, 2, 0); /* siblings do not add up */
  expect_n("[[],[],{\"a\":[]}]", 16, 2, -1);
  expect_n("[[],[],{\"a\":[]}]", 16, 3, 0);
}

TEST(very_deep_input_is_bounded) {
  size_t n;
  char *d = nested("[", "]", "", 65536, &n);
  expect_n(d, n, INT_MAX, 0);
  expect_n(d, n, 65535, -1);
  free(d);
  d = nested("[", "]", "", 200000, &n);
  expect_n(d, n, INT_MAX, -1); /* deeper than any limit we keep */
  expect_n(d, n / 2, INT_MAX, -1);
  free(d);
  d = nested("{\"\":", "}", "1", 100000, &n);
  expect_n(d, n, 64, -1);
  free(d);
}

TEST(large_flat_document) {
  size_t n = 0, cap = 4 << 20;
  char *d = malloc(cap);
  if (!d) abort();
  d[n++] = '[';
  while (n < cap - 64) n += (size_t)snprintf(d + n, 64, "{\"i\":%zu,\"s\":\"\\u00e9x\\n\",\"f\":-1.5e3},", n);
  d[n - 1] = ']';
  expect_n(d, n, 2, 0);
  expect_n(d, n, 1, -1);
  d[n / 2] = '\x01';
  expect_n(d, n, 2, -1);
  free(d);
}

TEST(object_only) {
  static const struct {
    const char *s;
    int want;
  } cases[] = {{"{}", 0},      {" {\"a\":1} ", 0}, {"\n{\"a\":[1]}", 0}, {"[]", -1}, {"1", -1},
               {"\"{}\"", -1}, {"{", -1},          {"", -1},             {" ", -1},  {"{} {}", -1},
               {"{]", -1},     {"null", -1},       {"[{}]", -1},         {"{\"a\":}", -1}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int r = check_n(lr_json_check_object, cases[i].s, strlen(cases[i].s), 64);
    if (r != cases[i].want) fprintf(stderr, "  lr_json_check_object(\"%s\") -> %d\n", cases[i].s, r);
    CHECK(r == cases[i].want);
  }
  CHECK(check_n(lr_json_check_object, "{\"a\":{}}", 8, 1) == -1); /* depth applies */
  CHECK(check_n(lr_json_check_object, "{\"a\":{}}", 8, 2) == 0);
  CHECK(lr_json_check_object(NULL, 0, 64) == -1);
}

TEST(every_byte_in_a_string) {
  char doc[3] = {'"', 0, '"'};
  for (int c = 0; c < 256; c++) {
    doc[1] = (char)c;
    int want = c >= 0x20 && c < 0x80 && c != '"' && c != '\\' ? 0 : -1;
    expect_n(doc, 3, 64, want);
  }
  char esc[4] = {'"', '\\', 0, '"'};
  for (int c = 0; c < 256; c++) {
    esc[2] = (char)c;
    expect_n(esc, 4, 64, c && strchr("\"\\/bfnrt", c) ? 0 : -1);
  }
}

TEST(every_two_byte_sequence) {
  char doc[4] = {'"', 0, 0, '"'};
  for (int a = 0x80; a < 256; a++)
    for (int b = 0; b < 256; b++) {
      doc[1] = (char)a;
      doc[2] = (char)b;
      int want = a >= 0xC2 && a <= 0xDF && b >= 0x80 && b <= 0xBF ? 0 : -1;
      expect_n(doc, 4, 64, want);
    }
}

TEST(error_kind_names) {
  CHECK(strcmp(lr_error_kind_name(LR_E_NONE), "ok") == 0);
  CHECK(strcmp(lr_error_kind_name(LR_E_RATE_LIMITED), "rate_limited") == 0);
  CHECK(strcmp(lr_error_kind_name(LR_E_STREAM_INTERRUPTED), "stream_interrupted") == 0);
  CHECK(strcmp(lr_error_kind_name(LR_E_CANCELLED), "cancelled") == 0);
  CHECK(strcmp(lr_error_kind_name(LR_E__COUNT), "unknown") == 0);
  CHECK(strcmp(lr_error_kind_name((lr_error_kind)-1), "unknown") == 0);
  CHECK(strcmp(lr_error_kind_name((lr_error_kind)1000), "unknown") == 0);
  for (int k = 0; k < LR_E__COUNT; k++) {
    const char *name = lr_error_kind_name((lr_error_kind)k);
    CHECK(name && *name && strcmp(name, "unknown") != 0);
    for (int j = 0; j < k; j++) CHECK(strcmp(name, lr_error_kind_name((lr_error_kind)j)) != 0);
  }
}

int main(void) {
  RUN(valid_corpus);
  RUN(invalid_numbers);
  RUN(invalid_literals);
  RUN(invalid_strings);
  RUN(invalid_structure);
  RUN(truncated_documents);
  RUN(depth_limit);
  RUN(very_deep_input_is_bounded);
  RUN(large_flat_document);
  RUN(object_only);
  RUN(every_byte_in_a_string);
  RUN(every_two_byte_sequence);
  RUN(error_kind_names);
  CTEST_END();
}
