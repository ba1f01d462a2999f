/* What the fuzz targets share: REQUIRE, an invariant that aborts (so
 * libFuzzer saves the input); NO_COVERAGE and fuzz_buf for the oracles that
 * compare two runs; and with -DLR_FUZZ_STANDALONE a plain main for
 * machines without libFuzzer:
 *   fuzz_x [-n N] FILE...   runs each file, then N (default 10000) seeded
 * mutations of each. Every input sits in a malloc'd block of exactly its
 * size, so a sanitizer or valgrind catches a read past the end. */
#ifndef LR_FUZZ_H
#define LR_FUZZ_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond)                                                       \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
      abort();                                                              \
    }                                                                       \
  } while (0)

/* The oracles and the bookkeeping are not what is fuzzed: they stay out of
 * the coverage libFuzzer steers by, and out of its per-run cost. */
#ifdef __clang__
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define NO_COVERAGE
#endif

/* A growable byte buffer: what a run produced, serialised, so two runs of
 * the same input can be compared byte for byte. Zero-initialise, free(p). */
typedef struct fuzz_buf {
  unsigned char *p;
  size_t len, cap;
} fuzz_buf;

NO_COVERAGE static inline void fuzz_put(fuzz_buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  if (n) memcpy(b->p + b->len, p, n);
  b->len += n;
}

NO_COVERAGE static inline int fuzz_buf_equal(const fuzz_buf *a, const fuzz_buf *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

#ifdef LR_FUZZ_STANDALONE
#include "rng.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_run_exact(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy) abort();
  if (size) memcpy(copy, data, size);
  LLVMFuzzerTestOneInput(copy, size);
  free(copy);
}

/* One to four random edits of buf[0..*n), which has room for cap bytes. */
static void fuzz_mutate(lr_rng *rng, uint8_t *buf, size_t *n, size_t cap) {
  static const char interesting[] = "{}[]\":,.-+0123456789eE \t\r\n\\u/TZ:GMTsmh\xC2\xB5\xff";
  int edits = 1 + (int)(lr_rng_next(rng) % 4);
  for (int e = 0; e < edits; e++) {
    size_t at = *n ? lr_rng_next(rng) % *n : 0;
    switch (lr_rng_next(rng) % 7) {
    case 0: if (*n) buf[at] ^= (uint8_t)(1u << (lr_rng_next(rng) % 8)); break;
    case 1: if (*n) buf[at] = (uint8_t)lr_rng_next(rng); break;
    case 2: if (*n) buf[at] = (uint8_t)interesting[lr_rng_next(rng) % (sizeof interesting - 1)]; break;
    case 3: /* insert */
      if (*n < cap) {
        memmove(buf + at + 1, buf + at, *n - at);
        buf[at] = (uint8_t)interesting[lr_rng_next(rng) % (sizeof interesting - 1)];
        (*n)++;
      }
      break;
    case 4: /* delete */
      if (*n) {
        memmove(buf + at, buf + at + 1, *n - at - 1);
        (*n)--;
      }
      break;
    case 5: { /* duplicate a chunk in place */
      size_t len = *n - at < 16 ? *n - at : 16;
      if (*n + len <= cap) {
        memmove(buf + at + len, buf + at, *n - at);
        *n += len;
      }
      break;
    }
    default: *n = at; break; /* truncate */
    }
  }
}

int main(int argc, char **argv) {
  long mutations = 10000, total = 0;
  lr_rng rng;
  lr_rng_seed(&rng, 12345);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      mutations = atol(argv[++i]);
      continue;
    }
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      perror(argv[i]);
      return 2;
    }
    static uint8_t seed[1 << 16], buf[(1 << 16) + 1024];
    size_t n = fread(seed, 1, sizeof seed, f);
    fclose(f);
    fuzz_run_exact(seed, n);
    total++;
    for (long m = 0; m < mutations; m++, total++) {
      size_t len = n;
      memcpy(buf, seed, n);
      fuzz_mutate(&rng, buf, &len, sizeof buf);
      fuzz_run_exact(buf, len);
    }
  }
  printf("%ld inputs run\n", total);
  return 0;
}
#endif
#endif
