/* The CLI's set of custom_id digests (idset.h): SipHash-2-4-128 against the
 * reference vector, put/get over a million ids, and the slots' size. */
#include "ctest.h"
#include "idset.h"

#include <stdio.h>

TEST(siphash_reference_vector) {
  /* key 00..0f, empty message: the reference implementation's vectors_sip128[0] */
  static const unsigned char want[16] = {0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6,
                                         0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93};
  uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL, out[2];
  lr_siphash128(k0, k1, "", 0, out);
  unsigned char got[16];
  for (int i = 0; i < 8; i++) {
    got[i] = (unsigned char)(out[0] >> (8 * i));
    got[8 + i] = (unsigned char)(out[1] >> (8 * i));
  }
  CHECK(memcmp(got, want, 16) == 0);
}

TEST(put_get_a_million) {
  lr_idset s;
  lr_idset_init(&s, 12345, 67890);
  char id[32];
  int fresh = 1;
  for (uint32_t i = 0; i < 1000000; i++) {
    int n = snprintf(id, sizeof id, "req-%u", i);
    if (lr_idset_put(&s, lr_idset_digest(&s, id, (size_t)n), i + 1, NULL) != 1) fresh = 0;
  }
  CHECK(fresh);
  CHECK(s.n == 1000000);
  int found = 1;
  for (uint32_t i = 0; i < 1000000; i += 7) {
    int n = snprintf(id, sizeof id, "req-%u", i);
    uint32_t v = 0;
    if (!lr_idset_get(&s, lr_idset_digest(&s, id, (size_t)n), &v) || v != i + 1) found = 0;
  }
  CHECK(found);
  CHECK(!lr_idset_get(&s, lr_idset_digest(&s, "req-1000000", 11), NULL));
  uint32_t old = 0;
  CHECK(lr_idset_put(&s, lr_idset_digest(&s, "req-5", 5), 99, &old) == 0 && old == 6);
  /* 16 bytes a slot, at most 85% full, grown by half: under 32 bytes an id (about 22) */
  CHECK(lr_idset_bytes(&s) < 32u * 1000000);
  size_t cap = 0;
  for (int i = 0; i < LR_IDSET_PARTS; i++) cap += s.part[i].cap;
  CHECK(lr_idset_bytes(&s) == cap * 16);
  lr_idset_free(&s);
}

TEST(empty_set) {
  lr_idset s;
  lr_idset_init(&s, 1, 2);
  CHECK(!lr_idset_get(&s, lr_idset_digest(&s, "x", 1), NULL));
  CHECK(lr_idset_bytes(&s) == 0);
  lr_idset_free(&s);
}

int main(void) {
  RUN(siphash_reference_vector);
  RUN(put_get_a_million);
  RUN(empty_set);
  CTEST_END();
}
