/* Secrets out of server text: a JSON-aware pass and a plain-text pass (see
 * scrub.h). Nothing here recurses; memory is the output and two scratch
 * buffers, each at most a few times the input. */
#include "scrub.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "jsoncheck.h"

#define REDACTED LR_SCRUB_REDACTED
#define REDACTED_LEN (sizeof REDACTED - 1)
#define REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD */
#define TRIM_ABOVE (1u << 20)

typedef struct buf {
  char *p;
  size_t len, cap;
  int oom;
} buf;

typedef struct secret {
  char *p;
  size_t n;
} secret;

struct lr_scrub {
  secret *sec; /* longest first, so a secret that contains another goes whole */
  int n, cap;
  unsigned char first[256]; /* first[c]: some secret starts with byte c */
  buf out, dec, str;        /* the result; a decoded JSON string; that string scrubbed */
};

typedef const unsigned char *ptr;

static void put(buf *b, const void *src, size_t n) {
  if (b->oom || n == 0) return;
  if (n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
      if (cap > SIZE_MAX / 2) {
        b->oom = 1;
        return;
      }
      cap *= 2;
    }
    char *q = realloc(b->p, cap);
    if (!q) {
      b->oom = 1;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void reset(buf *b) {
  b->len = 0;
  b->oom = 0;
}

static void release(buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

lr_scrub *lr_scrub_new(void) { return calloc(1, sizeof(lr_scrub)); }

void lr_scrub_free(lr_scrub *s) {
  if (!s) return;
  for (int i = 0; i < s->n; i++) free(s->sec[i].p);
  free(s->sec);
  release(&s->out);
  release(&s->dec);
  release(&s->str);
  free(s);
}

void lr_scrub_trim(lr_scrub *s) {
  buf *all[] = {&s->out, &s->dec, &s->str};
  for (int i = 0; i < 3; i++)
    if (all[i]->cap > TRIM_ABOVE) release(all[i]);
}

static int add_form(lr_scrub *s, const char *p, size_t n) {
  for (int i = 0; i < s->n; i++)
    if (s->sec[i].n == n && memcmp(s->sec[i].p, p, n) == 0) return 0;
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 8;
    secret *q = realloc(s->sec, (size_t)cap * sizeof *q);
    if (!q) return -1;
    s->sec = q;
    s->cap = cap;
  }
  char *copy = malloc(n);
  if (!copy) return -1;
  memcpy(copy, p, n);
  int at = s->n;
  while (at > 0 && s->sec[at - 1].n < n) {
    s->sec[at] = s->sec[at - 1];
    at--;
  }
  s->sec[at] = (secret){copy, n};
  s->n++;
  s->first[(unsigned char)p[0]] = 1;
  return 0;
}

/* The secret as it reads inside a JSON string written by an encoder that
 * escapes '/' (cjson) or does not. */
static int add_escaped(lr_scrub *s, const char *p, size_t n, int slash) {
  buf e = {0};
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '"' || c == '\\' || (slash && c == '/')) put(&e, "\\", 1);
    put(&e, &c, 1);
  }
  int r = e.oom ? -1 : (e.len == n ? 0 : add_form(s, e.p, e.len));
  free(e.p);
  return r;
}

int lr_scrub_add(lr_scrub *s, const char *key, size_t n) {
  if (n == 0) return 0;
  if (add_form(s, key, n) != 0 || add_escaped(s, key, n, 1) != 0 || add_escaped(s, key, n, 0) != 0)
    return -1;
  return 0;
}

static int is_space(unsigned c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* "Bearer", white space, a token: the end of the token, or 0. */
static size_t bearer_end(ptr p, size_t i, size_t n) {
  static const char word[] = "bearer";
  if (n - i < 8) return 0;
  for (size_t k = 0; k < 6; k++)
    if ((p[i + k] | 0x20) != word[k]) return 0;
  size_t j = i + 6, t;
  while (j < n && is_space(p[j])) j++;
  if (j == i + 6) return 0;
  for (t = j; t < n && !is_space(p[t]) && !strchr("\"'\\,;", p[t]); t++) {
  }
  return t > j ? t : 0;
}

/* How many of the last bytes of p[0..n) are the first bytes of a secret (a
 * text cut inside it), from LR_SCRUB_MIN_TAIL on; 0 if none. */
static size_t tail_len(const lr_scrub *s, ptr p, size_t n) {
  size_t best = 0;
  for (int i = 0; i < s->n; i++) {
    const secret *k = &s->sec[i];
    size_t m = k->n - 1 < n ? k->n - 1 : n;
    for (; m >= LR_SCRUB_MIN_TAIL && m > best; m--) {
      if (p[n - m] == (unsigned char)k->p[0] && memcmp(p + n - m, k->p, m) == 0) {
        best = m;
        break;
      }
    }
  }
  return best;
}

/* The secret that starts at p[i], longest first; NULL if none. */
static const secret *secret_at(const lr_scrub *s, ptr p, size_t i, size_t n) {
  if (!s->first[p[i]]) return NULL;
  for (int k = 0; k < s->n; k++) {
    const secret *x = &s->sec[k];
    if (x->n <= n - i && memcmp(p + i, x->p, x->n) == 0) return x;
  }
  return NULL;
}

/* Copies p[0..n) to o with secrets, bearer tokens (flag) and a cut secret at
 * the end (flag) redacted and invalid UTF-8 made U+FFFD. 1 if anything changed. */
static int scan(const lr_scrub *s, ptr p, size_t n, int flags, buf *o) {
  size_t cut = n, i = 0, run = 0;
  int changed = 0;
  if (n == 0) return 0; /* p may be NULL (an empty buffer) */
  if (flags & LR_SCRUB_TAIL) {
    size_t m = tail_len(s, p, n);
    if (m) {
      cut = n - m;
      changed = 1;
    }
  }
  while (i < cut) {
    unsigned c = p[i];
    const secret *x = secret_at(s, p, i, cut);
    size_t end = 0, len;
    if (x) {
      put(o, p + run, i - run);
      put(o, REDACTED, REDACTED_LEN);
      i += x->n;
    } else if ((flags & LR_SCRUB_BEARER) && (c | 0x20) == 'b' && (end = bearer_end(p, i, cut))) {
      put(o, p + run, i + 6 - run);
      put(o, " " REDACTED, REDACTED_LEN + 1);
      i = end;
    } else if ((len = lr_utf8_len(p + i, p + cut))) {
      i += len;
      continue;
    } else {
      put(o, p + run, i - run);
      put(o, REPLACEMENT, 3);
      i++;
    }
    run = i;
    changed = 1;
  }
  put(o, p + run, cut - run);
  if (cut < n) put(o, REDACTED, REDACTED_LEN);
  return changed;
}

int lr_scrub_text(lr_scrub *s, const char *in, size_t n, int flags, const char **out, size_t *out_n) {
  reset(&s->out);
  int changed = scan(s, (ptr)in, n, flags, &s->out);
  if (s->out.oom) return -1;
  *out = changed ? s->out.p : in;
  *out_n = changed ? s->out.len : n;
  return 0;
}

/* The content of a JSON string token (between its quotes) decoded into o.
 * 1 if it was not valid JSON (bad escape, lone surrogate, raw control byte):
 * it must then be written anew. Invalid UTF-8 is left for scan(). */
static int decode(ptr p, size_t n, buf *o) {
  size_t i = 0, run = 0;
  int bad = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c >= 0x20 && c != '\\') {
      i++;
      continue;
    }
    put(o, p + run, i - run);
    if (c < 0x20) { /* kept, and escaped when written again */
      put(o, p + i, 1);
      bad = 1;
      i++;
    } else {
      uint32_t cp;
      unsigned char b[4];
      i += lr_json_escape(p + i, p + n, &cp);
      if (cp == LR_JSON_BAD_ESCAPE || (cp >= 0xD800 && cp <= 0xDFFF)) {
        put(o, REPLACEMENT, 3); /* an escape JSON does not have, or a lone surrogate (no UTF-8 form) */
        bad = 1;
      } else {
        put(o, (const char *)b, lr_utf8_put(cp, b));
      }
    }
    run = i;
  }
  put(o, p + run, n - run);
  return bad;
}

/* p[0..n) (valid UTF-8) as a JSON string token. */
static void encode(buf *o, ptr p, size_t n) {
  static const char hexd[] = "0123456789abcdef";
  size_t run = 0;
  put(o, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned c = p[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    put(o, p + run, i - run);
    run = i + 1;
    char e[6] = {'\\', (char)c, 0, 0, 0, 0};
    size_t len = 2;
    if (c == '\n') e[1] = 'n';
    else if (c == '\r') e[1] = 'r';
    else if (c == '\t') e[1] = 't';
    else if (c == '\b') e[1] = 'b';
    else if (c == '\f') e[1] = 'f';
    else if (c < 0x20) {
      memcpy(e + 1, "u00", 3);
      e[4] = hexd[c >> 4];
      e[5] = hexd[c & 15];
      len = 6;
    }
    put(o, e, len);
  }
  put(o, p + run, n - run);
  put(o, "\"", 1);
}

int lr_scrub_json(lr_scrub *s, const char *in, size_t n, int flags, const char **out, size_t *out_n) {
  ptr p = (ptr)in;
  buf *o = &s->out;
  size_t i = 0, done = 0; /* p[0..done) is in o, once dirty */
  int dirty = 0;
  reset(o);
  while (i < n) {
    unsigned c = p[i];
    if (c == '\r' || c == '\n') { /* white space between tokens: the result is one line */
      put(o, p + done, i - done);
      put(o, " ", 1);
      done = ++i;
      dirty = 1;
      continue;
    }
    if (c != '"') {
      i++;
      continue;
    }
    size_t k = i + 1;
    while (k < n && p[k] != '"') k += p[k] == '\\' ? 2 : 1;
    if (k >= n) break; /* a string cut short: not JSON */
    reset(&s->dec);
    reset(&s->str);
    int bad = decode(p + i + 1, k - i - 1, &s->dec);
    int changed = scan(s, (ptr)s->dec.p, s->dec.len, flags & LR_SCRUB_BEARER, &s->str);
    if (s->dec.oom || s->str.oom) return -1;
    if (bad || changed) {
      put(o, p + done, i - done);
      encode(o, (ptr)s->str.p, s->str.len);
      done = k + 1;
      dirty = 1;
    }
    i = k + 1;
  }
  if (i >= n) {
    const char *res = in;
    size_t len = n;
    if (dirty) {
      put(o, p + done, n - done);
      if (o->oom) return -1;
      res = o->p;
      len = o->len;
    }
    if (lr_json_check(res, len, LR_MAX_JSON_DEPTH) == 0) {
      *out = res;
      *out_n = len;
      return 1;
    }
  }
  return lr_scrub_text(s, in, n, flags, out, out_n) < 0 ? -1 : 0;
}
