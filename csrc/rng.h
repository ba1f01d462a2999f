/* A small deterministic PRNG (xorshift64*): policy code takes randomness as
 * state it is handed, so tests can seed it and replay decisions. */
#ifndef LR_RNG_H
#define LR_RNG_H
#include <stdint.h>

typedef struct lr_rng { uint64_t s; } lr_rng;

static inline void lr_rng_seed(lr_rng *r, uint64_t seed) {
  r->s = seed ? seed : 0x9E3779B97F4A7C15ull;
}

static inline uint64_t lr_rng_next(lr_rng *r) {
  uint64_t x = r->s;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* uniform in [0, 1) */
static inline double lr_rng_unit(lr_rng *r) {
  return (double)(lr_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}
#endif
