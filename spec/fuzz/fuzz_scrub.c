/* Fuzz target: the scrubber. Input: a flags byte, a length byte L, L bytes
 * of a secret, then the document. Invariants:
 *  - valid JSON in -> JSON out (lr_scrub_json says so, and it validates);
 *  - JSON out is one line, and a second pass changes nothing: no string of it
 *    still holds a secret (decoded), invalid UTF-8 or a bad escape;
 *  - text out holds no secret as raw bytes and is valid UTF-8.
 * Secrets are at least LR_SCRUB_MIN_SECRET bytes (as the config requires)
 * and never hold '[', ']', white space, control or non-ASCII bytes: those
 * could join "[REDACTED]" (or U+FFFD) into a new match, which no invariant
 * means.
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -Icsrc ...
 * elsewhere: add -DLR_FUZZ_STANDALONE for a plain main (fuzz.h). */
#define _GNU_SOURCE /* memmem */
#include "answer.h"
#include "fuzz.h"
#include "jsoncheck.h"
#include "scrub.h"

static const char *const FIXED[] = {"sk-fuzz-SECRET-1", "a/b\"c\\d-key", "12345678"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  int flags = data[0] & (LR_SCRUB_BEARER | LR_SCRUB_TAIL);
  size_t len = data[1] % 32;
  if (len > size - 2) len = size - 2;
  char key[33];
  size_t kn = 0;
  for (size_t i = 0; i < len; i++) {
    char c = (char)data[2 + i];
    if (c > ' ' && c < 0x7f && c != '[' && c != ']') key[kn++] = c;
  }
  key[kn] = 0;
  /* as the config requires; and "REDACTED" itself would be written again */
  if (kn < LR_SCRUB_MIN_SECRET || strstr(LR_SCRUB_REDACTED, key)) kn = 0;
  const char *doc = (const char *)data + 2 + len;
  size_t n = size - 2 - len;

  lr_scrub *s = lr_scrub_new(), *none = lr_scrub_new();
  REQUIRE(s && none);
  for (size_t i = 0; i < sizeof FIXED / sizeof FIXED[0]; i++) REQUIRE(lr_scrub_add(s, FIXED[i], strlen(FIXED[i])) == 0);
  REQUIRE(lr_scrub_add(s, key, kn) == 0);

  const char *out;
  size_t on;
  int r = lr_scrub_json(s, doc, n, flags, &out, &on);
  REQUIRE(r == 0 || r == 1);
  if (lr_json_check(doc, n, LR_MAX_JSON_DEPTH) == 0) REQUIRE(r == 1);
  char *copy = malloc(on ? on : 1);
  REQUIRE(copy);
  if (on) memcpy(copy, out, on);
  if (r == 1) {
    REQUIRE(lr_json_check(copy, on, LR_MAX_JSON_DEPTH) == 0);
    REQUIRE(!memchr(copy, '\n', on) && !memchr(copy, '\r', on));
    const char *again;
    size_t an;
    REQUIRE(lr_scrub_json(s, copy, on, flags, &again, &an) == 1);
    REQUIRE(an == on && memcmp(again, copy, on) == 0);
  } else {
    for (size_t i = 0; i < sizeof FIXED / sizeof FIXED[0]; i++)
      REQUIRE(!memmem(copy, on, FIXED[i], strlen(FIXED[i])));
    if (kn) REQUIRE(!memmem(copy, on, key, kn));
    const char *again;
    size_t an;
    REQUIRE(lr_scrub_text(none, copy, on, 0, &again, &an) == 0);
    REQUIRE(again == copy); /* nothing to repair: valid UTF-8 */
  }
  free(copy);
  lr_scrub_free(s);
  lr_scrub_free(none);
  return 0;
}
