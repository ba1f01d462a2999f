/* Secrets out of text a server sent back (some 401 bodies quote the key).
 * Two passes over untrusted bytes, sans-I/O (no Lua, no clock, no I/O):
 *  - lr_scrub_json walks a JSON text and copies it verbatim except the string
 *    tokens that must change: one holding a secret (its escaped and \u-escaped
 *    forms included: the string is decoded before the search), invalid UTF-8,
 *    a bad escape, a lone surrogate or a raw control byte. Those are decoded,
 *    scrubbed, and re-encoded as valid JSON strings. Numbers, literals and
 *    punctuation are never touched; CR and LF between tokens become spaces,
 *    so the result is one line. Valid JSON in, valid UTF-8 JSON out.
 *  - lr_scrub_text, for messages and for bodies that are not JSON: every
 *    secret (and its JSON-escaped forms) replaced, invalid UTF-8 made U+FFFD.
 * Secrets shorter than LR_SCRUB_MIN_SECRET are refused by the config
 * (lua/llmrelay/config.lua): a short one would match ordinary words. */
#ifndef LR_SCRUB_H
#define LR_SCRUB_H
#include <stddef.h>

#define LR_SCRUB_REDACTED "[REDACTED]"
#define LR_SCRUB_MIN_SECRET 8
/* a text that ends with at least this many first bytes of a secret was cut
 * inside it (LR_SCRUB_TAIL) */
#define LR_SCRUB_MIN_TAIL 4

/* Flags. BEARER: "Bearer <token>" (any case) loses the token, whoever's it
 * is. TAIL: a text that ends with the start of a secret loses that start
 * (a body cut short); applies to text, never inside a complete JSON text. */
enum { LR_SCRUB_BEARER = 1, LR_SCRUB_TAIL = 2 };

typedef struct lr_scrub lr_scrub;

lr_scrub *lr_scrub_new(void);
void lr_scrub_free(lr_scrub *s);
/* Adds a secret (and its JSON-escaped forms). Empty ones are ignored,
 * repeats kept once. 0, or -1 when out of memory. */
int lr_scrub_add(lr_scrub *s, const char *key, size_t n);

/* The scrubbed text: *out points to `in` itself when nothing changed, else
 * to the scrubber's buffer (valid until its next call). 0, or -1 when out of
 * memory. */
int lr_scrub_text(lr_scrub *s, const char *in, size_t n, int flags, const char **out, size_t *out_n);

/* As lr_scrub_text for a body that may be JSON: 1 when the result is one
 * JSON value (lr_json_check at LR_MAX_JSON_DEPTH; strings valid UTF-8),
 * 0 when the input is not JSON and the result is lr_scrub_text's, -1 when
 * out of memory. */
int lr_scrub_json(lr_scrub *s, const char *in, size_t n, int flags, const char **out, size_t *out_n);

/* Gives back buffers grown past 1 MiB (after a large body). */
void lr_scrub_trim(lr_scrub *s);

#endif
