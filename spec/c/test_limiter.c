/* Token buckets and the requests/tokens limiter. */
#include "ctest.h"
#include "limiter.h"
#include "rng.h"

TEST(bucket_starts_full) {
  lr_bucket b;
  lr_bucket_init(&b, 2, 10, 100);
  CHECK(b.rate_per_s == 2 && b.capacity == 10 && b.level == 10 && b.last == 100);
  CHECK(lr_bucket_available_at(&b, 10, 100) == 100);
  CHECK(lr_bucket_available_at(&b, 0, 100) == 100);
  CHECK(lr_bucket_available_at(&b, -5, 100) == 100);
}

TEST(bucket_take_and_refill) {
  lr_bucket b;
  lr_bucket_init(&b, 2, 10, 0);
  lr_bucket_take(&b, 10, 0);
  CHECK_NEAR(b.level, 0, 0);
  CHECK_NEAR(lr_bucket_available_at(&b, 1, 0), 0.5, 1e-12);
  CHECK_NEAR(lr_bucket_available_at(&b, 4, 0), 2, 1e-12);
  CHECK_NEAR(lr_bucket_available_at(&b, 4, 1), 2, 1e-12); /* level 2 at t=1 */
  CHECK_NEAR(b.level, 2, 1e-12);
  CHECK_NEAR(lr_bucket_available_at(&b, 2, 1), 1, 0);
  lr_bucket_take(&b, 2, 1);
  CHECK_NEAR(b.level, 0, 1e-12);
  CHECK_NEAR(lr_bucket_available_at(&b, 10, 100), 100, 0);
  CHECK_NEAR(b.level, 10, 0); /* capped */
  lr_bucket_take(&b, 3, 100.5);
  CHECK_NEAR(b.level, 7, 0); /* 10 (full, no overflow) - 3 */
  lr_bucket_take(&b, 0, 101);
  lr_bucket_take(&b, -4, 101); /* nonsense takes nothing */
  lr_bucket_take(&b, NAN, 101);
  CHECK_NEAR(b.level, 7, 0);
}

TEST(bucket_oversize_need_waits_for_full) {
  lr_bucket b;
  lr_bucket_init(&b, 2, 10, 0);
  CHECK(lr_bucket_available_at(&b, 25, 0) == 0); /* full already */
  lr_bucket_take(&b, 25, 0);
  CHECK_NEAR(b.level, -15, 0); /* the rest is debt */
  CHECK_NEAR(lr_bucket_available_at(&b, 1, 0), 8, 1e-12);
  CHECK_NEAR(lr_bucket_available_at(&b, 1e9, 0), 12.5, 1e-12); /* a full bucket */
  CHECK_NEAR(lr_bucket_available_at(&b, INFINITY, 0), 12.5, 1e-12);
  CHECK_NEAR(lr_bucket_available_at(&b, 25, 12.5), 12.5, 1e-12);
}

TEST(bucket_adjust) {
  lr_bucket b;
  lr_bucket_init(&b, 1, 10, 0);
  lr_bucket_take(&b, 8, 0);
  lr_bucket_adjust(&b, 3, 0);
  CHECK_NEAR(b.level, 5, 0);
  lr_bucket_adjust(&b, 100, 0);
  CHECK_NEAR(b.level, 10, 0); /* never above capacity */
  lr_bucket_adjust(&b, -25, 0);
  CHECK_NEAR(b.level, -15, 0);
  CHECK_NEAR(lr_bucket_available_at(&b, 5, 0), 20, 1e-12);
  lr_bucket_adjust(&b, NAN, 1);
  CHECK_NEAR(b.level, -15, 0);
  CHECK(b.last == 0); /* NaN refilled nothing either */
  lr_bucket_adjust(&b, 0, 5);
  CHECK_NEAR(b.level, -10, 1e-12); /* refilled first */
}

TEST(bucket_clock_going_backwards) {
  lr_bucket b;
  lr_bucket_init(&b, 2, 10, 10);
  lr_bucket_take(&b, 10, 10);
  double at = lr_bucket_available_at(&b, 2, 5);
  CHECK_NEAR(at, 11, 1e-12); /* measured from the last known moment */
  CHECK(b.last == 10 && b.level == 0);
  lr_bucket_take(&b, 1, 4);
  CHECK_NEAR(b.level, -1, 0);
  lr_bucket_adjust(&b, 1, 3);
  CHECK_NEAR(b.level, 0, 0);
  CHECK_NEAR(lr_bucket_available_at(&b, 2, 11), 11, 1e-12); /* 10 -> 11 refilled once */
  CHECK_NEAR(b.level, 2, 1e-12);
  CHECK(isfinite(lr_bucket_available_at(&b, 5, -1e300)));
  CHECK(b.level <= b.capacity);
}

TEST(bucket_unlimited) {
  lr_bucket b;
  const double rates[] = {0, -1, NAN};
  for (int i = 0; i < 3; i++) {
    lr_bucket_init(&b, rates[i], 5, 0);
    CHECK(b.rate_per_s == 0);
    lr_bucket_take(&b, 1e9, 0);
    lr_bucket_adjust(&b, -1e9, 0);
    CHECK(lr_bucket_available_at(&b, 1e12, 3) == 3);
    CHECK(lr_bucket_available_at(&b, 1, -7) == -7);
  }
}

TEST(bucket_zero_capacity) {
  lr_bucket b;
  lr_bucket_init(&b, 1, 0, 0);
  CHECK(b.capacity == 0 && b.level == 0);
  CHECK(lr_bucket_available_at(&b, 1, 0) == 0); /* a full (empty) bucket */
  lr_bucket_init(&b, 1, -3, 0);
  CHECK(b.capacity == 0);
}

TEST(limiter_shapes) {
  lr_limiter l;
  lr_limiter_init(&l, 60, 6000, 0);
  CHECK_NEAR(l.requests.rate_per_s, 1, 0);
  CHECK_NEAR(l.requests.capacity, 10, 0);
  CHECK_NEAR(l.tokens.rate_per_s, 100, 0);
  CHECK_NEAR(l.tokens.capacity, 1000, 0);
  lr_limiter_init(&l, 3, 2, 0);
  CHECK_NEAR(l.requests.capacity, 1, 0); /* max(1, rpm/6) */
  CHECK_NEAR(l.tokens.capacity, 1, 0);
  CHECK_NEAR(l.requests.rate_per_s, 0.05, 1e-15);
  lr_limiter_init(&l, 0, 0, 0);
  CHECK(l.requests.rate_per_s == 0 && l.tokens.rate_per_s == 0);
  CHECK(lr_limiter_available_at(&l, 1e9, 7) == 7);
  lr_limiter_init(&l, -5, NAN, 0);
  CHECK(l.requests.rate_per_s == 0 && l.tokens.rate_per_s == 0);
}

TEST(limiter_waits_for_the_slower_bucket) {
  lr_limiter l;
  lr_limiter_init(&l, 60, 6000, 0); /* 10 requests, 1000 tokens */
  CHECK(lr_limiter_available_at(&l, 1000, 0) == 0);
  lr_limiter_take(&l, 900, 0);
  CHECK_NEAR(l.requests.level, 9, 0);
  CHECK_NEAR(lr_limiter_available_at(&l, 300, 0), 2, 1e-12); /* tokens: 200 short at 100/s */
  for (int i = 0; i < 9; i++) lr_limiter_take(&l, 0, 0);
  CHECK_NEAR(lr_limiter_available_at(&l, 50, 0), 1, 1e-12); /* requests: 1 s */
  CHECK_NEAR(lr_limiter_available_at(&l, 5000, 0), 9, 1e-12); /* oversize: full token bucket */
}

TEST(limiter_requests_only_or_tokens_only) {
  lr_limiter l;
  lr_limiter_init(&l, 60, 0, 0);
  for (int i = 0; i < 10; i++) lr_limiter_take(&l, 1e9, 0);
  CHECK_NEAR(lr_limiter_available_at(&l, 1e9, 0), 1, 1e-12);
  lr_limiter_init(&l, 0, 600, 0); /* 10 tokens/s, 100 capacity */
  lr_limiter_take(&l, 100, 0);
  CHECK_NEAR(lr_limiter_available_at(&l, 10, 0), 1, 1e-12);
}

TEST(limiter_correct) {
  lr_limiter l;
  lr_limiter_init(&l, 60, 6000, 0);
  lr_limiter_take(&l, 500, 0);
  lr_limiter_correct(&l, 500, 800, 0); /* used more: charged */
  CHECK_NEAR(l.tokens.level, 200, 0);
  lr_limiter_correct(&l, 500, 100, 0); /* used less: given back */
  CHECK_NEAR(l.tokens.level, 600, 0);
  lr_limiter_correct(&l, 5000, 0, 0);
  CHECK_NEAR(l.tokens.level, 1000, 0); /* capped */
  lr_limiter_correct(&l, 0, 3000, 0);
  CHECK_NEAR(l.tokens.level, -2000, 0);
  CHECK_NEAR(lr_limiter_available_at(&l, 1, 0), 20.01, 1e-9);
  CHECK_NEAR(l.requests.level, 9, 0); /* corrections touch tokens only */
}

/* A client that always waits until allowed gets the configured pace: the
 * burst, then rate, whatever the request sizes. */
TEST(limiter_paces_a_busy_client) {
  lr_limiter l;
  lr_rng rng;
  lr_rng_seed(&rng, 5);
  lr_limiter_init(&l, 120, 60000, 0); /* 2 req/s burst 20; 1000 tok/s burst 10000 */
  double t = 0, tokens = 0;
  int requests = 0;
  while (t < 600) {
    double need = 50 + lr_rng_unit(&rng) * 400;
    double at = lr_limiter_available_at(&l, need, t);
    CHECK(at >= t);
    t = at;
    if (t >= 600) break;
    lr_limiter_take(&l, need, t);
    tokens += need;
    requests++;
    CHECK(l.requests.level >= -1e-9 && l.tokens.level >= -1e-6);
  }
  CHECK(requests <= 20 + 2 * 600 + 1);
  CHECK(tokens <= 10000 + 1000 * 600 + 1);
  CHECK(requests >= 2 * 600 - 5 || tokens >= 1000 * 600 - 500); /* one of them is saturated */
}

TEST(random_operations_keep_invariants) {
  lr_rng rng;
  lr_rng_seed(&rng, 77);
  lr_bucket b;
  lr_bucket_init(&b, 3, 30, 0);
  double t = 0;
  for (int i = 0; i < 100000; i++) {
    t += (lr_rng_unit(&rng) - 0.1) * 2; /* mostly forward, sometimes back */
    double n = lr_rng_unit(&rng) * 40, at;
    switch (lr_rng_next(&rng) % 3) {
    case 0:
      at = lr_bucket_available_at(&b, n, t);
      CHECK(at >= t && isfinite(at));
      if (at > t) CHECK(b.level < (n < b.capacity ? n : b.capacity));
      if (at > t && at - t < 1e6 && t >= b.last) {
        lr_bucket copy = b;
        lr_bucket_available_at(&copy, n, at);
        CHECK(copy.level >= (n < copy.capacity ? n : copy.capacity) - 1e-9);
      }
      break;
    case 1: lr_bucket_take(&b, n, t); break;
    default: lr_bucket_adjust(&b, n - 20, t); break;
    }
    CHECK(b.level <= b.capacity && isfinite(b.level));
  }
}

int main(void) {
  RUN(bucket_starts_full);
  RUN(bucket_take_and_refill);
  RUN(bucket_oversize_need_waits_for_full);
  RUN(bucket_adjust);
  RUN(bucket_clock_going_backwards);
  RUN(bucket_unlimited);
  RUN(bucket_zero_capacity);
  RUN(limiter_shapes);
  RUN(limiter_waits_for_the_slower_bucket);
  RUN(limiter_requests_only_or_tokens_only);
  RUN(limiter_correct);
  RUN(limiter_paces_a_busy_client);
  RUN(random_operations_keep_invariants);
  CTEST_END();
}
