/* A tiny C test harness: CHECK records a failure and goes on; each test
 * binary ends by printing "N passed, N failed" (spec/run sums them). */
#ifndef LR_CTEST_H
#define LR_CTEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>

static int ctest_passed, ctest_failed, ctest_cur_failed;
static const char *ctest_cur;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      ctest_cur_failed++;                                                            \
      fprintf(stderr, "FAIL %s (%s:%d): %s\n", ctest_cur, __FILE__, __LINE__, #cond); \
    }                                                                                \
  } while (0)

#define CHECK_NEAR(a, b, eps)                                                        \
  do {                                                                               \
    double ctest_a = (a), ctest_b = (b);                                             \
    if (!(fabs(ctest_a - ctest_b) <= (eps))) {                                       \
      ctest_cur_failed++;                                                            \
      fprintf(stderr, "FAIL %s (%s:%d): %s = %.9g, expected %.9g\n", ctest_cur,      \
              __FILE__, __LINE__, #a, ctest_a, ctest_b);                             \
    }                                                                                \
  } while (0)

#define TEST(name) static void name(void)

#define RUN(name)                                   \
  do {                                              \
    ctest_cur = #name;                              \
    ctest_cur_failed = 0;                           \
    name();                                         \
    if (ctest_cur_failed) ctest_failed++;           \
    else ctest_passed++;                            \
  } while (0)

#define CTEST_END()                                                   \
  do {                                                                \
    printf("%d passed, %d failed\n", ctest_passed, ctest_failed);     \
    return ctest_failed ? 1 : 0;                                      \
  } while (0)

#endif
