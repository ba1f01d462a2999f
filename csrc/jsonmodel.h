/* Rewriting a request body's model for the endpoint it goes to, on the raw
 * bytes: no decode, no re-encode, every other byte as it was. */
#ifndef LR_JSONMODEL_H
#define LR_JSONMODEL_H
#include <stddef.h>

/* In the JSON object body[0..n), replaces the value of every TOP-LEVEL member
 * named "model" (keys compare with their escapes decoded) whose value is a
 * string by the JSON string of name[0..nlen) (", \ and control bytes
 * escaped, other bytes as they are). Members inside other values (a
 * message's "model"), white space and every other byte stay as they were; a
 * "model" that is no string (null, a number) is left alone; duplicate
 * top-level "model" strings are all rewritten, so whichever one a server
 * keeps names the endpoint's model.
 * Returns 1 with a malloc'd *out (*out_len bytes, NUL after them) when it
 * rewrote something; 0 when there was nothing to rewrite (no such member,
 * each already says name, or body is no object, or is cut short); -1 when
 * out of memory. Reads nothing outside body[0..n) whatever the bytes. */
int lr_json_set_model(const char *body, size_t n, const char *name, size_t nlen, char **out, size_t *out_len);

#endif
