/* Full-jitter backoff and the parsers of server-given delays. Every parser
 * reads through a bounded cursor, so no input can make it read past s[n-1];
 * numbers and dates are parsed by hand so neither locale nor TZ matters. */
#include "backoff.h"

#include <math.h>

#define MAX_SECONDS 1e12 /* anything longer is garbage, not a delay */
#define FRAC_DIGITS 15   /* fraction digits kept: 10^15 is exact in a double */

/* ---- backoff ---- */

double lr_backoff_delay(const lr_backoff_cfg *cfg, int retry, double u) {
  double cap = cfg->max_delay_s;
  if (!(cfg->base_delay_s > 0) || !(cap > 0)) return 0;
  if (retry < 0) retry = 0;
  /* From 2^64 on the cap is max_delay (saturated), so ldexp never overflows. */
  if (retry < 64 && ldexp(cfg->base_delay_s, retry) < cap) cap = ldexp(cfg->base_delay_s, retry);
  if (!(u > 0)) return 0; /* also NaN; and 0 * an infinite max_delay would be NaN */
  return (u < 1 ? u : 1) * cap;
}

double lr_backoff_wait(const lr_backoff_cfg *cfg, int retry, double u, double server_delay_s) {
  double d = lr_backoff_delay(cfg, retry, u); /* >= 0, so an unknown (< 0) server delay loses */
  return server_delay_s > d ? server_delay_s : d;
}

/* ---- a bounded cursor: every read checks p < end; any miss clears ok ---- */

typedef struct cursor {
  const char *p, *end;
  int ok;
} cursor;

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

static cursor cursor_trimmed(const char *s, size_t n) {
  cursor c = {s, s + n, n > 0};
  while (c.p < c.end && (*c.p == ' ' || *c.p == '\t')) c.p++;
  while (c.end > c.p && (c.end[-1] == ' ' || c.end[-1] == '\t')) c.end--;
  if (c.p == c.end) c.ok = 0;
  return c;
}

static int at_end(const cursor *c) { return c->ok && c->p == c->end; }

static void expect(cursor *c, char ch) {
  if (c->ok && c->p < c->end && *c->p == ch) c->p++;
  else c->ok = 0;
}

/* Exactly `width` digits. */
static int fixed_digits(cursor *c, int width) {
  int v = 0;
  for (int i = 0; i < width; i++) {
    if (!c->ok || c->p >= c->end || !is_digit(*c->p)) {
      c->ok = 0;
      return 0;
    }
    v = v * 10 + (*c->p++ - '0');
  }
  return v;
}

/* One of `names`, compared case-insensitively; returns its index. */
static int one_of(cursor *c, const char *const *names, int count) {
  for (int i = 0; c->ok && i < count; i++) {
    const char *q = c->p, *w = names[i];
    while (*w && q < c->end && lower(*q) == lower(*w)) q++, w++;
    if (!*w) {
      c->p = q;
      return i;
    }
  }
  c->ok = 0;
  return 0;
}

/* A non-negative decimal "12", "1.5". `loose` also takes Go's "1." and ".5".
 * Values above `limit` fail; digits past the limit are still consumed. */
static double decimal(cursor *c, int loose, double limit) {
  double ip = 0, fp = 0, scale = 1;
  int nint = 0, nfrac = 0;
  if (!c->ok) return 0;
  for (; c->p < c->end && is_digit(*c->p); c->p++, nint++)
    if (ip <= limit) ip = ip * 10 + (*c->p - '0');
  if (c->p < c->end && *c->p == '.') {
    c->p++;
    for (; c->p < c->end && is_digit(*c->p); c->p++, nfrac++)
      if (nfrac < FRAC_DIGITS) fp = fp * 10 + (*c->p - '0'), scale *= 10;
    if (nfrac == 0 && !loose) c->ok = 0;
  }
  if (nint == 0 && (nfrac == 0 || !loose)) c->ok = 0;
  double v = ip + fp / scale;
  if (!(v <= limit)) c->ok = 0;
  return c->ok ? v : 0;
}

/* ---- calendar arithmetic (proleptic Gregorian, UTC) ---- */

static long floor_div(long a, long b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }
static int is_leap(long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(long y, int m) {
  static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return dim[m - 1] + (m == 2 && is_leap(y));
}

/* Days from 1970-01-01 to y-m-d. */
static long days_from_civil(long y, int m, int d) {
  static const int before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
  long p = y - 1, q = 1969; /* whole years before y, and before 1970 */
  long days = (p * 365 + floor_div(p, 4) - floor_div(p, 100) + floor_div(p, 400)) -
              (q * 365 + q / 4 - q / 100 + q / 400);
  return days + before[m - 1] + (m > 2 && is_leap(y)) + d - 1;
}

/* Validates a broken-down UTC time and turns it into epoch seconds. */
static int civil_to_epoch(long y, int mo, int d, int h, int mi, int s, double *out) {
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return -1;
  if (h > 23 || mi > 59 || s > 60) return -1; /* 60: a leap second */
  *out = (double)days_from_civil(y, mo, d) * 86400.0 + h * 3600 + mi * 60 + s;
  return 0;
}

/* RFC 9110 5.6.7: a two-digit year is the latest year with those digits that
 * is not more than 50 years after now. Without a usable now, 70-99 are 19xx. */
static long full_year(int yy, double now_epoch) {
  if (!(now_epoch >= 0 && now_epoch < 253402300800.0)) return yy >= 70 ? 1900 + yy : 2000 + yy;
  long days = (long)floor(now_epoch / 86400.0);
  long y = 1970 + days / 366; /* an underestimate, walked up */
  while (days_from_civil(y + 1, 1, 1) <= days) y++;
  long top = y + 50;
  return top - (top - yy) % 100;
}

/* ---- HTTP dates ---- */

static const char *const wkday_short[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const wkday_long[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                         "Friday", "Saturday", "Sunday"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static void time_of_day(cursor *c, int *h, int *mi, int *s) {
  *h = fixed_digits(c, 2);
  expect(c, ':');
  *mi = fixed_digits(c, 2);
  expect(c, ':');
  *s = fixed_digits(c, 2);
}

static void gmt(cursor *c) {
  static const char *const zone[] = {"GMT"};
  one_of(c, zone, 1);
}

/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" (sep ' ', four-digit year) and
 * RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" (sep '-', two-digit year). */
static int comma_date(cursor c, const char *const *days, char sep, int year_digits,
                      double now_epoch, double *out) {
  int d, mo, y, h, mi, s;
  one_of(&c, days, 7);
  expect(&c, ',');
  expect(&c, ' ');
  d = fixed_digits(&c, 2);
  expect(&c, sep);
  mo = one_of(&c, month_names, 12) + 1;
  expect(&c, sep);
  y = fixed_digits(&c, year_digits);
  expect(&c, ' ');
  time_of_day(&c, &h, &mi, &s);
  expect(&c, ' ');
  gmt(&c);
  if (!at_end(&c)) return -1;
  return civil_to_epoch(year_digits == 2 ? full_year(y, now_epoch) : y, mo, d, h, mi, s, out);
}

/* "Sun Nov  6 08:49:37 1994" */
static int asctime_date(cursor c, double *out) {
  int d, mo, y, h, mi, s;
  one_of(&c, wkday_short, 7);
  expect(&c, ' ');
  mo = one_of(&c, month_names, 12) + 1;
  expect(&c, ' ');
  if (c.ok && c.p < c.end && *c.p == ' ') {
    c.p++;
    d = fixed_digits(&c, 1);
  } else {
    d = fixed_digits(&c, 2);
  }
  expect(&c, ' ');
  time_of_day(&c, &h, &mi, &s);
  expect(&c, ' ');
  y = fixed_digits(&c, 4);
  return at_end(&c) ? civil_to_epoch(y, mo, d, h, mi, s, out) : -1;
}

static int http_date_at(const char *s, size_t n, double now_epoch, double *out_epoch) {
  cursor c = cursor_trimmed(s, n);
  double v;
  if (!c.ok) return -1;
  if (comma_date(c, wkday_short, ' ', 4, now_epoch, &v) &&
      comma_date(c, wkday_long, '-', 2, now_epoch, &v) && asctime_date(c, &v))
    return -1;
  *out_epoch = v;
  return 0;
}

int lr_parse_http_date(const char *s, size_t n, double *out_epoch) {
  return http_date_at(s, n, NAN, out_epoch);
}

/* ---- RFC 3339 ---- */

int lr_parse_rfc3339(const char *s, size_t n, double *out_epoch) {
  cursor c = cursor_trimmed(s, n);
  int y, mo, d, h, mi, sec, offset = 0;
  double frac = 0, v;
  y = fixed_digits(&c, 4);
  expect(&c, '-');
  mo = fixed_digits(&c, 2);
  expect(&c, '-');
  d = fixed_digits(&c, 2);
  if (c.ok && c.p < c.end && (*c.p == 'T' || *c.p == 't' || *c.p == ' ')) c.p++;
  else c.ok = 0;
  time_of_day(&c, &h, &mi, &sec);
  if (c.ok && c.p < c.end && *c.p == '.') {
    cursor f = {c.p, c.end, 1}; /* "." then digits: a decimal "0.xxx" read from the dot */
    frac = decimal(&f, 1, 1);
    if (!f.ok) return -1;
    c.p = f.p;
  }
  if (c.ok && c.p < c.end && (*c.p == 'Z' || *c.p == 'z')) {
    c.p++;
  } else if (c.ok && c.p < c.end && (*c.p == '+' || *c.p == '-')) {
    int sign = *c.p++ == '-' ? -1 : 1;
    int oh = fixed_digits(&c, 2);
    expect(&c, ':');
    int om = fixed_digits(&c, 2);
    if (oh > 23 || om > 59) return -1;
    offset = sign * (oh * 3600 + om * 60);
  } else {
    c.ok = 0;
  }
  if (!at_end(&c) || civil_to_epoch(y, mo, d, h, mi, sec, &v)) return -1;
  *out_epoch = v + frac - offset;
  return 0;
}

/* ---- plain numbers and durations ---- */

/* The whole trimmed text is one decimal no larger than limit. */
static int whole_decimal(const char *s, size_t n, double limit, double *out) {
  cursor c = cursor_trimmed(s, n);
  double v = decimal(&c, 0, limit);
  if (!at_end(&c)) return -1;
  *out = v;
  return 0;
}

int lr_parse_seconds(const char *s, size_t n, double *out_s) {
  return whole_decimal(s, n, MAX_SECONDS, out_s);
}

int lr_parse_retry_after_ms(const char *s, size_t n, double *out_delay_s) {
  double ms;
  if (whole_decimal(s, n, MAX_SECONDS * 1000, &ms)) return -1;
  *out_delay_s = ms / 1000;
  return 0;
}

int lr_parse_go_duration(const char *s, size_t n, double *out_s) {
  static const struct {
    const char *name;
    double mul, div; /* seconds = value * mul / div; dividing keeps "20ms" exact */
  } units[] = {{"ns", 1, 1e9}, {"us", 1, 1e6}, {"\xC2\xB5s", 1, 1e6}, /* micro sign */
               {"\xCE\xBCs", 1, 1e6},                                   /* Greek mu */
               {"ms", 1, 1e3}, {"s", 1, 1},         {"m", 60, 1},      {"h", 3600, 1}};
  const int nunits = (int)(sizeof units / sizeof units[0]);
  cursor c = cursor_trimmed(s, n);
  double total = 0;
  if (c.ok && c.end - c.p == 1 && *c.p == '0') {
    *out_s = 0;
    return 0;
  }
  while (c.ok && c.p < c.end) {
    double v = decimal(&c, 1, 1e21);
    const char *unit = c.p;
    while (c.p < c.end && *c.p != '.' && !is_digit(*c.p)) c.p++;
    int i = 0;
    for (; i < nunits; i++) {
      const char *u = units[i].name, *q = unit;
      while (*u && q < c.p && *q == *u) q++, u++;
      if (!*u && q == c.p) break;
    }
    if (!c.ok || i == nunits) return -1;
    total += v * units[i].mul / units[i].div;
    if (!(total <= MAX_SECONDS)) return -1;
  }
  if (!c.ok) return -1;
  *out_s = total;
  return 0;
}

/* An absolute moment turned into a delay from now (0 once it passed). */
static int delay_until(double epoch, double now_epoch, double *out_delay_s) {
  double d = epoch - now_epoch;
  if (!isfinite(d)) return -1;
  d = d > 0 ? d : 0;
  if (d > MAX_SECONDS) return -1;
  *out_delay_s = d;
  return 0;
}

int lr_parse_retry_after(const char *s, size_t n, double now_epoch, double *out_delay_s) {
  double v;
  if (lr_parse_seconds(s, n, &v) == 0) {
    *out_delay_s = v;
    return 0;
  }
  if (http_date_at(s, n, now_epoch, &v)) return -1;
  return delay_until(v, now_epoch, out_delay_s);
}

int lr_parse_reset(const char *s, size_t n, double now_epoch, double *out_delay_s) {
  double v;
  if (lr_parse_seconds(s, n, &v) == 0) {
    if (v > 1e9) return delay_until(v, now_epoch, out_delay_s);
    *out_delay_s = v;
    return 0;
  }
  return lr_parse_go_duration(s, n, out_delay_s);
}
