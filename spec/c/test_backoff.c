/* Backoff and delay parsers. Every parser input is copied into a malloc'd
 * block of exactly its length with no NUL, so ASan/valgrind catch a read past n. */
#include "backoff.h"
#include "ctest.h"
#include "rng.h"

#include <limits.h>
#include <stdlib.h>

#define NOW 1714564800.0 /* 2024-05-01T12:00:00Z, a Wednesday */
#define SENTINEL -7.0

typedef int (*parse_fn)(const char *, size_t, double *);
typedef int (*parse_now_fn)(const char *, size_t, double, double *);

static char *exact_copy(const char *s, size_t n) {
  char *b = malloc(n); /* n == 0: a block nothing may be read from (or NULL) */
  if (n && !b) abort();
  if (n) memcpy(b, s, n);
  return b;
}

/* Runs f (or g with now) on text[0..n) in an exact buffer. */
static int run(parse_fn f, parse_now_fn g, double now, const char *text, size_t n, double *out) {
  char *b = exact_copy(text, n);
  int r = f ? f(b, n, out) : g(b, n, now, out);
  free(b);
  return r;
}

static double tolerance(double want) { return 1e-12 + 1e-15 * fabs(want); }

static void accept_n(parse_fn f, parse_now_fn g, double now, const char *name, const char *text,
                     size_t n, double want) {
  double v = SENTINEL;
  int r = run(f, g, now, text, n, &v);
  int good = r == 0 && fabs(v - want) <= tolerance(want);
  if (!good) fprintf(stderr, "  %s(\"%.*s\") -> %d, %.17g; want %.17g\n", name, (int)n, text, r, v, want);
  CHECK(good);
}

static void reject_n(parse_fn f, parse_now_fn g, double now, const char *name, const char *text,
                     size_t n) {
  double v = SENTINEL;
  int r = run(f, g, now, text, n, &v);
  int good = r == -1 && v == SENTINEL;
  if (!good) fprintf(stderr, "  %s(\"%.*s\") -> %d, %.17g; want -1\n", name, (int)n, text, r, v);
  CHECK(good);
}

#define ACCEPT(f, text, want) accept_n(f, NULL, 0, #f, text, strlen(text), want)
#define REJECT(f, text) reject_n(f, NULL, 0, #f, text, strlen(text))
#define ACCEPT_AT(g, now, text, want) accept_n(NULL, g, now, #g, text, strlen(text), want)
#define REJECT_AT(g, now, text) reject_n(NULL, g, now, #g, text, strlen(text))

/* Every proper prefix of a valid date is invalid (and is read within bounds). */
static void reject_prefixes(parse_fn f, const char *name, const char *text) {
  for (size_t k = 0; k < strlen(text); k++) reject_n(f, NULL, 0, name, text, k);
}

/* Inputs no number parser may take. */
static const char *const not_numbers[] = {
    "", " ", "\t", "-1", "-0", "+1", "1e3", "1E3", "abc", "1.", ".5", ".", "1.5.2", "1 2", "0x10",
    "inf", "INF", "nan", "NaN", "Infinity", "1,5", "1_000", "1s", "5 s", "\xd9\xa1", "1\n", "\n1",
    "\v1", "1\r", "--1", "1-", "--", "12a", "a12", "1/2", "\xff", "0.5.", "1..5", "١٢"};

TEST(delay_caps_double_until_max) {
  lr_backoff_cfg cfg = {0.5, 30, 120};
  const double u = 0.999999;
  CHECK_NEAR(lr_backoff_delay(&cfg, 0, u), 0.5 * u, 1e-12);
  CHECK_NEAR(lr_backoff_delay(&cfg, 1, u), 1.0 * u, 1e-12);
  CHECK_NEAR(lr_backoff_delay(&cfg, 2, u), 2.0 * u, 1e-12);
  CHECK_NEAR(lr_backoff_delay(&cfg, 5, u), 16.0 * u, 1e-12);
  CHECK_NEAR(lr_backoff_delay(&cfg, 6, u), 30.0 * u, 1e-12); /* 32 capped */
  CHECK_NEAR(lr_backoff_delay(&cfg, 7, u), 30.0 * u, 1e-12);
  CHECK_NEAR(lr_backoff_delay(&cfg, 3, 0.5), 2.0, 1e-12);
  CHECK(lr_backoff_delay(&cfg, 0, 0) == 0);
}

TEST(delay_saturates_for_large_retries) {
  lr_backoff_cfg cfg = {0.5, 30, 120};
  const int retries[] = {30, 31, 62, 63, 64, 65, 100, 1023, 1024, 1075, 5000, INT_MAX - 1, INT_MAX};
  for (size_t i = 0; i < sizeof retries / sizeof retries[0]; i++) {
    double d = lr_backoff_delay(&cfg, retries[i], 0.5);
    CHECK(isfinite(d));
    CHECK_NEAR(d, 15.0, 1e-12);
  }
  lr_backoff_cfg tiny = {1e-300, 1e300, 0};
  CHECK(isfinite(lr_backoff_delay(&tiny, INT_MAX, 0.999)));
  CHECK(lr_backoff_delay(&tiny, INT_MAX, 0.999) <= 1e300);
  CHECK_NEAR(lr_backoff_delay(&cfg, -1, 0.5), 0.25, 1e-12); /* negative counts as 0 */
  CHECK_NEAR(lr_backoff_delay(&cfg, INT_MIN, 0.5), 0.25, 1e-12);
}

TEST(delay_clamps_odd_u_and_cfg) {
  lr_backoff_cfg cfg = {1, 8, 60};
  CHECK(lr_backoff_delay(&cfg, 10, -0.5) == 0);
  CHECK(lr_backoff_delay(&cfg, 10, NAN) == 0);
  CHECK(lr_backoff_delay(&cfg, 10, 1.0) <= 8);
  CHECK(lr_backoff_delay(&cfg, 10, 2.0) <= 8);
  CHECK(lr_backoff_delay(&cfg, 10, INFINITY) <= 8);
  lr_backoff_cfg zero = {0, 0, 0};
  CHECK(lr_backoff_delay(&zero, 3, 0.5) == 0);
  lr_backoff_cfg nan = {NAN, NAN, NAN};
  CHECK(lr_backoff_delay(&nan, 3, 0.5) == 0);
  lr_backoff_cfg inf_max = {1, INFINITY, 0};
  CHECK(lr_backoff_delay(&inf_max, 1000, 0) == 0); /* not 0 * inf */
  CHECK_NEAR(lr_backoff_delay(&inf_max, 3, 0.5), 4, 1e-12);
}

TEST(jitter_is_uniform_below_the_cap) {
  lr_backoff_cfg cfg = {0.5, 30, 120};
  lr_rng rng;
  lr_rng_seed(&rng, 42);
  for (int retry = 0; retry <= 10; retry++) {
    const int draws = 100000;
    double cap = fmin(30.0, 0.5 * pow(2, retry)), sum = 0, lo = INFINITY, hi = 0;
    int bins[10] = {0};
    for (int i = 0; i < draws; i++) {
      double d = lr_backoff_delay(&cfg, retry, lr_rng_unit(&rng));
      CHECK(d >= 0 && d < cap);
      sum += d;
      lo = fmin(lo, d);
      hi = fmax(hi, d);
      int bin = (int)(d / cap * 10);
      if (bin >= 0 && bin < 10) bins[bin]++;
    }
    CHECK_NEAR(sum / draws, cap / 2, cap * 0.01);
    CHECK(lo < cap * 0.001);
    CHECK(hi > cap * 0.999);
    for (int b = 0; b < 10; b++) CHECK(abs(bins[b] - draws / 10) < draws / 100);
  }
}

TEST(wait_never_below_server_delay) {
  lr_backoff_cfg cfg = {0.5, 30, 120};
  CHECK_NEAR(lr_backoff_wait(&cfg, 0, 0.5, 10), 10, 0);
  CHECK_NEAR(lr_backoff_wait(&cfg, 0, 0.5, -1), 0.25, 1e-12);
  CHECK_NEAR(lr_backoff_wait(&cfg, 0, 0.5, 0), 0.25, 1e-12);
  CHECK_NEAR(lr_backoff_wait(&cfg, 0, 0.5, 0.1), 0.25, 1e-12);
  CHECK_NEAR(lr_backoff_wait(&cfg, 9, 0.5, 14.9), 15, 1e-12);
  CHECK_NEAR(lr_backoff_wait(&cfg, 9, 0.5, 15.1), 15.1, 1e-12);
  CHECK_NEAR(lr_backoff_wait(&cfg, 9, 0.5, 500), 500, 0); /* the caller decides about max_retry_after */
  CHECK_NEAR(lr_backoff_wait(&cfg, 2, 0.5, NAN), 1, 1e-12);
  CHECK_NEAR(lr_backoff_wait(&cfg, 2, 0, 0.02), 0.02, 0);
  lr_rng rng;
  lr_rng_seed(&rng, 7);
  for (int i = 0; i < 10000; i++) {
    double server = lr_rng_unit(&rng) * 40, w = lr_backoff_wait(&cfg, i % 12, lr_rng_unit(&rng), server);
    CHECK(w >= server && w <= fmax(server, 30));
  }
}

TEST(seconds_valid) {
  ACCEPT(lr_parse_seconds, "0", 0);
  ACCEPT(lr_parse_seconds, "12", 12);
  ACCEPT(lr_parse_seconds, "1.5", 1.5);
  ACCEPT(lr_parse_seconds, "0.25", 0.25);
  ACCEPT(lr_parse_seconds, "007", 7);
  ACCEPT(lr_parse_seconds, "  7\t", 7);
  ACCEPT(lr_parse_seconds, "\t 3.14159 ", 3.14159);
  ACCEPT(lr_parse_seconds, "0.000001", 1e-6);
  ACCEPT(lr_parse_seconds, "0.1", 0.1);
  ACCEPT(lr_parse_seconds, "120", 120);
  ACCEPT(lr_parse_seconds, "1714564800", 1714564800);
  ACCEPT(lr_parse_seconds, "1000000000000", 1e12);
  ACCEPT(lr_parse_seconds, "999999999999.999", 999999999999.999);
  ACCEPT(lr_parse_seconds, "1.12345678901234567890", 1.123456789012345);
  ACCEPT(lr_parse_seconds, "00000000000000000000000000001", 1);
}

TEST(seconds_invalid) {
  for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++)
    REJECT(lr_parse_seconds, not_numbers[i]);
  REJECT(lr_parse_seconds, "1000000000000.5");
  REJECT(lr_parse_seconds, "1000000000001");
  REJECT(lr_parse_seconds, "99999999999999999999999999999999999999");
  REJECT(lr_parse_seconds, "Wed, 01 May 2024 12:00:30 GMT");
  reject_n(lr_parse_seconds, NULL, 0, "lr_parse_seconds", "12\0", 3);
  reject_n(lr_parse_seconds, NULL, 0, "lr_parse_seconds", "\0" "12", 3);
  reject_n(lr_parse_seconds, NULL, 0, "lr_parse_seconds", NULL, 0);
  /* n bounds the text: what follows is never read */
  accept_n(lr_parse_seconds, NULL, 0, "lr_parse_seconds", "12x", 2, 12);
  accept_n(lr_parse_seconds, NULL, 0, "lr_parse_seconds", "1.5e9", 3, 1.5);
}

TEST(seconds_huge_digit_runs) {
  char buf[4096];
  memset(buf, '9', sizeof buf);
  reject_n(lr_parse_seconds, NULL, 0, "lr_parse_seconds", buf, sizeof buf);
  memset(buf, '0', sizeof buf);
  buf[sizeof buf - 1] = '5';
  accept_n(lr_parse_seconds, NULL, 0, "lr_parse_seconds", buf, sizeof buf, 5);
  buf[0] = '1';
  buf[1] = '.';
  accept_n(lr_parse_seconds, NULL, 0, "lr_parse_seconds", buf, sizeof buf, 1);
}

TEST(retry_after_ms) {
  ACCEPT(lr_parse_retry_after_ms, "250", 0.25);
  ACCEPT(lr_parse_retry_after_ms, "0", 0);
  ACCEPT(lr_parse_retry_after_ms, "1.5", 0.0015);
  ACCEPT(lr_parse_retry_after_ms, " 20 ", 0.02);
  ACCEPT(lr_parse_retry_after_ms, "60000", 60);
  ACCEPT(lr_parse_retry_after_ms, "1000000000000000", 1e12);
  REJECT(lr_parse_retry_after_ms, "1000000000000001");
  for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++)
    REJECT(lr_parse_retry_after_ms, not_numbers[i]);
  REJECT(lr_parse_retry_after_ms, "250ms");
}

TEST(http_date_three_forms) {
  ACCEPT(lr_parse_http_date, "Sun, 06 Nov 1994 08:49:37 GMT", 784111777);
  ACCEPT(lr_parse_http_date, "Sunday, 06-Nov-94 08:49:37 GMT", 784111777);
  ACCEPT(lr_parse_http_date, "Sun Nov  6 08:49:37 1994", 784111777);
  ACCEPT(lr_parse_http_date, "Sun Nov 06 08:49:37 1994", 784111777);
  ACCEPT(lr_parse_http_date, "  Sun, 06 Nov 1994 08:49:37 GMT\t", 784111777);
  ACCEPT(lr_parse_http_date, "sun, 06 NOV 1994 08:49:37 gmt", 784111777);
  ACCEPT(lr_parse_http_date, "SUNDAY, 06-nov-94 08:49:37 GMT", 784111777);
}

TEST(http_date_known_epochs) {
  ACCEPT(lr_parse_http_date, "Thu, 01 Jan 1970 00:00:00 GMT", 0);
  ACCEPT(lr_parse_http_date, "Wed, 31 Dec 1969 23:59:59 GMT", -1);
  ACCEPT(lr_parse_http_date, "Sat, 01 Jan 2000 00:00:00 GMT", 946684800);
  ACCEPT(lr_parse_http_date, "Tue, 29 Feb 2000 12:00:00 GMT", 951825600);
  ACCEPT(lr_parse_http_date, "Thu, 29 Feb 2024 00:00:00 GMT", 1709164800);
  ACCEPT(lr_parse_http_date, "Wed, 01 May 2024 12:00:00 GMT", NOW);
  ACCEPT(lr_parse_http_date, "Tue, 19 Jan 2038 03:14:08 GMT", 2147483648.0);
  ACCEPT(lr_parse_http_date, "Sun, 07 Feb 2106 06:28:16 GMT", 4294967296.0);
  ACCEPT(lr_parse_http_date, "Fri, 31 Dec 9999 23:59:59 GMT", 253402300799.0);
  ACCEPT(lr_parse_http_date, "Thu, 01 Mar 1900 00:00:00 GMT", -2203891200.0);
  ACCEPT(lr_parse_http_date, "Sat, 31 Dec 2016 23:59:60 GMT", 1483228800); /* leap second */
  ACCEPT(lr_parse_http_date, "Tue Jan 19 03:14:08 2038", 2147483648.0);
  ACCEPT(lr_parse_http_date, "Thu Feb 29 00:00:00 2024", 1709164800);
  ACCEPT(lr_parse_http_date, "Fri Dec 31 23:59:59 9999", 253402300799.0);
  /* the weekday is not cross-checked: servers get it wrong, the date still stands */
  ACCEPT(lr_parse_http_date, "Mon, 06 Nov 1994 08:49:37 GMT", 784111777);
}

TEST(http_date_two_digit_years) {
  /* without a now: 70-99 -> 19xx, 00-69 -> 20xx */
  ACCEPT(lr_parse_http_date, "Thursday, 01-Jan-70 00:00:00 GMT", 0);
  ACCEPT(lr_parse_http_date, "Saturday, 01-Jan-00 00:00:00 GMT", 946684800);
  ACCEPT(lr_parse_http_date, "Tuesday, 19-Jan-38 03:14:08 GMT", 2147483648.0);
  ACCEPT(lr_parse_http_date, "Tuesday, 31-Dec-69 00:00:00 GMT", 3155673600.0);
  ACCEPT(lr_parse_http_date, "Thursday, 29-Feb-24 00:00:00 GMT", 1709164800);
  REJECT(lr_parse_http_date, "Thursday, 29-Feb-23 00:00:00 GMT");
  /* with a now (Retry-After): RFC 9110 5.6.7, not more than 50 years ahead */
  ACCEPT_AT(lr_parse_retry_after, NOW, "Tuesday, 01-Jan-30 00:00:00 GMT", 1893456000.0 - NOW);
  ACCEPT_AT(lr_parse_retry_after, NOW, "Monday, 01-Jan-74 00:00:00 GMT", 3281990400.0 - NOW);
  ACCEPT_AT(lr_parse_retry_after, NOW, "Wednesday, 01-Jan-75 00:00:00 GMT", 0); /* 1975 */
  ACCEPT_AT(lr_parse_retry_after, NOW, "Sunday, 06-Nov-94 08:49:37 GMT", 0);    /* 1994 */
  const double y2080 = 3471292800.0;
  ACCEPT_AT(lr_parse_retry_after, y2080, "Friday, 01-Jan-94 00:00:00 GMT", 3913142400.0 - y2080);
  ACCEPT_AT(lr_parse_retry_after, y2080, "Sunday, 01-Jan-30 00:00:00 GMT", 5049129600.0 - y2080);
  ACCEPT_AT(lr_parse_retry_after, y2080, "Wednesday, 01-Jan-31 00:00:00 GMT", 0); /* 2031 */
}

TEST(http_date_invalid) {
  static const char *const bad[] = {
      "", "GMT", "Sun", "Sun,", "Sux, 06 Nov 1994 08:49:37 GMT", "Sunday, 06 Nov 1994 08:49:37 GMT",
      "Sun 06 Nov 1994 08:49:37 GMT", "Sun,06 Nov 1994 08:49:37 GMT", "Sun,  06 Nov 1994 08:49:37 GMT",
      "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 UTC",
      "Sun, 06 Nov 1994 08:49:37 +0000", "Sun, 06 Nov 1994 08:49:37 GMTx", "Sun, 06 Nov 1994 08:49:37 GMT ,",
      "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 November 1994 08:49:37 GMT",
      "Sun, 32 Jan 1994 08:49:37 GMT", "Sun, 00 Jan 1994 08:49:37 GMT", "Sun, 31 Apr 1994 08:49:37 GMT",
      "Sun, 29 Feb 1900 08:49:37 GMT", "Sun, 29 Feb 2100 08:49:37 GMT", "Sun, 29 Feb 2023 08:49:37 GMT",
      "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 06 Nov 1994 08:49:61 GMT",
      "Sun, 06 Nov 1994 08:49 GMT", "Sun, 06 Nov 1994 8:49:37 GMT", "Sun, 06 Nov 1994 08:49:37.5 GMT",
      "Sun, 06 Nov 19945 08:49:37 GMT", "Sun, 06 Nov -994 08:49:37 GMT", "Sun, 06-Nov-1994 08:49:37 GMT",
      "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun, 06-Nov-94 08:49:37 GMT", "Sunday, 06 Nov 94 08:49:37 GMT",
      "Sunday, 06-Nov-94 08:49:37", "Sunday, 6-Nov-94 08:49:37 GMT", "Sun Nov 6 08:49:37 1994",
      "Sun Nov   6 08:49:37 1994", "Sun Nov  6 08:49:37 94", "Sun Nov  6 08:49:37 1994 GMT",
      "Sun, Nov  6 08:49:37 1994", "Sunday Nov  6 08:49:37 1994", "Sun Nov  6 08:49:37  1994",
      "Sun Nov 31 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 GMT\r", "Sun,\t06 Nov 1994 08:49:37 GMT",
      "1994-11-06T08:49:37Z", "784111777", "-1", "Sun, 06 Nov 1994 08:49:37 GMT Sun, 06 Nov 1994",
      "Sun, 0x Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:4a:37 GMT", "Sun, 06 Nov 1994 08-49-37 GMT"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) REJECT(lr_parse_http_date, bad[i]);
  reject_n(lr_parse_http_date, NULL, 0, "lr_parse_http_date", "Sun, 06 Nov 1994 08:49:37 GMT\0", 30);
  reject_prefixes(lr_parse_http_date, "lr_parse_http_date", "Sun, 06 Nov 1994 08:49:37 GMT");
  reject_prefixes(lr_parse_http_date, "lr_parse_http_date", "Sunday, 06-Nov-94 08:49:37 GMT");
  reject_prefixes(lr_parse_http_date, "lr_parse_http_date", "Sun Nov  6 08:49:37 1994");
}

TEST(http_date_every_day_of_a_leap_cycle) {
  /* Walks 1999-12-01 .. 2004-03-31 day by day, in IMF and asctime forms. */
  static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  static const char *const wk[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
  double epoch = 944006400; /* 1999-12-01 */
  int y = 1999, m = 12, d = 1;
  char buf[64];
  while (y < 2004 || m < 4) {
    const char *w = wk[(long)(epoch / 86400) % 7];
    snprintf(buf, sizeof buf, "%s, %02d %s %04d 23:59:59 GMT", w, d, mon[m - 1], y);
    ACCEPT(lr_parse_http_date, buf, epoch + 86399);
    snprintf(buf, sizeof buf, "%s %s %2d 00:00:00 %04d", w, mon[m - 1], d, y);
    ACCEPT(lr_parse_http_date, buf, epoch);
    int dim = m == 2 ? (y % 4 == 0 ? 29 : 28) : (m == 4 || m == 6 || m == 9 || m == 11) ? 30 : 31;
    snprintf(buf, sizeof buf, "%s, %02d %s %04d 00:00:00 GMT", w, dim + 1, mon[m - 1], y);
    REJECT(lr_parse_http_date, buf);
    epoch += 86400;
    if (++d > dim) d = 1, m++;
    if (m > 12) m = 1, y++;
  }
}

TEST(rfc3339_valid) {
  ACCEPT(lr_parse_rfc3339, "2024-05-01T12:00:00Z", NOW);
  ACCEPT(lr_parse_rfc3339, "2024-05-01t12:00:00z", NOW);
  ACCEPT(lr_parse_rfc3339, "2024-05-01 12:00:00Z", NOW);
  ACCEPT(lr_parse_rfc3339, " 2024-05-01T12:00:00Z\t", NOW);
  ACCEPT(lr_parse_rfc3339, "2024-05-01T12:00:00.5+02:00", NOW - 7200 + 0.5);
  ACCEPT(lr_parse_rfc3339, "2024-05-01T12:00:00-05:30", NOW + 5.5 * 3600);
  ACCEPT(lr_parse_rfc3339, "2024-05-01T12:00:00+00:00", NOW);
  ACCEPT(lr_parse_rfc3339, "2024-05-01T12:00:00-00:00", NOW);
  ACCEPT(lr_parse_rfc3339, "2024-05-01T12:00:00.123456789Z", NOW + 0.123456789);
  ACCEPT(lr_parse_rfc3339, "2024-05-01T12:00:00.000Z", NOW);
  ACCEPT(lr_parse_rfc3339, "2024-05-01T12:00:00.999999999999999999999Z", NOW + 0.999999999999999);
  ACCEPT(lr_parse_rfc3339, "1970-01-01T00:00:00Z", 0);
  ACCEPT(lr_parse_rfc3339, "1969-12-31T23:59:59Z", -1);
  ACCEPT(lr_parse_rfc3339, "1970-01-01T00:00:00+23:59", -86340);
  ACCEPT(lr_parse_rfc3339, "2024-02-29T00:00:00Z", 1709164800);
  ACCEPT(lr_parse_rfc3339, "2000-02-29T12:00:00Z", 951825600);
  ACCEPT(lr_parse_rfc3339, "2038-01-19T03:14:08Z", 2147483648.0);
  ACCEPT(lr_parse_rfc3339, "2016-12-31T23:59:60Z", 1483228800);
  ACCEPT(lr_parse_rfc3339, "9999-12-31T23:59:59Z", 253402300799.0);
  ACCEPT(lr_parse_rfc3339, "0001-01-01T00:00:00Z", -62135596800.0);
  ACCEPT(lr_parse_rfc3339, "0000-01-01T00:00:00Z", -62167219200.0);
  ACCEPT(lr_parse_rfc3339, "0000-02-29T00:00:00Z", -62162121600.0); /* year 0 is a leap year */
  ACCEPT(lr_parse_rfc3339, "9999-12-31T23:59:60-23:59", 253402300800.0 + 86340);
}

TEST(rfc3339_invalid) {
  static const char *const bad[] = {
      "", "Z", "2024-05-01", "2024-05-01T12:00:00", "2024-05-01T12:00Z", "2024-05-01T12:00:00+0200",
      "2024-05-01T12:00:00+02", "2024-05-01T12:00:00+24:00", "2024-05-01T12:00:00+02:60",
      "2024-05-01T12:00:00 Z", "2024-5-01T12:00:00Z", "2024-05-1T12:00:00Z", "24-05-01T12:00:00Z",
      "2024-13-01T12:00:00Z", "2024-00-01T12:00:00Z", "2024-05-00T12:00:00Z", "2024-05-32T12:00:00Z",
      "2023-02-29T12:00:00Z", "2100-02-29T12:00:00Z", "2024-04-31T12:00:00Z", "2024-05-01T24:00:00Z",
      "2024-05-01T12:60:00Z", "2024-05-01T12:00:61Z", "2024-05-01T12:00:00.Z", "2024-05-01T12:00:00,5Z",
      "2024-05-01T12:00:00.5.5Z", "2024-05-01X12:00:00Z", "2024-05-01TT12:00:00Z", "2024-05-01T12:00:00ZZ",
      "2024-05-01T12:00:00Zjunk", "2024-05-01T12:00:00z+01:00", "+2024-05-01T12:00:00Z",
      "-2024-05-01T12:00:00Z", "2024/05/01T12:00:00Z", "2024-05-01T12-00-00Z", "Wed, 01 May 2024 12:00:00 GMT",
      "1714564800", "2024-05-01T12:00:00.-5Z", "2024-05-01T1:00:00Z", "20240501T120000Z"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) REJECT(lr_parse_rfc3339, bad[i]);
  reject_prefixes(lr_parse_rfc3339, "lr_parse_rfc3339", "2024-05-01T12:00:00.5+02:00");
  reject_prefixes(lr_parse_rfc3339, "lr_parse_rfc3339", "2024-05-01T12:00:00Z");
  reject_n(lr_parse_rfc3339, NULL, 0, "lr_parse_rfc3339", "2024-05-01T12:00:00Z\0", 21);
}

TEST(go_duration_valid) {
  ACCEPT(lr_parse_go_duration, "20ms", 0.02);
  ACCEPT(lr_parse_go_duration, "1s", 1);
  ACCEPT(lr_parse_go_duration, "6m0s", 360);
  ACCEPT(lr_parse_go_duration, "1h2m3.5s", 3723.5);
  ACCEPT(lr_parse_go_duration, "1.5s", 1.5);
  ACCEPT(lr_parse_go_duration, "0", 0);
  ACCEPT(lr_parse_go_duration, "0s", 0);
  ACCEPT(lr_parse_go_duration, "0.000s", 0);
  ACCEPT(lr_parse_go_duration, "300us", 0.0003);
  ACCEPT(lr_parse_go_duration, "10\xC2\xB5s", 0.00001); /* micro sign */
  ACCEPT(lr_parse_go_duration, "10\xCE\xBCs", 0.00001); /* Greek mu */
  ACCEPT(lr_parse_go_duration, "100ns", 1e-7);
  ACCEPT(lr_parse_go_duration, "12ms", 0.012);
  ACCEPT(lr_parse_go_duration, "1h", 3600);
  ACCEPT(lr_parse_go_duration, "1.5h", 5400);
  ACCEPT(lr_parse_go_duration, "2h45m", 9900);
  ACCEPT(lr_parse_go_duration, "1m30.5s", 90.5);
  ACCEPT(lr_parse_go_duration, "59m59.999s", 3599.999);
  ACCEPT(lr_parse_go_duration, "1h1m1s1ms1us1ns", 3661.001001001);
  ACCEPT(lr_parse_go_duration, ".5s", 0.5); /* as Go takes them */
  ACCEPT(lr_parse_go_duration, "1.s", 1);
  ACCEPT(lr_parse_go_duration, "1m1m", 120);
  ACCEPT(lr_parse_go_duration, "3s1h", 3603);
  ACCEPT(lr_parse_go_duration, " 6m0s\t", 360);
  ACCEPT(lr_parse_go_duration, "1000000000000s", 1e12);
  ACCEPT(lr_parse_go_duration, "007s", 7);
}

TEST(go_duration_invalid) {
  static const char *const bad[] = {
      "", " ", "s", "ms", "1", "1.5", "00", "0.0", "-1s", "+1s", "-0", "1x", "1S", "1MS", "1H", "1 s",
      "1s 2m", "1s2", "1.2.3s", "1ms2", "1\xC2\xB5", "\xC2\xB5s", "1\xC2s", "1\xB5s", "1sec", "1hour",
      "1e3s", "1d", "1w", "1y", "s1", ".s", "..5s", "1..5s", "1s.", "1000000000001s", "277777778h",
      "16666666667m", "999999999999999999999999h", "1h-1m", "inf", "infs", "nans", "1,5s", "1_000s",
      "1s\n", "-1", "1:00", "PT1S", "1mss"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) REJECT(lr_parse_go_duration, bad[i]);
  reject_n(lr_parse_go_duration, NULL, 0, "lr_parse_go_duration", "1s\0", 3);
  reject_n(lr_parse_go_duration, NULL, 0, "lr_parse_go_duration", "10\xC2", 3); /* cut mid-character */
  accept_n(lr_parse_go_duration, NULL, 0, "lr_parse_go_duration", "1msXX", 3, 0.001);
  accept_n(lr_parse_go_duration, NULL, 0, "lr_parse_go_duration", "1ms", 2, 60); /* "1m" */
}

TEST(retry_after_seconds_or_date) {
  ACCEPT_AT(lr_parse_retry_after, NOW, "120", 120);
  ACCEPT_AT(lr_parse_retry_after, NOW, "0", 0);
  ACCEPT_AT(lr_parse_retry_after, NOW, "1.5", 1.5);
  ACCEPT_AT(lr_parse_retry_after, NAN, "30", 30); /* a number needs no clock */
  ACCEPT_AT(lr_parse_retry_after, NOW, "Wed, 01 May 2024 12:00:30 GMT", 30);
  ACCEPT_AT(lr_parse_retry_after, NOW - 0.25, "Wed, 01 May 2024 12:00:00 GMT", 0.25);
  ACCEPT_AT(lr_parse_retry_after, NOW, "Wed, 01 May 2024 12:00:00 GMT", 0);
  ACCEPT_AT(lr_parse_retry_after, NOW, "Sun, 06 Nov 1994 08:49:37 GMT", 0); /* past */
  ACCEPT_AT(lr_parse_retry_after, NOW, "Wed May  1 12:02:00 2024", 120);
  ACCEPT_AT(lr_parse_retry_after, NOW, "Wednesday, 01-May-24 12:01:00 GMT", 60);
  ACCEPT_AT(lr_parse_retry_after, NOW, "Fri, 31 Dec 9999 23:59:59 GMT", 253402300799.0 - NOW);
  REJECT_AT(lr_parse_retry_after, NAN, "Wed, 01 May 2024 12:00:30 GMT");
  REJECT_AT(lr_parse_retry_after, INFINITY, "Wed, 01 May 2024 12:00:30 GMT");
  REJECT_AT(lr_parse_retry_after, -1e300, "Wed, 01 May 2024 12:00:30 GMT"); /* absurd delay */
  for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++)
    REJECT_AT(lr_parse_retry_after, NOW, not_numbers[i]);
  REJECT_AT(lr_parse_retry_after, NOW, "5s");
  REJECT_AT(lr_parse_retry_after, NOW, "soon");
  REJECT_AT(lr_parse_retry_after, NOW, "2024-05-01T12:00:30Z");
  REJECT_AT(lr_parse_retry_after, NOW, "Wed, 01 May 2024 12:00:30 GMT junk");
  REJECT_AT(lr_parse_retry_after, NOW, "1000000000001");
}

TEST(reset_number_epoch_or_duration) {
  ACCEPT_AT(lr_parse_reset, NOW, "60", 60);
  ACCEPT_AT(lr_parse_reset, NOW, "1.5", 1.5);
  ACCEPT_AT(lr_parse_reset, NOW, "0", 0);
  ACCEPT_AT(lr_parse_reset, NOW, "1000000000", 1e9); /* not above 1e9: seconds from now */
  ACCEPT_AT(lr_parse_reset, NOW, "1000000001", 0);   /* an epoch in the past */
  ACCEPT_AT(lr_parse_reset, NOW, "1714564830", 30);
  ACCEPT_AT(lr_parse_reset, NOW, "1714564800.5", 0.5);
  ACCEPT_AT(lr_parse_reset, NOW, "6m0s", 360);
  ACCEPT_AT(lr_parse_reset, NOW, "20ms", 0.02);
  ACCEPT_AT(lr_parse_reset, NAN, "60", 60);
  REJECT_AT(lr_parse_reset, NAN, "1714564830");
  for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++)
    if (strcmp(not_numbers[i], "1s") != 0) REJECT_AT(lr_parse_reset, NOW, not_numbers[i]);
  REJECT_AT(lr_parse_reset, NOW, "1000000000001");
  REJECT_AT(lr_parse_reset, NOW, "Wed, 01 May 2024 12:00:30 GMT");
  REJECT_AT(lr_parse_reset, NOW, "1e9");
}

/* Each parser, fed every prefix and every one-byte corruption of valid texts,
 * answers 0 with a finite value or -1 leaving *out alone, within bounds. */
TEST(parsers_total_on_mutations) {
  static const char *const seeds[] = {"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                                      "Sun Nov  6 08:49:37 1994", "2024-05-01T12:00:00.5+02:00",
                                      "1h2m3.5s", "10\xC2\xB5s", "1714564830", "1.5"};
  static const char subst[] = {'0', '9', ' ', '\t', '.', '-', '+', ':', ',', 'Z', 's', 'm', 'x', '\0', '\xff'};
  char buf[64];
  for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
    size_t n = strlen(seeds[i]);
    for (size_t pos = 0; pos < n; pos++) {
      for (size_t k = 0; k < sizeof subst; k++) {
        memcpy(buf, seeds[i], n);
        buf[pos] = subst[k];
        const size_t lens[2] = {pos + 1, n}; /* cut right after the change, and whole */
        for (int li = 0; li < 2; li++) {
          size_t len = lens[li];
          double v = SENTINEL;
          int r;
          r = run(lr_parse_seconds, NULL, 0, buf, len, &v);
          CHECK(r == 0 ? isfinite(v) && v >= 0 : v == SENTINEL);
          v = SENTINEL;
          r = run(lr_parse_go_duration, NULL, 0, buf, len, &v);
          CHECK(r == 0 ? isfinite(v) && v >= 0 : v == SENTINEL);
          v = SENTINEL;
          r = run(lr_parse_http_date, NULL, 0, buf, len, &v);
          CHECK(r == 0 ? isfinite(v) : v == SENTINEL);
          v = SENTINEL;
          r = run(lr_parse_rfc3339, NULL, 0, buf, len, &v);
          CHECK(r == 0 ? isfinite(v) : v == SENTINEL);
          v = SENTINEL;
          r = run(NULL, lr_parse_retry_after, NOW, buf, len, &v);
          CHECK(r == 0 ? isfinite(v) && v >= 0 : v == SENTINEL);
          v = SENTINEL;
          r = run(NULL, lr_parse_reset, NOW, buf, len, &v);
          CHECK(r == 0 ? isfinite(v) && v >= 0 : v == SENTINEL);
        }
      }
    }
  }
}

int main(void) {
  RUN(delay_caps_double_until_max);
  RUN(delay_saturates_for_large_retries);
  RUN(delay_clamps_odd_u_and_cfg);
  RUN(jitter_is_uniform_below_the_cap);
  RUN(wait_never_below_server_delay);
  RUN(seconds_valid);
  RUN(seconds_invalid);
  RUN(seconds_huge_digit_runs);
  RUN(retry_after_ms);
  RUN(http_date_three_forms);
  RUN(http_date_known_epochs);
  RUN(http_date_two_digit_years);
  RUN(http_date_invalid);
  RUN(http_date_every_day_of_a_leap_cycle);
  RUN(rfc3339_valid);
  RUN(rfc3339_invalid);
  RUN(go_duration_valid);
  RUN(go_duration_invalid);
  RUN(retry_after_seconds_or_date);
  RUN(reset_number_epoch_or_duration);
  RUN(parsers_total_on_mutations);
  CTEST_END();
}
