/* Unit tests of csrc/urlenc.c: the one percent-encoding rule of request URLs. */
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "urlenc.h"

TEST(unreserved_bytes_stay_every_other_byte_is_percent_encoded) {
  char out[64];
  const char *s = "aZ09-._~ /?%\xc3\xa9";
  size_t n = lr_url_encode(out, s, strlen(s));
  out[n] = 0;
  CHECK(strcmp(out, "aZ09-._~%20%2F%3F%25%C3%A9") == 0);
  CHECK(lr_url_encode(out, "", 0) == 0);
}

TEST(every_model_placeholder_is_replaced_by_the_encoded_model) {
  char *u = lr_url_expand("https://h/d/{model}/chat?x={model}", "a b", 3);
  CHECK(u && strcmp(u, "https://h/d/a%20b/chat?x=a%20b") == 0);
  free(u);
  u = lr_url_expand("https://h/chat/completions", "m", 1);
  CHECK(u && strcmp(u, "https://h/chat/completions") == 0);
  free(u);
  u = lr_url_expand("/{model}", "", 0);
  CHECK(u && strcmp(u, "/") == 0);
  free(u);
}

int main(void) {
  RUN(unreserved_bytes_stay_every_other_byte_is_percent_encoded);
  RUN(every_model_placeholder_is_replaced_by_the_encoded_model);
  CTEST_END();
}
