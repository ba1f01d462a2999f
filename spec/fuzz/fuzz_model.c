/* Fuzz target: the request body's model rewrite (csrc/jsonmodel.c). Input:
 * a length byte L, L bytes of a model name, then the body. Invariants:
 *  - any bytes: nothing is read out of bounds; a rewrite's length is what
 *    it says, with a NUL after it;
 *  - a valid JSON object in (and a name of valid UTF-8), rewritten: a valid
 *    JSON object out with a top-level "model", every one of them that is a
 *    string now the name: a second rewrite changes nothing;
 *  - not rewritten: *out stays NULL. */
#include "fuzz.h"
#include "jsoncheck.h"
#include "jsonmodel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t nlen = data[0] % 48;
  if (nlen > size - 1) nlen = size - 1;
  const char *name = (const char *)data + 1;
  const char *body = name + nlen;
  size_t n = size - 1 - nlen;
  char *out;
  size_t out_len;
  int rc = lr_json_set_model(body, n, name, nlen, &out, &out_len);
  REQUIRE(rc >= -1 && rc <= 1);
  if (rc != 1) {
    REQUIRE(out == NULL);
    return 0;
  }
  REQUIRE(out[out_len] == 0);
  int valid_name = 1; /* the name is valid UTF-8 (a rewrite of invalid bytes cannot be valid JSON) */
  for (const unsigned char *p = (const unsigned char *)name, *e = p + nlen; p < e && valid_name;) {
    size_t l = lr_utf8_len(p, e);
    if (l == 0) valid_name = 0;
    else p += l;
  }
  if (valid_name && lr_json_check_object(body, n, 64) == 0) {
    REQUIRE(lr_json_check_object(out, out_len, 64) == 0);
    size_t off, len;
    REQUIRE(lr_json_member(out, out_len, "model", 5, &off, &len) == 0);
    char *again;
    size_t again_len;
    REQUIRE(lr_json_set_model(out, out_len, name, nlen, &again, &again_len) == 0);
  }
  free(out);
  return 0;
}
