/* The RESP2 codec. See resp.h. Lines (type byte to CRLF) are gathered in a
 * fixed buffer inside the decoder; bulk payloads are copied straight from the
 * caller's slice into the caller's arena. Every check happens at the byte
 * that decides it, so the outcome is the same however the input is split. */
#include "resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { S_LINE, S_LINE_LF, S_BULK, S_BULK_CR, S_BULK_LF, S_DONE, S_ERROR };

void lr_resp_init(lr_resp *d, lr_resp_elem *elems, size_t max_elems, char *arena, size_t arena_cap,
                  size_t max_bulk) {
  memset(d, 0, sizeof *d);
  d->elems = elems;
  d->max_elems = max_elems;
  d->arena = arena;
  d->arena_cap = arena_cap;
  d->max_bulk = max_bulk ? max_bulk : LR_RESP_DEFAULT_MAX_BULK;
  d->state = S_LINE;
}

void lr_resp_next(lr_resp *d) {
  if (d->state == S_ERROR) return;
  d->n_elems = d->arena_len = d->line_len = 0;
  d->bulk_left = d->bytes_in = 0;
  d->depth = 0;
  d->state = S_LINE;
}

static lr_resp_event fail(lr_resp *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static lr_resp_event fail(lr_resp *d, const char *fmt, ...) {
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(d->message, sizeof d->message, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < sizeof d->message)
    snprintf(d->message + n, sizeof d->message - (size_t)n, " at byte %llu", (unsigned long long)(d->bytes_in - 1));
  d->state = S_ERROR;
  return LR_RESP_ERROR;
}

/* A decimal int64: an optional '-', then 1 to 19 digits (leading zeros
 * allowed, as strtoll does), within range. 0 or an error message. */
static const char *parse_int(const char *s, size_t n, int64_t *out) {
  int neg = n > 0 && s[0] == '-';
  uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  size_t i = (size_t)neg;
  if (i == n) return "malformed integer (no digits)";
  for (; i < n; i++) {
    unsigned digit = (unsigned)(unsigned char)s[i] - '0';
    if (digit > 9) return "malformed integer (not a digit)";
    if (v > (limit - digit) / 10) return "integer out of int64 range";
    v = v * 10 + digit;
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return NULL;
}

/* Takes a slot for a new element (the cap counts every element). */
static lr_resp_elem *add(lr_resp *d, lr_resp_type type) {
  lr_resp_elem *e;
  if (d->n_elems >= d->max_elems) return NULL;
  e = &d->elems[d->n_elems++];
  e->type = type;
  e->integer = 0;
  e->str = NULL;
  e->len = 0;
  return e;
}

/* An element is complete: count it off its array, and close each array it
 * completes. DONE when nothing is open any more. */
static lr_resp_event complete(lr_resp *d) {
  while (d->depth > 0) {
    if (--d->left[d->depth - 1] > 0) {
      d->state = S_LINE;
      return LR_RESP_MORE;
    }
    d->depth--;
  }
  d->state = S_DONE;
  return LR_RESP_DONE;
}

static lr_resp_event too_many(lr_resp *d) {
  return fail(d, "more than %zu elements in one reply", d->max_elems);
}

/* A string element of n bytes, its room taken in the arena; NULL once it
 * failed (the message is set). */
static lr_resp_elem *string_elem(lr_resp *d, lr_resp_type type, size_t n) {
  lr_resp_elem *e;
  if (n > d->arena_cap - d->arena_len) {
    fail(d, "reply larger than the buffer (%zu bytes)", d->arena_cap);
    return NULL;
  }
  if (!(e = add(d, type))) {
    too_many(d);
    return NULL;
  }
  e->str = d->arena + d->arena_len;
  e->len = n;
  d->arena_len += n;
  return e;
}

static lr_resp_event text(lr_resp *d, lr_resp_type type) {
  char *to = d->arena + d->arena_len;
  size_t n = d->line_len - 1;
  if (!string_elem(d, type, n)) return LR_RESP_ERROR;
  if (n) memcpy(to, d->line + 1, n);
  return complete(d);
}

static lr_resp_event bulk_head(lr_resp *d, int64_t n) {
  if ((uint64_t)n > d->max_bulk) return fail(d, "bulk string of %lld bytes over the cap (%zu)", (long long)n, d->max_bulk);
  if (!string_elem(d, LR_RESP_BULK, (size_t)n)) return LR_RESP_ERROR;
  d->bulk_left = (uint64_t)n;
  d->state = n ? S_BULK : S_BULK_CR;
  return LR_RESP_MORE;
}

static lr_resp_event array_head(lr_resp *d, int64_t n) {
  lr_resp_elem *e;
  if (d->depth >= LR_RESP_MAX_DEPTH) return fail(d, "arrays nested deeper than %d", LR_RESP_MAX_DEPTH);
  if (!(e = add(d, LR_RESP_ARRAY))) return too_many(d);
  /* Refused now rather than after the elements the buffer cannot hold. */
  if ((uint64_t)n > d->max_elems - d->n_elems) return too_many(d);
  e->integer = n;
  if (n == 0) return complete(d);
  d->left[d->depth++] = n;
  d->state = S_LINE;
  return LR_RESP_MORE;
}

/* A whole line (without its CRLF) is in d->line. */
static lr_resp_event line(lr_resp *d) {
  int64_t v = 0;
  const char *err = NULL;
  char type = d->line[0];
  lr_resp_elem *e;
  if (type == '+') return text(d, LR_RESP_SIMPLE);
  if (type == '-') return text(d, LR_RESP_ERROR_STR);
  err = parse_int(d->line + 1, d->line_len - 1, &v);
  if (err) return fail(d, "%s after '%c'", err, type);
  if (type == '$' || type == '*') {
    if (v < -1) return fail(d, "negative %s length %lld", type == '$' ? "bulk" : "array", (long long)v);
    if (v == -1) {
      if (!add(d, type == '$' ? LR_RESP_NIL_BULK : LR_RESP_NIL_ARRAY)) return too_many(d);
      return complete(d);
    }
    return type == '$' ? bulk_head(d, v) : array_head(d, v);
  }
  if (!(e = add(d, LR_RESP_INTEGER))) return too_many(d);
  e->integer = v;
  return complete(d);
}

static lr_resp_event byte(lr_resp *d, char c) {
  switch (d->state) {
  case S_LINE:
    if (d->line_len == 0 && !memchr("+-:$*", c, 5))
      return fail(d, "unexpected type byte 0x%02x", (unsigned)(unsigned char)c);
    if (c == '\r') {
      d->state = S_LINE_LF;
      return LR_RESP_MORE;
    }
    if (c == '\n') return fail(d, "LF without CR ending a line");
    if (d->line_len >= LR_RESP_MAX_LINE) return fail(d, "line longer than %d bytes", LR_RESP_MAX_LINE);
    d->line[d->line_len++] = c;
    return LR_RESP_MORE;
  case S_LINE_LF:
    if (c != '\n') return fail(d, "CR without LF ending a line");
    d->state = S_LINE;
    {
      lr_resp_event ev = line(d);
      d->line_len = 0;
      return ev;
    }
  case S_BULK_CR:
    if (c != '\r') return fail(d, "bulk string not followed by CRLF (bad length?)");
    d->state = S_BULK_LF;
    return LR_RESP_MORE;
  default: /* S_BULK_LF */
    if (c != '\n') return fail(d, "bulk string not followed by CRLF (CR without LF)");
    return complete(d);
  }
}

lr_resp_event lr_resp_feed(lr_resp *d, const char *buf, size_t len, size_t *used) {
  size_t i = 0;
  *used = 0;
  if (d->state == S_DONE) return LR_RESP_DONE;
  if (d->state == S_ERROR) return LR_RESP_ERROR;
  while (i < len) {
    lr_resp_event ev;
    if (d->state == S_BULK) {
      size_t n = len - i < d->bulk_left ? len - i : (size_t)d->bulk_left;
      memcpy(d->arena + d->arena_len - d->bulk_left, buf + i, n);
      i += n;
      d->bytes_in += n;
      d->bulk_left -= n;
      if (d->bulk_left == 0) d->state = S_BULK_CR;
      continue;
    }
    d->bytes_in++;
    ev = byte(d, buf[i++]);
    if (ev != LR_RESP_MORE) {
      *used = i;
      return ev;
    }
  }
  *used = i;
  return LR_RESP_MORE;
}

/* The decimal digits of v. */
static size_t digits(size_t v) {
  size_t n = 1;
  while (v >= 10) v /= 10, n++;
  return n;
}

static char *put_head(char *p, char type, size_t v) {
  size_t n = digits(v), i;
  *p++ = type;
  for (i = n; i > 0; i--, v /= 10) p[i - 1] = (char)('0' + v % 10);
  p += n;
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

size_t lr_resp_encode(char *out, size_t cap, size_t argc, const char *const *argv, const size_t *argl) {
  size_t need = 3 + digits(argc), i;
  char *p = out;
  for (i = 0; i < argc; i++) need += 3 + digits(argl[i]) + argl[i] + 2;
  if (need > cap) return need;
  p = put_head(p, '*', argc);
  for (i = 0; i < argc; i++) {
    p = put_head(p, '$', argl[i]);
    if (argl[i]) memcpy(p, argv[i], argl[i]);
    p += argl[i];
    *p++ = '\r';
    *p++ = '\n';
  }
  return need;
}
