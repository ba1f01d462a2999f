/* Client-side rate limits: token buckets for requests per minute and tokens
 * per minute. Sans-I/O: every call takes `now` (monotonic seconds). */
#ifndef LR_LIMITER_H
#define LR_LIMITER_H

typedef struct lr_bucket {
  double rate_per_s;  /* refill rate; 0 = unlimited (the bucket always allows) */
  double capacity;    /* the most it holds */
  double level;       /* what it holds now; may be negative (debt after a correction) */
  double last;        /* when level was last brought up to date */
} lr_bucket;

void lr_bucket_init(lr_bucket *b, double rate_per_s, double capacity, double now);
/* Earliest moment `need` can be taken (now if it can). A need above the
 * capacity waits for a full bucket, so it is never refused forever. */
double lr_bucket_available_at(lr_bucket *b, double need, double now);
void lr_bucket_take(lr_bucket *b, double n, double now);
/* Gives back (n > 0) or charges more (n < 0), e.g. when the real usage is known. */
void lr_bucket_adjust(lr_bucket *b, double n, double now);

typedef struct lr_limiter {
  lr_bucket requests; /* rpm/60 per second, capacity max(1, rpm/6): ten seconds' worth */
  lr_bucket tokens;   /* tpm/60 per second, capacity max(1, tpm/6) */
} lr_limiter;

/* The bucket a per-minute limit makes: per_minute/60 per second, holding ten
 * seconds' worth (at least 1); 0, 0 for no limit. */
void lr_limiter_shape(double per_minute, double *rate_per_s, double *capacity);

/* rpm, tpm: 0 = no limit. */
void lr_limiter_init(lr_limiter *l, double rpm, double tpm, double now);
/* Earliest moment a request estimated at `tokens` may go. */
double lr_limiter_available_at(lr_limiter *l, double tokens, double now);
void lr_limiter_take(lr_limiter *l, double tokens, double now);
/* The answer's usage is known: charge the difference to the token bucket. */
void lr_limiter_correct(lr_limiter *l, double estimated, double actual, double now);

#endif
