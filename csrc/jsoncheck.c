/* RFC 8259 validation in one pass. The only memory is a bit per nesting
 * level (object or array), on the C stack, so hostile input cannot make it
 * recurse or allocate. The same pass estimates what decoding would cost;
 * a request that fails is walked once more to name the field at fault. */
#include "jsoncheck.h"

#include <stdint.h>
#include <stdio.h>
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

size_t lr_utf8_len(const unsigned char *p, const unsigned char *end) {
  unsigned char c = *p, lo = 0x80, hi = 0xBF;
  size_t more;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) more = 1;
  else if (c >= 0xE0 && c <= 0xEF) more = 2;
  else if (c >= 0xF0 && c <= 0xF4) more = 3;
  else return 0;
  if (c == 0xE0) lo = 0xA0;      /* overlong */
  else if (c == 0xED) hi = 0x9F; /* surrogates */
  else if (c == 0xF0) lo = 0x90; /* overlong */
  else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
  if ((size_t)(end - p) <= more || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i <= more; i++)
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  return 1 + more;
}

/* One UTF-8 sequence starting at a byte >= 0x80: the byte after it or NULL. */
static inline ptr utf8_char(ptr p, ptr end) {
  size_t len = lr_utf8_len(p, end);
  return len ? p + len : NULL;
}

/* Where and why a string failed: the offending byte, and whether it broke
 * UTF-8 (rather than the JSON grammar). */
typedef struct {
  ptr bad;
  int utf8;
} fault;

/* The rest of a string after its opening quote; the byte after the closing one. */
static ptr string_rest(ptr p, ptr end, fault *f) {
  while (p < end) {
    unsigned char c = *p;
    if (c == '"') return p + 1;
    if (c == '\\') {
      if (++p == end) break;
      if (*p == 'u') {
        if (end - p < 5) break;
        for (int i = 1; i <= 4; i++)
          if (!is_hex(p[i])) {
            f->bad = p + i;
            return NULL;
          }
        p += 5;
      } else if (*p && strchr("\"\\/bfnrt", *p)) {
        p++;
      } else {
        f->bad = p;
        return NULL;
      }
    } else if (c < 0x20) {
      f->bad = p;
      return NULL;
    } else if (c < 0x80) {
      p++;
    } else {
      ptr q = utf8_char(p, end);
      if (!q) {
        f->bad = p;
        f->utf8 = 1;
        return NULL;
      }
      p = q;
    }
  }
  f->bad = end; /* cut short */
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

/* The estimated decode cost: every value, and string bytes (keys' too). */
static int charge(lr_json_result *res, const lr_json_limits *lim, uint64_t c, ptr at, ptr start) {
  res->cost += c;
  if (lim->max_cost && res->cost > lim->max_cost) {
    res->status = LR_JSON_COST;
    res->offset = (size_t)(at - start);
    return -1;
  }
  return 0;
}

lr_json_status lr_json_scan(const char *s, size_t n, const lr_json_limits *lim, lr_json_result *res) {
  unsigned char in_object[MAX_NEST / 8]; /* bit d: level d+1 is an object */
  enum { VALUE, KEY, AFTER } want = VALUE;
  ptr start = (ptr)s, p = start, end = start + n, q;
  fault f = {NULL, 0};
  int depth = 0, max_depth = lim->max_depth > MAX_NEST ? MAX_NEST : lim->max_depth;
  res->status = LR_JSON_SYNTAX;
  res->offset = 0;
  res->cost = 0;
  if (n == 0) return res->status;
  for (;;) {
    p = skip_ws(p, end);
    if (want == AFTER) { /* a value ended: what may follow it */
      if (depth == 0) {
        if (p != end) break;
        res->status = LR_JSON_OK;
        res->offset = n;
        return LR_JSON_OK;
      }
      if (p == end) break;
      int object = in_object[(depth - 1) >> 3] >> ((depth - 1) & 7) & 1;
      if (*p == ',') {
        p++;
        want = object ? KEY : VALUE;
      } else if (*p == (object ? '}' : ']')) {
        p++;
        depth--;
      } else {
        break;
      }
      continue;
    }
    if (p == end) break;
    if (want == KEY) {
      if (*p != '"') break;
      if (!(q = string_rest(p + 1, end, &f))) goto bad_string;
      if (charge(res, lim, LR_JSON_COST_KEY + (uint64_t)(q - p), p, start)) return res->status;
      p = skip_ws(q, end);
      if (p == end || *p != ':') break;
      p++;
      want = VALUE;
      continue;
    }
    switch (*p) {
    case '{':
    case '[': {
      int object = *p == '{';
      if (depth >= max_depth) {
        res->status = LR_JSON_DEPTH;
        res->offset = (size_t)(p - start);
        return res->status;
      }
      if (charge(res, lim, LR_JSON_COST_CONTAINER, p, start)) return res->status;
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
    case '"':
      if (!(q = string_rest(p + 1, end, &f))) goto bad_string;
      break;
    case 't': q = literal(p, end, "true", 4); break;
    case 'f': q = literal(p, end, "false", 5); break;
    case 'n': q = literal(p, end, "null", 4); break;
    default: q = number(p, end); break;
    }
    if (!q) break;
    if (charge(res, lim, LR_JSON_COST_VALUE + (*p == '"' ? (uint64_t)(q - p) : 0), p, start)) return res->status;
    p = q;
    want = AFTER;
  }
  res->offset = (size_t)(p - start); /* the grammar broke here */
  return res->status;
bad_string:
  res->status = f.utf8 ? LR_JSON_UTF8 : LR_JSON_SYNTAX;
  res->offset = (size_t)(f.bad - start);
  return res->status;
}

int lr_json_check(const char *s, size_t n, int max_depth) {
  lr_json_limits lim = {max_depth, 0};
  lr_json_result res;
  return lr_json_scan(s, n, &lim, &res) == LR_JSON_OK ? 0 : -1;
}

static int starts_object(const char *s, size_t n) {
  ptr p = skip_ws((ptr)s, (ptr)s + n);
  return p < (ptr)s + n && *p == '{';
}

int lr_json_check_object(const char *s, size_t n, int max_depth) {
  if (n == 0 || !starts_object(s, n)) return -1;
  return lr_json_check(s, n, max_depth);
}

uint64_t lr_json_decode_budget(size_t max_response_bytes) {
  return LR_JSON_DECODE_FACTOR * (uint64_t)max_response_bytes;
}

int lr_json_check_answer(const char *s, size_t n, int max_depth, size_t max_response_bytes, char *msg,
                         size_t msgn) {
  lr_json_limits lim = {max_depth, lr_json_decode_budget(max_response_bytes)};
  lr_json_result res;
  lr_json_scan(s, n, &lim, &res);
  switch (res.status) {
  case LR_JSON_OK:
    if (starts_object(s, n)) return 0;
    snprintf(msg, msgn, "the response body is not a JSON object");
    break;
  case LR_JSON_UTF8:
    snprintf(msg, msgn, "the response body is not valid UTF-8 (byte %zu)", res.offset + 1);
    break;
  case LR_JSON_DEPTH:
    snprintf(msg, msgn, "the response body nests deeper than %d arrays or objects", max_depth);
    break;
  case LR_JSON_COST:
    snprintf(msg, msgn,
             "the response body is too costly to decode: more than %llu bytes estimated "
             "(the cap is %d x max_response_bytes)",
             (unsigned long long)lim.max_cost, LR_JSON_DECODE_FACTOR);
    break;
  default:
    snprintf(msg, msgn, "the response body is not a JSON object (invalid JSON at byte %zu)", res.offset + 1);
    break;
  }
  return -1;
}

/* ---- requests ------------------------------------------------------------- */

/* The end of a string that starts at p (its quote) in valid JSON. */
static ptr string_end(ptr p, ptr end) {
  for (p++; p < end && *p != '"'; p++)
    if (*p == '\\') p++;
  return p < end ? p + 1 : end;
}

/* The end of the value at p, in valid JSON. */
static ptr value_end(ptr p, ptr end) {
  int depth = 0;
  do {
    if (*p == '"') {
      p = string_end(p, end);
      continue;
    }
    if (*p == '[' || *p == '{') depth++;
    else if (*p == ']' || *p == '}') depth--;
    p++;
    if (depth == 0)
      while (p < end && !strchr(",]} \t\r\n", *p)) p++; /* the rest of a scalar */
  } while (p < end && depth > 0);
  return p;
}

static int hex4(ptr p, uint32_t *v) {
  uint32_t x = 0;
  for (int i = 0; i < 4; i++) {
    if (!is_hex(p[i])) return 0;
    x = x << 4 | (uint32_t)(p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
  }
  *v = x;
  return 1;
}

size_t lr_json_escape(const unsigned char *p, const unsigned char *end, uint32_t *cp) {
  static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
  if (p + 1 >= end) {
    *cp = LR_JSON_BAD_ESCAPE;
    return 1;
  }
  if (p[1] != 'u') {
    const char *f = p[1] ? strchr(from, p[1]) : NULL;
    *cp = f ? (uint32_t)(unsigned char)to[f - from] : LR_JSON_BAD_ESCAPE;
    return 2;
  }
  uint32_t hi, lo;
  if (p + 6 > end || !hex4(p + 2, &hi)) {
    *cp = LR_JSON_BAD_ESCAPE;
    return 2;
  }
  *cp = hi;
  if (hi >= 0xD800 && hi <= 0xDBFF && p + 12 <= end && p[6] == '\\' && p[7] == 'u' && hex4(p + 8, &lo) &&
      lo >= 0xDC00 && lo <= 0xDFFF) {
    *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    return 12;
  }
  return 6;
}

size_t lr_utf8_put(uint32_t cp, unsigned char b[4]) {
  if (cp < 0x80) {
    b[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    b[0] = (unsigned char)(0xC0 | cp >> 6);
    b[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    b[0] = (unsigned char)(0xE0 | cp >> 12);
    b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    b[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  b[0] = (unsigned char)(0xF0 | cp >> 18);
  b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
  b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
  b[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Does the JSON string whose content is k[0..kend) decode to name[0..n)? */
int lr_json_key_is(ptr k, ptr kend, const unsigned char *name, size_t n) {
  size_t i = 0;
  unsigned char b[4];
  while (k < kend) {
    if (*k != '\\') {
      if (i >= n || name[i++] != *k++) return 0;
      continue;
    }
    uint32_t cp;
    k += lr_json_escape(k, kend, &cp);
    if (cp == LR_JSON_BAD_ESCAPE) return 0;
    size_t m = lr_utf8_put(cp, b);
    if (i + m > n || memcmp(name + i, b, m) != 0) return 0;
    i += m;
  }
  return i == n;
}

/* One walk over the top-level members of the object s[0..n): for each of the
 * k names, the last value under it (off[j], len[j]; found[j] = 1). -1 when s
 * is no object or a member is cut short, else 0. */
static int members(const char *s, size_t n, int k, const char *const *names, const size_t *lens, size_t *off,
                   size_t *len, int *found) {
  ptr p = (ptr)s, end = p + n;
  for (int j = 0; j < k; j++) found[j] = 0;
  p = skip_ws(p, end);
  if (p >= end || *p != '{') return -1;
  p = skip_ws(p + 1, end);
  while (p < end && *p == '"') {
    ptr ks = p + 1, ke = string_end(p, end); /* just past the closing quote */
    p = skip_ws(ke, end);
    if (p >= end || *p != ':') return -1;
    p = skip_ws(p + 1, end);
    if (p >= end) return -1;
    ptr ve = value_end(p, end);
    for (int j = 0; j < k; j++)
      if (ke > ks && lr_json_key_is(ks, ke - 1, (const unsigned char *)names[j], lens[j])) {
        off[j] = (size_t)(p - (ptr)s);
        len[j] = (size_t)(ve - p);
        found[j] = 1;
      }
    p = skip_ws(ve, end);
    if (p >= end || *p != ',') break;
    p = skip_ws(p + 1, end);
  }
  return 0;
}

int lr_json_member(const char *s, size_t n, const char *name, size_t name_len, size_t *off, size_t *len) {
  int found;
  return members(s, n, 1, &name, &name_len, off, len, &found) == 0 && found ? 0 : -1;
}

double lr_json_whole(const char *s, size_t n) {
  double v = 0;
  size_t i = 0;
  while (i < n && i < 15 && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
  return i > 0 && i == n ? v : -1;
}

/* Exported for reqcheck.c (request checks): the same walkers over valid JSON. */
const unsigned char *lr_json_skip_ws(const unsigned char *p, const unsigned char *end) { return skip_ws(p, end); }
const unsigned char *lr_json_string_end(const unsigned char *p, const unsigned char *end) { return string_end(p, end); }
const unsigned char *lr_json_value_end(const unsigned char *p, const unsigned char *end) { return value_end(p, end); }
int lr_json_members(const char *s, size_t n, int k, const char *const *names, const size_t *lens, size_t *off,
                    size_t *len, int *found) {
  return members(s, n, k, names, lens, off, len, found);
}
