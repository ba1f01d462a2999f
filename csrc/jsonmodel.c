/* See jsonmodel.h. */
#include "jsonmodel.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsoncheck.h"

typedef const unsigned char *ptr;

static ptr skip_ws(ptr p, ptr end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* Just past the closing quote of the string whose quote is at p, or NULL
 * when it is cut short. */
static ptr string_end(ptr p, ptr end) {
  for (p++; p < end; p++) {
    if (*p == '\\') p++;
    else if (*p == '"') return p + 1;
  }
  return NULL;
}

/* Just past the value at p, or NULL when it is cut short or unbalanced. */
static ptr value_end(ptr p, ptr end) {
  if (*p == '"') return string_end(p, end);
  if (*p != '{' && *p != '[') {
    while (p < end && !strchr(",]} \t\r\n", *p)) p++;
    return p;
  }
  long depth = 0;
  while (p < end) {
    if (*p == '"') {
      if (!(p = string_end(p, end))) return NULL;
      continue;
    }
    if (*p == '{' || *p == '[') depth++;
    else if (*p == '}' || *p == ']') depth--;
    p++;
    if (depth == 0) return p;
  }
  return NULL;
}

/* The JSON string of name into o (when o is not NULL); returns its length. */
static size_t encode(const unsigned char *name, size_t n, char *o) {
  size_t k = 0;
  if (o) o[k] = '"';
  k++;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = name[i];
    if (c == '"' || c == '\\') {
      if (o) {
        o[k] = '\\';
        o[k + 1] = (char)c;
      }
      k += 2;
    } else if (c < 0x20) {
      if (o) snprintf(o + k, 7, "\\u%04x", c);
      k += 6;
    } else {
      if (o) o[k] = (char)c;
      k++;
    }
  }
  if (o) o[k] = '"';
  return k + 1;
}

/* Walks the top-level members of the object body s..end, counting the
 * "model" members whose value is a string that does not say name; with o,
 * also writes the body with each of them replaced by name's JSON string (enc
 * bytes, as encode gives it). Returns that count, or -1 when the body is no
 * object or is cut short; *len: the length of the result. One walk measures,
 * a second writes: every such member is rewritten, however many there are. */
static long walk(ptr s, ptr end, const char *name, size_t nlen, size_t enc, char *o, size_t *len) {
  static const unsigned char model[] = "model";
  ptr p = skip_ws(s, end), at = s;
  long k = 0;
  size_t w = 0;
  if (p >= end || *p != '{') return -1;
  p = skip_ws(p + 1, end);
  while (p < end && *p == '"') {
    ptr ks = p + 1, ke = string_end(p, end);
    if (!ke) return -1;
    p = skip_ws(ke, end);
    if (p >= end || *p != ':') return -1;
    p = skip_ws(p + 1, end);
    if (p >= end) return -1;
    ptr ve = value_end(p, end);
    if (!ve) return -1;
    if (*p == '"' && lr_json_key_is(ks, ke - 1, model, 5) &&
        !lr_json_key_is(p + 1, ve - 1, (const unsigned char *)name, nlen)) {
      if (o) {
        memcpy(o + w, at, (size_t)(p - at));
        encode((const unsigned char *)name, nlen, o + w + (size_t)(p - at));
      }
      w += (size_t)(p - at) + enc;
      at = ve;
      k++;
    }
    p = skip_ws(ve, end);
    if (p >= end || *p != ',') break;
    p = skip_ws(p + 1, end);
  }
  if (o) memcpy(o + w, at, (size_t)(end - at));
  *len = w + (size_t)(end - at);
  return k;
}

int lr_json_set_model(const char *body, size_t n, const char *name, size_t nlen, char **out, size_t *out_len) {
  ptr s = (ptr)body, end = s + n;
  size_t enc = encode((const unsigned char *)name, nlen, NULL), len;
  *out = NULL;
  *out_len = 0;
  if (walk(s, end, name, nlen, enc, NULL, &len) <= 0) return 0;
  char *o = malloc(len + 1);
  if (!o) return -1;
  walk(s, end, name, nlen, enc, o, &len);
  o[len] = 0;
  *out = o;
  *out_len = len;
  return 1;
}
