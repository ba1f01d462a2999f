/* Is this body JSON? A single-pass, allocation-free RFC 8259 validator, used
 * to decide whether a 2xx answer is a success before Lua decodes it. */
#ifndef LR_JSONCHECK_H
#define LR_JSONCHECK_H
#include <stddef.h>

/* 0 when s[0..n) is exactly one JSON value (surrounding white space allowed,
 * strings valid UTF-8) nested at most max_depth arrays/objects deep, else -1.
 * Never reads past s[n-1]. Depths above 65536 are treated as 65536. */
int lr_json_check(const char *s, size_t n, int max_depth);

/* The same, and the top-level value must be an object. */
int lr_json_check_object(const char *s, size_t n, int max_depth);

#endif
