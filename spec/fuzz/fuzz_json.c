/* Fuzz target: the JSON validator at depth 64, with cross-checks that hold
 * for any input (each follows from the grammar being deterministic).
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -Icsrc ...
 * elsewhere: add -DLR_FUZZ_STANDALONE for a plain main (fuzz.h). */
#include "fuzz.h"
#include "answer.h"
#include "jsoncheck.h"
#include "reqcheck.h"

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* lr_json_check on pre + s + post, in an exactly-sized block. */
static int check_wrapped(const char *pre, const char *s, size_t n, const char *post, int depth) {
  size_t a = strlen(pre), b = strlen(post);
  char *buf = malloc(a + n + b);
  if (!buf) abort();
  memcpy(buf, pre, a);
  if (n) memcpy(buf + a, s, n);
  memcpy(buf + a + n, post, b);
  int r = lr_json_check(buf, a + n + b, depth);
  free(buf);
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  int valid = lr_json_check(s, size, 64);
  REQUIRE(valid == 0 || valid == -1);
  valid = valid == 0;

  /* a deeper limit never rejects more; depth 0 takes only scalars */
  REQUIRE(lr_json_check(s, size, 65) == 0 || !valid);
  REQUIRE(lr_json_check(s, size, 0) != 0 || valid);

  size_t first = 0, last = size;
  while (first < size && is_ws(s[first])) first++;
  while (last > first && is_ws(s[last - 1])) last--;
  int object = first < size && s[first] == '{';
  REQUIRE((lr_json_check_object(s, size, 64) == 0) == (valid && object));

  /* the scan agrees with the check; its cost cap holds exactly at the cost */
  lr_json_limits lim = {64, 0};
  lr_json_result res;
  REQUIRE((lr_json_scan(s, size, &lim, &res) == LR_JSON_OK) == valid);
  REQUIRE(res.offset <= size);
  if (valid && res.cost > 0) {
    uint64_t cost = res.cost;
    lim.max_cost = cost;
    REQUIRE(lr_json_scan(s, size, &lim, &res) == LR_JSON_OK && res.cost == cost);
    lim.max_cost = cost - 1;
    REQUIRE(lr_json_scan(s, size, &lim, &res) == LR_JSON_COST && res.offset < size);
  }
  /* the member readers stay in bounds on any bytes */
  {
    size_t off = 0, len = 0;
    double pt, ct, tt;
    if (lr_json_member(s, size, "k", 1, &off, &len) == 0) REQUIRE(off <= size && len <= size - off);
    REQUIRE(lr_json_estimate_tokens(s, size, LR_API_CHAT) >= (double)(size / 4));
    if (lr_answer_usage(s, size, &pt, &ct, &tt) == 0) REQUIRE(pt >= -1 && ct >= -1 && tt >= -1);
    /* an error body's code, type and param: spans of string or number members, in bounds */
    lr_upstream_error e;
    if (lr_answer_error(s, size, &e) == 0) {
      REQUIRE(valid && object && size <= LR_ERROR_BODY);
      const lr_span sp[3] = {e.code, e.type, e.param};
      for (int i = 0; i < 3; i++) {
        REQUIRE(sp[i].off <= size && sp[i].len <= size - sp[i].off);
        if (sp[i].len) {
          char c = s[sp[i].off];
          REQUIRE(c == '"' || c == '-' || (c >= '0' && c <= '9'));
          REQUIRE(lr_json_check(s + sp[i].off, sp[i].len, 1) == 0);
        }
      }
    } else {
      REQUIRE(e.code.len == 0 && e.type.len == 0 && e.param.len == 0);
    }
  }
  /* the request check answers every input with a bounded sentence */
  char msg[96];
  memset(msg, 'x', sizeof msg);
  for (int api = 0; api < LR_API__COUNT; api++) { /* each api's check, and its estimate */
    memset(msg, 'x', sizeof msg);
    int req = lr_json_check_request(s, size, (lr_api)api, 64, msg, sizeof msg);
    REQUIRE(req == 0 || (req == -1 && memchr(msg, 0, sizeof msg)));
    if (req == 0) REQUIRE(valid && object);
    if (valid) REQUIRE(lr_json_estimate_tokens(s, size, (lr_api)api) >= (double)(size / 4));
  }

  if (size > (1 << 16)) return 0;
  /* white space around it changes nothing, in either direction */
  REQUIRE((check_wrapped(" ", s, size, "\n", 64) == 0) == valid);
  if (valid) {
    /* a complete value: nothing but white space may follow */
    REQUIRE(check_wrapped("", s, size, "}", 64) != 0);
    REQUIRE(check_wrapped("", s, size, "]", 64) != 0);
    REQUIRE(check_wrapped("", s, size, ",1", 64) != 0);
    REQUIRE(check_wrapped("", s, size, "\"", 64) != 0);
    /* it nests one level deeper anywhere a value may stand */
    REQUIRE(check_wrapped("[", s, size, "]", 65) == 0);
    REQUIRE(check_wrapped("{\"k\":", s, size, "}", 65) == 0);
    REQUIRE(check_wrapped("[1,", s, size, ",2]", 65) == 0);
    /* and the wrapping costs exactly that level */
    if (lr_json_check(s, size, 63) != 0) REQUIRE(check_wrapped("[", s, size, "]", 64) != 0);
    /* a value closed by a bracket, quote or literal is cut short without its last byte */
    if (strchr("{[\"tfn", s[first])) REQUIRE(lr_json_check(s, last - 1, 64) != 0);
    /* member lookup: any value, set as the last member under an escaped
     * key, comes back exactly (trimmed); the other readers stay in bounds */
    static const char pre[] = "{\"a\":[1,{\"k\":\"}\"}],\"k\":0,\"\\u006b\":";
    size_t a = sizeof pre - 1, off = 0, len = 0;
    char *w = malloc(a + size + 1);
    if (!w) abort();
    memcpy(w, pre, a);
    memcpy(w + a, s, size);
    w[a + size] = '}';
    REQUIRE(lr_json_check(w, a + size + 1, 65) == 0);
    REQUIRE(lr_json_member(w, a + size + 1, "k", 1, &off, &len) == 0);
    REQUIRE(off == a + first && len == last - first);
    free(w);
  }
  return 0;
}
