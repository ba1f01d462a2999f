/* See urlenc.h. */
#include "urlenc.h"

#include <stdlib.h>
#include <string.h>

static int unreserved(unsigned char b) {
  return (b >= '0' && b <= '9') || ((b | 32) >= 'a' && (b | 32) <= 'z') || b == '-' || b == '.' || b == '_' ||
         b == '~';
}

size_t lr_url_encode(char *out, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  char *o = out;
  for (size_t k = 0; k < n; k++) {
    unsigned char b = (unsigned char)s[k];
    if (unreserved(b)) {
      *o++ = (char)b;
    } else {
      *o++ = '%';
      *o++ = hex[b >> 4];
      *o++ = hex[b & 15];
    }
  }
  return (size_t)(o - out);
}

char *lr_url_expand(const char *url, const char *model, size_t mlen) {
  static const char ph[] = "{model}";
  const size_t pl = sizeof ph - 1;
  size_t n = 0, ul = strlen(url);
  for (const char *p = url; (p = strstr(p, ph)) != NULL; p += pl) n++;
  char *out = malloc(ul + n * 3 * mlen + 1), *o = out;
  if (!out) return NULL;
  for (const char *p = url; *p;) {
    if (strncmp(p, ph, pl) != 0) {
      *o++ = *p++;
      continue;
    }
    o += lr_url_encode(o, model, mlen);
    p += pl;
  }
  *o = 0;
  return out;
}
