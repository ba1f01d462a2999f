/* Unit tests of csrc/jsonmodel.c: a body's top-level "model" rewritten on the raw bytes. */
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "jsoncheck.h"
#include "jsonmodel.h"

/* the rewrite of body to name: its rc, and the text in out (or "" when none) */
static int rewrite(const char *body, const char *name, char *out, size_t cap) {
  char *o;
  size_t n;
  int rc = lr_json_set_model(body, strlen(body), name, strlen(name), &o, &n);
  out[0] = 0;
  if (rc == 1) {
    CHECK(n < cap && strlen(o) == n);
    snprintf(out, cap, "%s", o);
    free(o);
  } else {
    CHECK(o == NULL);
  }
  return rc;
}

TEST(only_the_top_level_model_string_changes) {
  char out[512];
  CHECK(rewrite("{\"model\":\"gpt-4.1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "up-1", out,
                sizeof out) == 1);
  CHECK(strcmp(out, "{\"model\":\"up-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}") == 0);
  /* white space kept; a nested "model" and a "model" inside a string untouched */
  const char *b = " {\n \"messages\" : [ {\"model\": \"x\", \"content\": \"\\\"model\\\":\\\"y\\\"\"} ] ,\n"
                  " \"model\" :\t\"a\" , \"meta\": {\"model\": \"z\"} }\n";
  CHECK(rewrite(b, "bb", out, sizeof out) == 1);
  CHECK(strcmp(out, " {\n \"messages\" : [ {\"model\": \"x\", \"content\": \"\\\"model\\\":\\\"y\\\"\"} ] ,\n"
                    " \"model\" :\t\"bb\" , \"meta\": {\"model\": \"z\"} }\n") == 0);
}

TEST(escaped_keys_and_names) {
  char out[256];
  /* a key written with escapes is still "model"; the value's escapes are replaced whole */
  CHECK(rewrite("{\"mod\\u0065l\":\"a\\\"b\",\"n\":1}", "c", out, sizeof out) == 1);
  CHECK(strcmp(out, "{\"mod\\u0065l\":\"c\",\"n\":1}") == 0);
  /* the new name is escaped as JSON needs */
  CHECK(rewrite("{\"model\":\"a\"}", "q\"\\\n/é", out, sizeof out) == 1);
  CHECK(strcmp(out, "{\"model\":\"q\\\"\\\\\\u000a/é\"}") == 0);
  CHECK(lr_json_check_object(out, strlen(out), 64) == 0);
  /* a value that already decodes to the name: nothing to do */
  CHECK(rewrite("{\"model\":\"\\u0061b\"}", "ab", out, sizeof out) == 0);
}

TEST(duplicates_all_rewritten_non_strings_left_alone) {
  char out[256];
  CHECK(rewrite("{\"model\":\"a\",\"x\":2,\"model\":\"b\"}", "c", out, sizeof out) == 1);
  CHECK(strcmp(out, "{\"model\":\"c\",\"x\":2,\"model\":\"c\"}") == 0);
  CHECK(rewrite("{\"model\":\"c\",\"model\":\"b\"}", "c", out, sizeof out) == 1);
  CHECK(strcmp(out, "{\"model\":\"c\",\"model\":\"c\"}") == 0);
  CHECK(rewrite("{\"model\":null,\"messages\":[]}", "c", out, sizeof out) == 0);
  CHECK(rewrite("{\"model\":7}", "c", out, sizeof out) == 0);
  CHECK(rewrite("{\"model\":{\"name\":\"a\"}}", "c", out, sizeof out) == 0);
  CHECK(rewrite("{\"messages\":[]}", "c", out, sizeof out) == 0);
}

TEST(not_an_object_or_cut_short_is_left_alone) {
  char out[64];
  CHECK(rewrite("[{\"model\":\"a\"}]", "c", out, sizeof out) == 0);
  CHECK(rewrite("\"model\"", "c", out, sizeof out) == 0);
  CHECK(rewrite("", "c", out, sizeof out) == 0);
  CHECK(rewrite("{\"model\":\"a", "c", out, sizeof out) == 0);
  CHECK(rewrite("{\"x\":[1,{\"y\":\"", "c", out, sizeof out) == 0);
  CHECK(rewrite("{\"model\" \"a\"}", "c", out, sizeof out) == 0);
  /* cut short after the model: still left whole */
  CHECK(rewrite("{\"model\":\"a\",\"x\":[", "c", out, sizeof out) == 0);
}

/* however many "model" members: every one is rewritten, and a second rewrite finds nothing to do
 * (the rewrite once stopped at 64, which a fuzz input found) */
TEST(every_one_of_many_duplicates_rewritten) {
  char body[4096], want[4096];
  size_t b = 0, w = 0;
  body[b++] = want[w++] = '{';
  for (int i = 0; i < 200; i++) {
    b += (size_t)snprintf(body + b, sizeof body - b, "%s\"model\":\"x%d\"", i ? "," : "", i);
    w += (size_t)snprintf(want + w, sizeof want - w, "%s\"model\":\"up\"", i ? "," : "");
  }
  body[b++] = want[w++] = '}';
  body[b] = want[w] = 0;
  char *o, *again;
  size_t n, n2;
  CHECK(lr_json_set_model(body, b, "up", 2, &o, &n) == 1);
  CHECK(n == w && strcmp(o, want) == 0);
  CHECK(lr_json_set_model(o, n, "up", 2, &again, &n2) == 0 && again == NULL);
  free(o);
}

int main(void) {
  RUN(only_the_top_level_model_string_changes);
  RUN(escaped_keys_and_names);
  RUN(duplicates_all_rewritten_non_strings_left_alone);
  RUN(not_an_object_or_cut_short_is_left_alone);
  RUN(every_one_of_many_duplicates_rewritten);
  CTEST_END();
}
