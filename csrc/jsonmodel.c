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

#define MAX_SPANS 64 /* "model" members rewritten at most; more are left as they are */

int lr_json_set_model(const char *body, size_t n, const char *name, size_t nlen, char **out, size_t *out_len) {
  static const unsigned char model[] = "model";
  ptr s = (ptr)body, end = s + n, p = skip_ws(s, end);
  ptr from[MAX_SPANS], to[MAX_SPANS];
  int k = 0;
  *out = NULL;
  *out_len = 0;
  if (p >= end || *p != '{') return 0;
  p = skip_ws(p + 1, end);
  while (p < end && *p == '"') {
    ptr ks = p + 1, ke = string_end(p, end);
    if (!ke) return 0;
    p = skip_ws(ke, end);
    if (p >= end || *p != ':') return 0;
    p = skip_ws(p + 1, end);
    if (p >= end) return 0;
    ptr ve = value_end(p, end);
    if (!ve) return 0;
    if (*p == '"' && k < MAX_SPANS && lr_json_key_is(ks, ke - 1, model, 5) &&
        !lr_json_key_is(p + 1, ve - 1, (const unsigned char *)name, nlen)) {
      from[k] = p;
      to[k++] = ve;
    }
    p = skip_ws(ve, end);
    if (p >= end || *p != ',') break;
    p = skip_ws(p + 1, end);
  }
  if (k == 0) return 0;
  size_t enc = encode((const unsigned char *)name, nlen, NULL), len = n;
  for (int j = 0; j < k; j++) len = len - (size_t)(to[j] - from[j]) + enc;
  char *o = malloc(len + 1);
  if (!o) return -1;
  size_t w = 0;
  ptr at = s;
  for (int j = 0; j < k; j++) {
    memcpy(o + w, at, (size_t)(from[j] - at));
    w += (size_t)(from[j] - at);
    w += encode((const unsigned char *)name, nlen, o + w);
    at = to[j];
  }
  memcpy(o + w, at, (size_t)(end - at));
  w += (size_t)(end - at);
  o[w] = 0;
  *out = o;
  *out_len = w;
  return 1;
}
