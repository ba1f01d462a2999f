/* JSON validation (and the error-kind names, the other tiny new file).
 * Documents are copied into exactly-sized malloc'd blocks without a NUL. */
#include "ctest.h"
#include "errors.h"
#include "answer.h"
#include "jsoncheck.h"
#include "reqcheck.h"

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

/* ---- lr_json_scan: why and where, and what decoding would cost ---------- */

static lr_json_result scan(const char *s, size_t n, int depth, uint64_t max_cost) {
  lr_json_limits lim = {depth, max_cost};
  lr_json_result res;
  char *b = malloc(n ? n : 1);
  if (!b) abort();
  memcpy(b, s, n);
  lr_json_status st = lr_json_scan(b, n, &lim, &res);
  free(b);
  CHECK(st == res.status);
  return res;
}

#define SCAN(s, depth, cost) scan(s, sizeof(s) - 1, depth, cost)

TEST(scan_says_why_and_where) {
  lr_json_result r = SCAN("{\"a\":[1,\"x\"]}", 64, 0);
  CHECK(r.status == LR_JSON_OK && r.offset == 13);
  r = SCAN("[1,2,}", 64, 0);
  CHECK(r.status == LR_JSON_SYNTAX && r.offset == 5);
  r = SCAN("[\"ab\xff\"]", 64, 0);
  CHECK(r.status == LR_JSON_UTF8 && r.offset == 4);
  r = SCAN("{\"k\xC3\x28\":1}", 64, 0); /* in a key too */
  CHECK(r.status == LR_JSON_UTF8 && r.offset == 3);
  r = SCAN("[\"a\\x\"]", 64, 0); /* a bad escape is grammar, not UTF-8 */
  CHECK(r.status == LR_JSON_SYNTAX && r.offset == 4);
  r = SCAN("[\"abc", 64, 0);
  CHECK(r.status == LR_JSON_SYNTAX && r.offset == 5);
  r = SCAN("[[[1]]]", 2, 0);
  CHECK(r.status == LR_JSON_DEPTH && r.offset == 2);
  r = SCAN("", 64, 0);
  CHECK(r.status == LR_JSON_SYNTAX);
}

TEST(scan_estimates_the_decode_cost) {
  CHECK(SCAN("[]", 64, 0).cost == LR_JSON_COST_CONTAINER);
  CHECK(SCAN("[1,\"ab\",true]", 64, 0).cost == LR_JSON_COST_CONTAINER + 3 * LR_JSON_COST_VALUE + 4);
  CHECK(SCAN("{\"a\":null}", 64, 0).cost == LR_JSON_COST_CONTAINER + LR_JSON_COST_KEY + 3 + LR_JSON_COST_VALUE);
  CHECK(SCAN("7", 64, 0).cost == LR_JSON_COST_VALUE);
  /* the cap: reached exactly is fine, one byte over is not, and says where */
  uint64_t c = SCAN("[[],[]]", 64, 0).cost;
  CHECK(c == 3 * LR_JSON_COST_CONTAINER);
  CHECK(SCAN("[[],[]]", 64, c).status == LR_JSON_OK);
  lr_json_result r = SCAN("[[],[]]", 64, c - 1);
  CHECK(r.status == LR_JSON_COST && r.offset == 4);
  /* no cap: 0 */
  CHECK(SCAN("[[],[],[]]", 64, 0).status == LR_JSON_OK);
}

/* A body of small nested arrays, the cheapest way to make a decoder build
 * tables, is refused at the budget, while JSON floats (embeddings) of the
 * same size pass: the cap is on what decoding costs, not on bytes. */
TEST(answer_budget_refuses_nested_arrays_not_floats) {
  size_t max = 8u << 20, n = 0;
  char *d = malloc(max), msg[200];
  if (!d) abort();
  d[n++] = '{';
  memcpy(d + n, "\"data\":[", 8);
  n += 8;
  while (n < max - 16) {
    memcpy(d + n, "[[]],", 5);
    n += 5;
  }
  d[n - 1] = ']';
  d[n++] = '}';
  CHECK(lr_json_check(d, n, 512) == 0); /* valid JSON: only the budget refuses it */
  CHECK(lr_json_check_answer(d, n, 512, max, msg, sizeof msg) == -1);
  CHECK(strstr(msg, "too costly to decode") && strstr(msg, "3 x max_response_bytes") && strstr(msg, "25165824"));
  n = 0;
  d[n++] = '{';
  memcpy(d + n, "\"data\":[", 8);
  n += 8;
  while (n < max - 32) n += (size_t)snprintf(d + n, 32, "-0.0%07zu,", n % 9999991);
  d[n - 1] = ']';
  d[n++] = '}';
  CHECK(lr_json_check_answer(d, n, 512, max, msg, sizeof msg) == 0);
  free(d);
}

TEST(answer_check_names_the_fault) {
  char msg[200];
  CHECK(lr_json_check_answer("{\"a\":1}", 7, 512, 1024, msg, sizeof msg) == 0);
  CHECK(lr_json_check_answer("[1]", 3, 512, 1024, msg, sizeof msg) == -1);
  CHECK(strcmp(msg, "the response body is not a JSON object") == 0);
  CHECK(lr_json_check_answer("<html>", 6, 512, 1024, msg, sizeof msg) == -1);
  CHECK(strcmp(msg, "the response body is not a JSON object (invalid JSON at byte 1)") == 0);
  CHECK(lr_json_check_answer("{\"a\":\"x\xff\"}", 10, 512, 1024, msg, sizeof msg) == -1);
  CHECK(strcmp(msg, "the response body is not valid UTF-8 (byte 8)") == 0);
  CHECK(lr_json_check_answer("{\"a\":[[1]]}", 11, 2, 1024, msg, sizeof msg) == -1);
  CHECK(strcmp(msg, "the response body nests deeper than 2 arrays or objects") == 0);
}

/* ---- lr_json_check_request: refused before it is sent, named by field ---- */

static void request_case(const char *body, int want, const char *want_msg) {
  char msg[256] = "";
  int r = lr_json_check_request(body, strlen(body), LR_API_CHAT, 512, msg, sizeof msg);
  if (r != want || (want_msg && strcmp(msg, want_msg) != 0))
    fprintf(stderr, "  request %s -> %d \"%s\"\n", body, r, msg);
  CHECK(r == want);
  if (want_msg) CHECK(strcmp(msg, want_msg) == 0);
}

TEST(request_check_names_the_field) {
  request_case("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi \\u00e9\"}]}", 0, NULL);
  request_case(" { \"messages\" : [ 1 ] , \"x\" : { \"messages\" : {} } } ", 0, NULL);
  /* bytes of the decoded string: \/ is one, \u00e9 two */
  request_case("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
               "{\"role\":\"user\",\"content\":\"ab\\/c\\u00e9d\xff\"}]}",
               -1, "messages[2].content is not valid UTF-8 (byte 8)");
  request_case("{\"messages\":[{\"content\":\"\\ud83d\\ude00x\xC3\x28\"}]}", -1,
               "messages[1].content is not valid UTF-8 (byte 6)");
  request_case("{\"messages\":[1],\"weird key\":[{\"a\":\"\xE2\x82\"}]}", -1,
               "[\"weird key\"][1].a is not valid UTF-8 (byte 1)");
  request_case("{\"messages\":[1],\"m\xffx\":1}", -1, "a key of the request is not valid UTF-8");
  request_case("{\"messages\":[{\"r\xffx\":1}]}", -1, "a key of messages[1] is not valid UTF-8");
  request_case("{\"messages\":{}}", -1,
               "messages must be a non-empty array of messages (got an empty object: an empty Lua table encodes as {})");
  request_case("{\"messages\":{\"a\":1}}", -1, "messages must be a non-empty array of messages (got an object)");
  request_case("{\"messages\":[ ]}", -1, "messages must be a non-empty array of messages (got an empty array)");
  request_case("{\"messages\":\"hi\"}", -1, "messages must be a non-empty array of messages (got a string)");
  request_case("{\"messages\":null}", -1, "messages must be a non-empty array of messages (got null)");
  request_case("{\"model\":\"m\"}", -1, "messages is required (a non-empty array of messages)");
  request_case("[1]", -1, "the request must be a JSON object");
  request_case("{\"messages\":[1]", -1, "the request body is not valid JSON (byte 16)");
  request_case("", -1, "the request body is not valid JSON (byte 1)");
  size_t n;
  char *deep = nested("[", "]", "", 600, &n);
  char *body = malloc(n + 32);
  if (!body) abort();
  int len = snprintf(body, n + 32, "{\"messages\":%.*s}", (int)n, deep);
  char msg[256];
  CHECK(lr_json_check_request(body, (size_t)len, LR_API_CHAT, 512, msg, sizeof msg) == -1);
  CHECK(strcmp(msg, "the request nests deeper than 512 arrays or objects") == 0);
  free(deep);
  free(body);
  /* a path deeper than it names is cut with "..." */
  deep = nested("[", "]", "\"\xff\"", 100, &n);
  body = malloc(n + 32);
  if (!body) abort();
  len = snprintf(body, n + 32, "{\"messages\":%.*s}", (int)n, deep);
  CHECK(lr_json_check_request(body, (size_t)len, LR_API_CHAT, 512, msg, sizeof msg) == -1);
  CHECK(strncmp(msg, "messages[1][1]", 14) == 0 && strstr(msg, "...") && strstr(msg, "(byte 1)"));
  free(deep);
  free(body);
}

static int member(const char *s, const char *name, char *out, size_t outn) {
  size_t off, len;
  if (lr_json_member(s, strlen(s), name, strlen(name), &off, &len) != 0) return -1;
  snprintf(out, outn, "%.*s", (int)len, s + off);
  return 0;
}

TEST(member_finds_the_last_top_level_value) {
  char v[128];
  /* braces and quotes inside strings, nested members of the same name */
  CHECK(member("{\"a\":{\"body\":1},\"body\": {\"x\":[1,\"}\\\"{\"]} ,\"z\":2}", "body", v, sizeof v) == 0);
  CHECK(strcmp(v, "{\"x\":[1,\"}\\\"{\"]}") == 0);
  /* the last one wins, as cjson keeps it; an escaped key is its decoded name */
  CHECK(member("{\"body\":1,\"b\\u006fdy\":\"last\"}", "body", v, sizeof v) == 0 && strcmp(v, "\"last\"") == 0);
  CHECK(member("{\"\\u00e9t\\u00e9\":true}", "\xC3\xA9t\xC3\xA9", v, sizeof v) == 0 && strcmp(v, "true") == 0);
  CHECK(member("{\"\\ud83d\\ude00\":-1.5e3}", "\xF0\x9F\x98\x80", v, sizeof v) == 0 && strcmp(v, "-1.5e3") == 0);
  CHECK(member(" \n{ \"n\" : null }\n", "n", v, sizeof v) == 0 && strcmp(v, "null") == 0);
  /* absent, a prefix, not an object */
  CHECK(member("{\"bodyx\":1,\"bod\":2}", "body", v, sizeof v) == -1);
  CHECK(member("[{\"body\":1}]", "body", v, sizeof v) == -1);
  CHECK(member("{}", "body", v, sizeof v) == -1);
  CHECK(member("", "body", v, sizeof v) == -1);
  /* cut-off bytes: no answer, no read past the end */
  CHECK(member("{\"body\"", "body", v, sizeof v) == -1);
  CHECK(member("{\"bo", "body", v, sizeof v) == -1);
}

TEST(token_estimate_reads_only_top_level_limits) {
  const char *a = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\\\"max_tokens\\\": 500\"}],\"max_tokens\":7}";
  CHECK_NEAR(lr_json_estimate_tokens(a, strlen(a), LR_API_CHAT), (double)(strlen(a) / 4) + 7, 1e-9);
  const char *b = "{\"max_tokens\":7,\"max_completion_tokens\":100,\"messages\":[]}";
  CHECK_NEAR(lr_json_estimate_tokens(b, strlen(b), LR_API_CHAT), (double)(strlen(b) / 4) + 100, 1e-9);
  const char *c = "{\"messages\":[{\"content\":\"max_tokens\"}],\"max_tokens\":\"many\"}";
  CHECK_NEAR(lr_json_estimate_tokens(c, strlen(c), LR_API_CHAT), (double)(strlen(c) / 4), 1e-9);
  CHECK(lr_json_whole("12", 2) == 12 && lr_json_whole("1.5", 3) == -1 && lr_json_whole("", 0) == -1);
  CHECK(lr_json_whole("1234567890123456", 16) == -1); /* more than 15 digits: not taken */
}

static int check_api(lr_api api, const char *body, const char *want) {
  char msg[256] = "";
  int r = lr_json_check_request(body, strlen(body), api, 512, msg, sizeof msg);
  if (!want) return r == 0;
  if (r != -1 || strcmp(msg, want) != 0) fprintf(stderr, "    got: %s\n", msg);
  return r == -1 && strcmp(msg, want) == 0;
}

TEST(each_api_has_its_required_field) {
  CHECK(check_api(LR_API_EMBEDDINGS, "{\"model\":\"e\",\"input\":\"hi\"}", NULL));
  CHECK(check_api(LR_API_EMBEDDINGS, "{\"input\":[\"a\",\"b\"]}", NULL));
  CHECK(check_api(LR_API_EMBEDDINGS, "{\"input\":[[1,2]]}", NULL));
  CHECK(check_api(LR_API_EMBEDDINGS, "{\"messages\":[{}]}",
                  "input is required (a non-empty string or array of strings or tokens)"));
  CHECK(check_api(LR_API_EMBEDDINGS, "{\"input\":\"\"}",
                  "input must be a non-empty string or array of strings or tokens (got an empty string)"));
  CHECK(check_api(LR_API_EMBEDDINGS, "{\"input\":[]}",
                  "input must be a non-empty string or array of strings or tokens (got an empty array)"));
  CHECK(check_api(LR_API_RESPONSES, "{\"input\":\"hi\"}", NULL));
  CHECK(check_api(LR_API_RESPONSES, "{\"input\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL));
  CHECK(check_api(LR_API_RESPONSES, "{\"input\":7}",
                  "input must be a non-empty string or array of input items (got a number)"));
  CHECK(check_api(LR_API_RESPONSES, "{\"messages\":[{}]}",
                  "input is required (a non-empty string or array of input items)"));
  CHECK(check_api(LR_API_COMPLETIONS, "{\"prompt\":\"\"}", NULL));
  CHECK(check_api(LR_API_COMPLETIONS, "{\"prompt\":{}}",
                  "prompt must be a string or a non-empty array of strings or tokens (got an empty object: an empty "
                  "Lua table encodes as {})"));
  CHECK(check_api(LR_API_COMPLETIONS, "{\"model\":\"m\"}",
                  "prompt is required (a string or a non-empty array of strings or tokens)"));
  CHECK(check_api(LR_API_CHAT, "{\"input\":\"hi\"}", "messages is required (a non-empty array of messages)"));
  CHECK(check_api(LR_API_CHAT, "{\"messages\":\"hi\"}", "messages must be a non-empty array of messages (got a string)"));
  CHECK(check_api(LR_API__COUNT, "{}", "unknown api"));
  CHECK(lr_api_find("responses", 9) == LR_API_RESPONSES && lr_api_find("chat2", 5) == -1);
  CHECK(strcmp(lr_api_name(LR_API_EMBEDDINGS), "embeddings") == 0);
}

TEST(each_api_estimates_its_own_output) {
  const char *e = "{\"input\":\"hello there\",\"max_tokens\":500}";
  CHECK_NEAR(lr_json_estimate_tokens(e, strlen(e), LR_API_EMBEDDINGS), (double)(strlen(e) / 4), 1e-9);
  const char *r = "{\"input\":\"hi\",\"max_tokens\":9,\"max_output_tokens\":300}";
  CHECK_NEAR(lr_json_estimate_tokens(r, strlen(r), LR_API_RESPONSES), (double)(strlen(r) / 4) + 300, 1e-9);
  const char *c = "{\"prompt\":\"hi\",\"max_completion_tokens\":9,\"max_tokens\":40}";
  CHECK_NEAR(lr_json_estimate_tokens(c, strlen(c), LR_API_COMPLETIONS), (double)(strlen(c) / 4) + 40, 1e-9);
}

TEST(responses_usage_counts_as_prompt_and_completion) {
  double p, c, t;
  const char *r = "{\"object\":\"response\",\"usage\":{\"input_tokens\":5,\"output_tokens\":7,\"total_tokens\":12}}";
  CHECK(lr_answer_usage(r, strlen(r), &p, &c, &t) == 0 && p == 5 && c == 7 && t == 12);
  const char *e = "{\"object\":\"list\",\"usage\":{\"prompt_tokens\":4,\"total_tokens\":4}}";
  CHECK(lr_answer_usage(e, strlen(e), &p, &c, &t) == 0 && p == 4 && c == -1 && t == 4);
}

TEST(usage_reads_the_answers_counts) {
  double p, c, t;
  const char *a = "{\"choices\":[{\"message\":{\"content\":\"\\\"usage\\\":{}\"}}],"
                  "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":30,\"total_tokens\":42}}";
  CHECK(lr_answer_usage(a, strlen(a), &p, &c, &t) == 0 && p == 12 && c == 30 && t == 42);
  const char *b = "{\"usage\":{\"prompt_tokens\":5}}";
  CHECK(lr_answer_usage(b, strlen(b), &p, &c, &t) == 0 && p == 5 && c == -1 && t == -1);
  const char *d = "{\"usage\":null}";
  CHECK(lr_answer_usage(d, strlen(d), &p, &c, &t) == -1);
  CHECK(lr_answer_usage("{}", 2, &p, &c, &t) == -1);
}

int main(void) {
  RUN(member_finds_the_last_top_level_value);
  RUN(token_estimate_reads_only_top_level_limits);
  RUN(each_api_has_its_required_field);
  RUN(each_api_estimates_its_own_output);
  RUN(responses_usage_counts_as_prompt_and_completion);
  RUN(usage_reads_the_answers_counts);
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
  RUN(scan_says_why_and_where);
  RUN(scan_estimates_the_decode_cost);
  RUN(answer_budget_refuses_nested_arrays_not_floats);
  RUN(answer_check_names_the_fault);
  RUN(request_check_names_the_field);
  CTEST_END();
}
