/* Percent-encoding of what goes into a request's URL (endpoints[i].query,
 * the model in a "{model}" path), one rule for both executors: RFC 3986
 * unreserved bytes stay, every other byte becomes %XX. Sans-I/O. */
#ifndef LR_URLENC_H
#define LR_URLENC_H
#include <stddef.h>

/* Encodes n bytes of s into out (room for 3 n bytes); returns the length written. */
size_t lr_url_encode(char *out, const char *s, size_t n);

/* url with each "{model}" replaced by the encoded model; malloc'd and
 * NUL-terminated, NULL when out of memory. */
char *lr_url_expand(const char *url, const char *model, size_t mlen);

#endif
