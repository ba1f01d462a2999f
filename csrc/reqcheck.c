/* Request checks per api (reqcheck.h): the validator's verdict, the field
 * at fault named for people, the api's required field and its token
 * estimate. Split from jsoncheck.c along the request seam. */
#include "reqcheck.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "jsoncheck.h"

typedef const unsigned char *ptr;

#define skip_ws lr_json_skip_ws
#define string_end lr_json_string_end
#define value_end lr_json_value_end
#define PATH_LEVELS 32 /* levels named in a message; deeper ones show as "..." */

/* The byte of the decoded string (1-based) that raw position `at` of the
 * string starting after its quote at `p` falls on: escapes count as what
 * they decode to. */
static size_t decoded_byte(ptr p, ptr at) {
  size_t k = 0;
  unsigned char b[4];
  while (p < at) {
    if (*p != '\\') {
      p++;
      k++;
    } else {
      uint32_t cp;
      p += lr_json_escape(p, at, &cp);
      k += cp == LR_JSON_BAD_ESCAPE ? 1 : lr_utf8_put(cp, b);
    }
  }
  return k + 1;
}

typedef struct {
  char *b;
  size_t n, len;
} text;

static void put(text *t, const char *s, size_t n) {
  while (n-- && t->len + 1 < t->n) t->b[t->len++] = *s++;
  t->b[t->len] = 0;
}

/* A key as a path step: .name when it reads as one, else ["..."] (shown
 * printable and cut short). */
static void put_key(text *t, ptr k, size_t n, int first) {
  int plain = n > 0 && !(k[0] >= '0' && k[0] <= '9');
  for (size_t i = 0; i < n; i++)
    if (!(k[i] == '_' || (k[i] >= '0' && k[i] <= '9') || ((k[i] | 0x20) >= 'a' && (k[i] | 0x20) <= 'z'))) plain = 0;
  if (plain) {
    if (!first) put(t, ".", 1);
    put(t, (const char *)k, n > 40 ? 40 : n);
    return;
  }
  put(t, "[\"", 2);
  for (size_t i = 0; i < n && i < 40; i++) put(t, k[i] >= 0x20 && k[i] < 0x7f && k[i] != '"' && k[i] != '\\' ? (const char *)k + i : "?", 1);
  put(t, n > 40 ? "...\"]" : "\"]", n > 40 ? 5 : 2);
}

/* Names the place of byte `at` (inside a string) of valid-up-to-there JSON:
 * writes the path of the value (messages[2].content, arrays counted from 1)
 * and returns the byte within the string, or 0 when `at` is in a key. */
static size_t locate(ptr s, ptr end, ptr at, text *t) {
  struct {
    int object, want_key;
    long index;
    ptr key;
    size_t key_len;
  } st[PATH_LEVELS];
  int depth = 0;
  ptr p = s;
  while (p < at) {
    unsigned char c = *p;
    int top = depth - 1, named = top < PATH_LEVELS;
    if (c == '{' || c == '[') {
      if (depth < PATH_LEVELS) {
        st[depth].object = c == '{';
        st[depth].want_key = c == '{';
        st[depth].index = 1;
        st[depth].key = NULL;
      }
      depth++;
      p++;
    } else if (c == '}' || c == ']') {
      depth--;
      p++;
    } else if (c == ',') {
      if (top >= 0 && named) {
        if (st[top].object) st[top].want_key = 1;
        else st[top].index++;
      }
      p++;
    } else if (c == '"') {
      ptr e = string_end(p, end);
      int key = top >= 0 && named && st[top].object && st[top].want_key;
      if (e > at) { /* the string holding `at` */
        for (int d = 0; d < depth && d < PATH_LEVELS; d++) {
          if (d == depth - 1 && key) break;
          if (st[d].object) {
            put_key(t, st[d].key, st[d].key_len, d == 0);
          } else {
            char b[32];
            put(t, b, (size_t)snprintf(b, sizeof b, "[%ld]", st[d].index));
          }
        }
        if (depth > PATH_LEVELS) put(t, "...", 3);
        return key ? 0 : decoded_byte(p + 1, at);
      }
      if (key) {
        st[top].key = p + 1;
        st[top].key_len = (size_t)(e - p - 2);
        st[top].want_key = 0;
      }
      p = e;
    } else {
      p++;
    }
  }
  return 0;
}

static const char *kind_of_value(ptr p, ptr end) {
  switch (*p) {
  case '{': return skip_ws(p + 1, end) < end && *skip_ws(p + 1, end) == '}' ? "an empty object: an empty Lua table encodes as {}" : "an object";
  case '[': return "an empty array";
  case '"': return "a string";
  case 't':
  case 'f': return "a boolean";
  case 'n': return "null";
  default: return "a number";
  }
}

/* Each api's output-token fields, the first found counting. */
static const char *const OUT_FIELDS[LR_API__COUNT][2] = {
    {"max_completion_tokens", "max_tokens"}, {NULL, NULL}, {"max_output_tokens", NULL}, {"max_tokens", NULL}};

double lr_json_estimate_tokens(const char *body, size_t n, lr_api api) {
  double est = (double)(n / 4);
  if ((unsigned)api >= LR_API__COUNT || !OUT_FIELDS[api][0]) return est;
  const char *const *names = OUT_FIELDS[api];
  size_t lens[2] = {strlen(names[0]), names[1] ? strlen(names[1]) : 0};
  size_t off[2], len[2];
  int found[2];
  if (lr_json_members(body, n, names[1] ? 2 : 1, names, lens, off, len, found) != 0) return est;
  int j = found[0] ? 0 : names[1] && found[1] ? 1 : -1; /* the first name first, in one walk */
  if (j >= 0) {
    double out = lr_json_whole(body + off[j], len[j]);
    if (out > 0) est += out;
  }
  return est;
}

/* Each api's required field and what it must be. */
static const struct {
  const char *name, *what;
  int string_ok, empty_string_ok;
} REQUIRED[LR_API__COUNT] = {
    {"messages", "a non-empty array of messages", 0, 0},
    {"input", "a non-empty string or array of strings or tokens", 1, 0},
    {"input", "a non-empty string or array of input items", 1, 0},
    {"prompt", "a string or a non-empty array of strings or tokens", 1, 1},
};

int lr_json_check_request(const char *s, size_t n, lr_api api, int max_depth, char *msg, size_t msgn) {
  if ((unsigned)api >= LR_API__COUNT) {
    snprintf(msg, msgn, "unknown api");
    return -1;
  }
  lr_json_limits lim = {max_depth, 0};
  lr_json_result res;
  ptr start = (ptr)s, end = start + n;
  switch (lr_json_scan(s, n, &lim, &res)) {
  case LR_JSON_OK: break;
  case LR_JSON_UTF8: {
    char where[160];
    text w = {where, sizeof where, 0};
    size_t byte = locate(start, end, start + res.offset, &w);
    if (byte) snprintf(msg, msgn, "%s is not valid UTF-8 (byte %zu)", w.len ? where : "the request", byte);
    else snprintf(msg, msgn, "a key of %s is not valid UTF-8", w.len ? where : "the request");
    return -1;
  }
  case LR_JSON_DEPTH:
    snprintf(msg, msgn, "the request nests deeper than %d arrays or objects", max_depth);
    return -1;
  default:
    snprintf(msg, msgn, "the request body is not valid JSON (byte %zu)", res.offset + 1);
    return -1;
  }
  ptr p = skip_ws(start, end);
  if (*p != '{') {
    snprintf(msg, msgn, "the request must be a JSON object");
    return -1;
  }
  int seen = 0;
  const char *name = REQUIRED[api].name;
  size_t name_len = strlen(name);
  for (p = skip_ws(p + 1, end); p < end && *p == '"';) { /* the members of the top object */
    ptr ke = string_end(p, end), v = skip_ws(skip_ws(ke, end) + 1, end); /* past ':' */
    if ((size_t)(ke - p) == name_len + 2 && memcmp(p + 1, name, name_len) == 0) {
      seen = 1;
      ptr first = skip_ws(v + 1, end);
      int ok = (*v == '[' && *first != ']') ||
               (*v == '"' && REQUIRED[api].string_ok && (REQUIRED[api].empty_string_ok || v[1] != '"'));
      if (!ok) {
        snprintf(msg, msgn, "%s must be %s (got %s)", name, REQUIRED[api].what,
                 *v == '"' && v[1] == '"' ? "an empty string" : kind_of_value(v, end));
        return -1;
      }
    }
    p = skip_ws(value_end(v, end), end);
    if (p < end && *p == ',') p = skip_ws(p + 1, end);
  }
  if (!seen) {
    snprintf(msg, msgn, "%s is required (%s)", name, REQUIRED[api].what);
    return -1;
  }
  return 0;
}
