/* RFC 8259 validation in one pass. The only memory is a bit per nesting
 * level (object or array), on the C stack, so hostile input cannot make it
 * recurse or allocate. */
#include "jsoncheck.h"

#include <string.h>

#define MAX_NEST 65536

typedef const unsigned char *ptr;

static ptr skip_ws(ptr p, ptr end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int is_hex(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* One UTF-8 sequence starting at a byte >= 0x80: shortest form, no
 * surrogates, at most U+10FFFF. Returns the byte after it or NULL. */
static ptr utf8_char(ptr p, ptr end) {
  unsigned char c = *p, lo = 0x80, hi = 0xBF;
  int more;
  if (c >= 0xC2 && c <= 0xDF) more = 1;
  else if (c >= 0xE0 && c <= 0xEF) more = 2;
  else if (c >= 0xF0 && c <= 0xF4) more = 3;
  else return NULL;
  if (c == 0xE0) lo = 0xA0;      /* overlong */
  else if (c == 0xED) hi = 0x9F; /* surrogates */
  else if (c == 0xF0) lo = 0x90; /* overlong */
  else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
  if (end - p <= more || p[1] < lo || p[1] > hi) return NULL;
  for (int i = 2; i <= more; i++)
    if (p[i] < 0x80 || p[i] > 0xBF) return NULL;
  return p + 1 + more;
}

/* The rest of a string after its opening quote; the byte after the closing one. */
static ptr string_rest(ptr p, ptr end) {
  while (p < end) {
    unsigned char c = *p;
    if (c == '"') return p + 1;
    if (c == '\\') {
      if (++p == end) return NULL;
      if (*p == 'u') {
        if (end - p < 5) return NULL;
        for (int i = 1; i <= 4; i++)
          if (!is_hex(p[i])) return NULL;
        p += 5;
      } else if (*p && strchr("\"\\/bfnrt", *p)) {
        p++;
      } else {
        return NULL;
      }
    } else if (c < 0x20) {
      return NULL;
    } else if (c < 0x80) {
      p++;
    } else if (!(p = utf8_char(p, end))) {
      return NULL;
    }
  }
  return NULL;
}

static ptr digits(ptr p, ptr end) {
  while (p < end && is_digit(*p)) p++;
  return p;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static ptr number(ptr p, ptr end) {
  ptr q;
  if (p < end && *p == '-') p++;
  if (p == end || !is_digit(*p)) return NULL;
  p = *p == '0' ? p + 1 : digits(p, end);
  if (p < end && *p == '.') {
    q = digits(p + 1, end);
    if (q == p + 1) return NULL;
    p = q;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    q = digits(p, end);
    if (q == p) return NULL;
    p = q;
  }
  return p;
}

static ptr literal(ptr p, ptr end, const char *word, size_t len) {
  return (size_t)(end - p) >= len && memcmp(p, word, len) == 0 ? p + len : NULL;
}

int lr_json_check(const char *s, size_t n, int max_depth) {
  unsigned char in_object[MAX_NEST / 8]; /* bit d: level d+1 is an object */
  enum { VALUE, KEY, AFTER } want = VALUE;
  ptr p = (ptr)s, end;
  int depth = 0;
  if (n == 0) return -1;
  end = p + n;
  if (max_depth > MAX_NEST) max_depth = MAX_NEST;
  for (;;) {
    p = skip_ws(p, end);
    if (want == AFTER) { /* a value ended: what may follow it */
      if (depth == 0) return p == end ? 0 : -1;
      if (p == end) return -1;
      int object = in_object[(depth - 1) >> 3] >> ((depth - 1) & 7) & 1;
      if (*p == ',') {
        p++;
        want = object ? KEY : VALUE;
      } else if (*p == (object ? '}' : ']')) {
        p++;
        depth--;
      } else {
        return -1;
      }
      continue;
    }
    if (p == end) return -1;
    if (want == KEY) {
      if (*p != '"' || !(p = string_rest(p + 1, end))) return -1;
      p = skip_ws(p, end);
      if (p == end || *p != ':') return -1;
      p++;
      want = VALUE;
      continue;
    }
    switch (*p) {
    case '{':
    case '[': {
      int object = *p == '{';
      if (depth >= max_depth) return -1;
      if (object) in_object[depth >> 3] |= (unsigned char)(1u << (depth & 7));
      else in_object[depth >> 3] &= (unsigned char)~(1u << (depth & 7));
      depth++;
      p = skip_ws(p + 1, end);
      if (p < end && *p == (object ? '}' : ']')) {
        p++;
        depth--;
        want = AFTER;
      } else {
        want = object ? KEY : VALUE;
      }
      continue;
    }
    case '"': p = string_rest(p + 1, end); break;
    case 't': p = literal(p, end, "true", 4); break;
    case 'f': p = literal(p, end, "false", 5); break;
    case 'n': p = literal(p, end, "null", 4); break;
    default: p = number(p, end); break;
    }
    if (!p) return -1;
    want = AFTER;
  }
}

int lr_json_check_object(const char *s, size_t n, int max_depth) {
  ptr p;
  if (n == 0) return -1;
  p = skip_ws((ptr)s, (ptr)s + n);
  if (p == (ptr)s + n || *p != '{') return -1;
  return lr_json_check(s, n, max_depth);
}
