/* Backoff with full jitter, and the parsers for the delays servers send.
 * Sans-I/O: no clock reads; callers pass `now` and a uniform random number. */
#ifndef LR_BACKOFF_H
#define LR_BACKOFF_H
#include <stddef.h>

typedef struct lr_backoff_cfg {
  double base_delay_s;      /* > 0 */
  double max_delay_s;       /* >= base_delay_s */
  double max_retry_after_s; /* a server delay above this means "gone for now" */
} lr_backoff_cfg;

/* Full jitter: u * min(max_delay, base_delay * 2^retry), u uniform in [0,1).
 * `retry` counts earlier failures (0 for the first retry). Never overflows
 * for any retry >= 0 (large exponents saturate at max_delay). */
double lr_backoff_delay(const lr_backoff_cfg *cfg, int retry, double u);

/* The wait before retrying: the jittered delay, but never less than a known
 * server delay (server_delay_s < 0 means unknown). */
double lr_backoff_wait(const lr_backoff_cfg *cfg, int retry, double u, double server_delay_s);

/* Parsers of untrusted text. Each takes (s, n) without needing a NUL, skips
 * surrounding spaces/tabs, returns 0 and sets *out on success, -1 when the
 * text is not valid (then *out is untouched). Never reads past s[n-1]. */

/* Non-negative decimal seconds: "12", "1.5", "0". No sign, no exponent, not
 * empty; values above 1e12 are rejected. */
int lr_parse_seconds(const char *s, size_t n, double *out_s);

/* HTTP date (RFC 9110: IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", the
 * obsolete RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" and asctime
 * "Sun Nov  6 08:49:37 1994") -> Unix epoch seconds. */
int lr_parse_http_date(const char *s, size_t n, double *out_epoch);

/* RFC 3339 timestamp "2024-05-01T12:00:00Z", "...T12:00:00.5+02:00" -> epoch. */
int lr_parse_rfc3339(const char *s, size_t n, double *out_epoch);

/* Go-style duration as OpenAI sends in x-ratelimit-reset-*: "20ms", "1s",
 * "6m0s", "1h2m3.5s", "1.5s", "300us"/"300µs", "0s", "0". Units h m s ms us
 * µs ns, each a non-negative decimal; at least one unit unless the whole
 * text is "0". */
int lr_parse_go_duration(const char *s, size_t n, double *out_s);

/* Retry-After: integer/decimal seconds, or an HTTP date turned into a delay
 * from now_epoch (a date in the past gives 0). */
int lr_parse_retry_after(const char *s, size_t n, double now_epoch, double *out_delay_s);

/* retry-after-ms: non-negative milliseconds, may be fractional -> seconds. */
int lr_parse_retry_after_ms(const char *s, size_t n, double *out_delay_s);

/* x-ratelimit-reset (relays): a number that is either epoch seconds or
 * seconds from now (told apart by size: > 1e9 is an epoch), or a Go
 * duration. -> delay from now_epoch, >= 0. */
int lr_parse_reset(const char *s, size_t n, double now_epoch, double *out_delay_s);

#endif
