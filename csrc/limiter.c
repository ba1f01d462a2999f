/* Token buckets. A clock that steps back is ignored until it passes `last`
 * again, so no interval is ever refilled twice. */
#include "limiter.h"

static int unlimited(const lr_bucket *b) { return !(b->rate_per_s > 0); }

void lr_bucket_init(lr_bucket *b, double rate_per_s, double capacity, double now) {
  b->rate_per_s = rate_per_s > 0 ? rate_per_s : 0; /* also NaN -> unlimited */
  b->capacity = capacity > 0 ? capacity : 0;
  b->level = b->capacity;
  b->last = now;
}

static void refill(lr_bucket *b, double now) {
  if (!(now > b->last)) return;
  if (b->level < b->capacity) {
    b->level += (now - b->last) * b->rate_per_s;
    if (b->level > b->capacity) b->level = b->capacity;
  }
  b->last = now;
}

double lr_bucket_available_at(lr_bucket *b, double need, double now) {
  if (unlimited(b)) return now;
  refill(b, now);
  if (need > b->capacity) need = b->capacity;
  if (!(b->level < need)) return now; /* also a NaN need */
  double from = b->last > now ? b->last : now;
  return from + (need - b->level) / b->rate_per_s;
}

void lr_bucket_take(lr_bucket *b, double n, double now) {
  if (unlimited(b) || !(n > 0)) return;
  refill(b, now);
  b->level -= n;
}

void lr_bucket_adjust(lr_bucket *b, double n, double now) {
  if (unlimited(b) || n != n) return;
  refill(b, now);
  b->level += n;
  if (b->level > b->capacity) b->level = b->capacity;
}

void lr_limiter_shape(double per_minute, double *rate_per_s, double *capacity) {
  if (per_minute > 0) {
    double ten_seconds = per_minute / 6;
    *rate_per_s = per_minute / 60;
    *capacity = ten_seconds > 1 ? ten_seconds : 1;
  } else {
    *rate_per_s = *capacity = 0;
  }
}

static void bucket_per_minute(lr_bucket *b, double per_minute, double now) {
  double rate, cap;
  lr_limiter_shape(per_minute, &rate, &cap);
  lr_bucket_init(b, rate, cap, now);
}

void lr_limiter_init(lr_limiter *l, double rpm, double tpm, double now) {
  bucket_per_minute(&l->requests, rpm, now);
  bucket_per_minute(&l->tokens, tpm, now);
}

double lr_limiter_available_at(lr_limiter *l, double tokens, double now) {
  double r = lr_bucket_available_at(&l->requests, 1, now);
  double t = lr_bucket_available_at(&l->tokens, tokens, now);
  return r > t ? r : t;
}

void lr_limiter_take(lr_limiter *l, double tokens, double now) {
  lr_bucket_take(&l->requests, 1, now);
  lr_bucket_take(&l->tokens, tokens, now);
}

void lr_limiter_correct(lr_limiter *l, double estimated, double actual, double now) {
  lr_bucket_adjust(&l->tokens, estimated - actual, now);
}
