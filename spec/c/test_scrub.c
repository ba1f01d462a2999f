/* The scrubber: secrets out of JSON string values (never structure), out of
 * plain text, and invalid UTF-8 made U+FFFD. Inputs sit in exactly-sized
 * malloc'd blocks without a NUL, so a read past the end shows under ASan. */
#define _GNU_SOURCE /* memmem */
#include "ctest.h"
#include "jsoncheck.h"
#include "scrub.h"

#include <stdlib.h>

static lr_scrub *with(const char *const *secrets) {
  lr_scrub *s = lr_scrub_new();
  CHECK(s != NULL);
  for (; *secrets; secrets++) CHECK(lr_scrub_add(s, *secrets, strlen(*secrets)) == 0);
  return s;
}

/* Runs f on `in` and compares with `want`; returns f's result. */
static int expect(lr_scrub *s, int json, const char *in, int flags, const char *want) {
  size_t n = strlen(in), out_n = 0;
  char *b = malloc(n ? n : 1);
  if (!b) abort();
  memcpy(b, in, n);
  const char *out = NULL;
  int r = json ? lr_scrub_json(s, b, n, flags, &out, &out_n) : lr_scrub_text(s, b, n, flags, &out, &out_n);
  int same = out && out_n == strlen(want) && memcmp(out, want, out_n) == 0;
  if (!same) fprintf(stderr, "  in  %s\n  got %.*s\n  want %s\n", in, (int)out_n, out ? out : "", want);
  CHECK(same);
  free(b);
  return r;
}

#define TEXT(s, in, flags, want) CHECK(expect(s, 0, in, flags, want) == 0)
#define JSON(s, in, flags, want) CHECK(expect(s, 1, in, flags, want) == 1)
#define NOT_JSON(s, in, flags, want) CHECK(expect(s, 1, in, flags, want) == 0)

static const char *const KEY1[] = {"sk-live-0123456789", NULL};

TEST(text_replaces_every_secret) {
  static const char *const keys[] = {"sk-abcdefgh", "sk-abcdefgh-longer", "a.b%c(de", NULL};
  lr_scrub *s = with(keys);
  TEXT(s, "key sk-abcdefgh is bad; sk-abcdefgh-longer too; xsk-abcdefghx", 0,
       "key [REDACTED] is bad; [REDACTED] too; x[REDACTED]x");
  TEXT(s, "k=a.b%c(de; k=a-b%c", 0, "k=[REDACTED]; k=a-b%c");
  TEXT(s, "nothing here", 0, "nothing here");
  TEXT(s, "", 0, "");
  lr_scrub_free(s);
}

TEST(text_finds_json_escaped_forms) {
  static const char *const keys[] = {"sk-a/b\"c\\d", NULL};
  lr_scrub *s = with(keys);
  TEXT(s, "raw sk-a/b\"c\\d", 0, "raw [REDACTED]");
  TEXT(s, "cjson sk-a\\/b\\\"c\\\\d", 0, "cjson [REDACTED]");
  TEXT(s, "plain sk-a/b\\\"c\\\\d", 0, "plain [REDACTED]");
  lr_scrub_free(s);
}

TEST(text_bearer_and_tail) {
  lr_scrub *s = with(KEY1);
  TEXT(s, "{\"auth\": \"Bearer tok-123.x\"}", LR_SCRUB_BEARER, "{\"auth\": \"Bearer [REDACTED]\"}");
  TEXT(s, "Authorization: bearer\t sk-live-0123456789\r\n", LR_SCRUB_BEARER,
       "Authorization: bearer [REDACTED]\r\n");
  TEXT(s, "a Bearer tok-1", 0, "a Bearer tok-1");
  /* a body cut inside the key */
  TEXT(s, "{\"error\":\"bad key sk-live-01", LR_SCRUB_TAIL, "{\"error\":\"bad key [REDACTED]");
  TEXT(s, "ends with sk-l", LR_SCRUB_TAIL, "ends with [REDACTED]");
  TEXT(s, "ends with sk-", LR_SCRUB_TAIL, "ends with sk-"); /* below LR_SCRUB_MIN_TAIL */
  TEXT(s, "ends with sk-l", 0, "ends with sk-l");
  lr_scrub_free(s);
}

TEST(text_makes_utf8_valid) {
  lr_scrub *s = with(KEY1);
  TEXT(s, "ok \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 0, "ok \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  TEXT(s, "bad \xFF x \xC3 \xED\xA0\x80 \xC0\xAF", 0,
       "bad \xEF\xBF\xBD x \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD");
  TEXT(s, "cut \xE2\x82", 0, "cut \xEF\xBF\xBD\xEF\xBF\xBD");
  lr_scrub_free(s);
}

TEST(json_never_touches_structure) {
  /* short secrets (refused by the config, accepted here) show it plainly */
  static const char *const keys[] = {"1", "chat", "true", NULL};
  lr_scrub *s = with(keys);
  JSON(s, "{\"created\":1796000001,\"object\":\"chat.completion\",\"ok\":true,\"n\":[1,-1.1e1]}", 0,
       "{\"created\":1796000001,\"object\":\"[REDACTED].completion\",\"ok\":true,\"n\":[1,-1.1e1]}");
  JSON(s, "[1, 11, 111]", 0, "[1, 11, 111]");
  lr_scrub_free(s);
}

TEST(json_finds_escaped_and_u_escaped_secrets) {
  lr_scrub *s = with(KEY1);
  JSON(s, "{\"m\":\"key sk-live-0123456789 bad\"}", 0, "{\"m\":\"key [REDACTED] bad\"}");
  JSON(s, "{\"m\":\"\\u0073k-live-\\u00301234567\\u0038\\u0039\"}", 0, "{\"m\":\"[REDACTED]\"}");
  JSON(s, "{\"m\":\"sk-live-\\/0123456789\"}", 0, "{\"m\":\"sk-live-\\/0123456789\"}");
  /* a key written with \/ where the key has '/' */
  static const char *const slash[] = {"sk/slash/key", NULL};
  lr_scrub *t = with(slash);
  JSON(t, "{\"m\":\"sk\\/slash\\/key\",\"k\":\"sk/slash/key\"}", 0, "{\"m\":\"[REDACTED]\",\"k\":\"[REDACTED]\"}");
  lr_scrub_free(t);
  /* the secret as an object key, and quotes and controls around it re-encoded */
  JSON(s, "{\"sk-live-0123456789\":\"a\\\"b\\n\\u0001\"}", 0, "{\"[REDACTED]\":\"a\\\"b\\n\\u0001\"}");
  JSON(s, "{\"m\":\"x\\\"sk-live-0123456789\\\"\\t\"}", 0, "{\"m\":\"x\\\"[REDACTED]\\\"\\t\"}");
  lr_scrub_free(s);
}

TEST(json_copies_untouched_strings_verbatim) {
  lr_scrub *s = with(KEY1);
  const char *doc = "{ \"a\" : \"\\u00e9\\/x\" , \"b\":[\"\\uD83D\\uDE00\"] }";
  JSON(s, doc, 0, doc);
  lr_scrub_free(s);
}

TEST(json_bearer_inside_strings_only_when_asked) {
  lr_scrub *s = with(KEY1);
  JSON(s, "{\"m\":\"use Bearer abc.def\"}", LR_SCRUB_BEARER, "{\"m\":\"use Bearer [REDACTED]\"}");
  JSON(s, "{\"m\":\"use Bearer abc.def\"}", 0, "{\"m\":\"use Bearer abc.def\"}");
  lr_scrub_free(s);
}

TEST(json_repairs_strings_into_valid_utf8) {
  lr_scrub *s = with(KEY1);
  JSON(s, "{\"m\":\"bad \xFF byte\"}", 0, "{\"m\":\"bad \xEF\xBF\xBD byte\"}");
  JSON(s, "{\"m\":\"lone \\uD800 x\"}", 0, "{\"m\":\"lone \xEF\xBF\xBD x\"}");
  JSON(s, "{\"m\":\"raw\tcontrol\"}", 0, "{\"m\":\"raw\\tcontrol\"}");
  JSON(s, "{\"m\":\"bad \\q escape\"}", 0, "{\"m\":\"bad \xEF\xBF\xBD escape\"}");
  JSON(s, "{\"a\":1,\r\n\"b\":2}\n", 0, "{\"a\":1,  \"b\":2} ");
  lr_scrub_free(s);
}

TEST(json_falls_back_to_text) {
  lr_scrub *s = with(KEY1);
  NOT_JSON(s, "Incorrect key sk-live-0123456789", 0, "Incorrect key [REDACTED]");
  NOT_JSON(s, "{\"error\":{\"message\":\"Incorrect API key: sk-live-0123", LR_SCRUB_TAIL,
           "{\"error\":{\"message\":\"Incorrect API key: [REDACTED]");
  NOT_JSON(s, "{\"a\":1", 0, "{\"a\":1");
  NOT_JSON(s, "", 0, "");
  NOT_JSON(s, "<html>\xFF</html>", 0, "<html>\xEF\xBF\xBD</html>");
  lr_scrub_free(s);
}

TEST(output_is_valid_json) {
  static const char *const keys[] = {"sk-\"quoted\\key", "0123456789", NULL};
  lr_scrub *s = with(keys);
  const char *docs[] = {"{\"m\":\"sk-\\\"quoted\\\\key and 0123456789\",\"n\":0123456789}",
                        "[\"\xF0\x9F\x98\", 0123456789, \"0123456789\"]", "\"\\uDFFF\\uD800\""};
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    const char *out;
    size_t n;
    int r = lr_scrub_json(s, docs[i], strlen(docs[i]), LR_SCRUB_BEARER, &out, &n);
    if (i == 0 || i == 1) { /* leading zeros: not JSON, scrubbed as text */
      CHECK(r == 0);
    } else {
      CHECK(r == 1);
      CHECK(lr_json_check(out, n, 64) == 0);
    }
    CHECK(memmem(out, n, "0123456789", 10) == NULL);
  }
  const char *ok = "{\"m\":\"sk-\\\"quoted\\\\key\",\"n\":[\"0123456789\",\"\xF0\x9F\x98\"]}";
  const char *out;
  size_t n;
  CHECK(lr_scrub_json(s, ok, strlen(ok), 0, &out, &n) == 1);
  CHECK(lr_json_check(out, n, 64) == 0);
  const char *want = "{\"m\":\"[REDACTED]\",\"n\":[\"[REDACTED]\",\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"]}";
  CHECK(n == strlen(want) && memcmp(out, want, n) == 0); /* each byte of a broken sequence */
  lr_scrub_free(s);
}

TEST(secrets_kept_once_and_trim) {
  static const char *const keys[] = {"sk-same-0001", "sk-same-0001", "", NULL};
  lr_scrub *s = with(keys);
  TEXT(s, "sk-same-0001", 0, "[REDACTED]");
  lr_scrub_trim(s);
  TEXT(s, "again sk-same-0001", 0, "again [REDACTED]");
  lr_scrub_free(s);
  lr_scrub_free(NULL);
}

int main(void) {
  RUN(text_replaces_every_secret);
  RUN(text_finds_json_escaped_forms);
  RUN(text_bearer_and_tail);
  RUN(text_makes_utf8_valid);
  RUN(json_never_touches_structure);
  RUN(json_finds_escaped_and_u_escaped_secrets);
  RUN(json_copies_untouched_strings_verbatim);
  RUN(json_bearer_inside_strings_only_when_asked);
  RUN(json_repairs_strings_into_valid_utf8);
  RUN(json_falls_back_to_text);
  RUN(output_is_valid_json);
  RUN(secrets_kept_once_and_trim);
  CTEST_END();
}
