/* See idset.h. */
#include "idset.h"

#include <stdlib.h>
#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                                       \
  do {                                                                                                                 \
    v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                                          \
    v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                                             \
    v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                                             \
    v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                                          \
  } while (0)

static uint64_t le64(const unsigned char *p) {
  uint64_t x = 0;
  for (int i = 7; i >= 0; i--) x = (x << 8) | p[i];
  return x;
}

/* SipHash-2-4 with its 128-bit output (the reference's variant). */
void lr_siphash128(uint64_t k0, uint64_t k1, const void *data, size_t len, uint64_t out[2]) {
  const unsigned char *p = data;
  uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
  v1 ^= 0xee;
  size_t whole = len - len % 8;
  for (size_t i = 0; i < whole; i += 8) {
    uint64_t m = le64(p + i);
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
  }
  uint64_t b = (uint64_t)len << 56;
  for (size_t i = 0; i < len % 8; i++) b |= (uint64_t)p[whole + i] << (8 * i);
  v3 ^= b;
  SIPROUND;
  SIPROUND;
  v0 ^= b;
  for (int half = 0; half < 2; half++) { /* the two 64-bit halves: 4 rounds each */
    if (half == 0) v2 ^= 0xee;
    else v1 ^= 0xdd;
    for (int r = 0; r < 4; r++) SIPROUND;
    out[half] = v0 ^ v1 ^ v2 ^ v3;
  }
}

void lr_idset_init(lr_idset *s, uint64_t k0, uint64_t k1) {
  memset(s, 0, sizeof *s);
  s->k0 = k0;
  s->k1 = k1;
}

static void part_free(lr_idpart *p) {
  free(p->lo);
  free(p->hi);
  free(p->val);
  memset(p, 0, sizeof *p);
}

void lr_idset_free(lr_idset *s) {
  for (int i = 0; i < LR_IDSET_PARTS; i++) part_free(&s->part[i]);
  s->n = 0;
}

lr_iddigest lr_idset_digest(const lr_idset *s, const void *id, size_t len) {
  uint64_t h[2];
  lr_siphash128(s->k0, s->k1, id, len, h);
  lr_iddigest d = {h[0] ? h[0] : 1, (uint32_t)h[1]}; /* low 0 marks an empty slot */
  return d;
}

static lr_idpart *part_of(const lr_idset *s, lr_iddigest d) {
  return (lr_idpart *)&s->part[d.hi >> 24];
}

/* The slot of d in p, or of the empty slot where it would go. */
static size_t slot_of(const lr_idpart *p, lr_iddigest d) {
  size_t i = (size_t)(((unsigned __int128)d.lo * p->cap) >> 64);
  while (p->lo[i] != 0 && (p->lo[i] != d.lo || p->hi[i] != d.hi)) i = i + 1 == p->cap ? 0 : i + 1;
  return i;
}

int lr_idset_get(const lr_idset *s, lr_iddigest d, uint32_t *val) {
  const lr_idpart *p = part_of(s, d);
  if (p->cap == 0) return 0;
  size_t i = slot_of(p, d);
  if (p->lo[i] == 0) return 0;
  if (val) *val = p->val[i];
  return 1;
}

static int grow(lr_idpart *p) {
  size_t cap = p->cap < 64 ? 64 : p->cap + p->cap / 2;
  lr_idpart t = {calloc(cap, sizeof *t.lo), malloc(cap * sizeof *t.hi), malloc(cap * sizeof *t.val), cap, p->n};
  if (!t.lo || !t.hi || !t.val) {
    part_free(&t);
    return -1;
  }
  for (size_t j = 0; j < p->cap; j++) {
    if (p->lo[j] == 0) continue;
    lr_iddigest d = {p->lo[j], p->hi[j]};
    size_t i = slot_of(&t, d);
    t.lo[i] = d.lo;
    t.hi[i] = d.hi;
    t.val[i] = p->val[j];
  }
  part_free(p);
  *p = t;
  return 0;
}

int lr_idset_put(lr_idset *s, lr_iddigest d, uint32_t val, uint32_t *old) {
  lr_idpart *p = part_of(s, d);
  if ((p->n + 1) * 20 > p->cap * 17 && grow(p) != 0) return -1; /* keep it at most 85% full */
  size_t i = slot_of(p, d);
  if (p->lo[i] != 0) {
    if (old) *old = p->val[i];
    p->val[i] = val;
    return 0;
  }
  p->lo[i] = d.lo;
  p->hi[i] = d.hi;
  p->val[i] = val;
  p->n++;
  s->n++;
  return 1;
}

size_t lr_idset_bytes(const lr_idset *s) {
  size_t cap = 0;
  for (int i = 0; i < LR_IDSET_PARTS; i++) cap += s->part[i].cap;
  return cap * (sizeof(uint64_t) + 2 * sizeof(uint32_t));
}
