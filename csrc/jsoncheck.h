/* Is this body JSON? A single-pass, allocation-free RFC 8259 validator, used
 * to decide whether a 2xx answer is a success before Lua decodes it, to bound
 * what decoding it may cost, and to check a request before it is sent. */
#ifndef LR_JSONCHECK_H
#define LR_JSONCHECK_H
#include <stddef.h>
#include <stdint.h>

/* What decoding into Lua tables costs, in bytes, roughly and on the high
 * side (Lua 5.4 + lua-cjson, malloc overhead included): each array or
 * object, each other value, each object key; string bytes come on top. */
#define LR_JSON_COST_CONTAINER 96
#define LR_JSON_COST_VALUE 24
#define LR_JSON_COST_KEY 48

typedef enum { LR_JSON_OK, LR_JSON_SYNTAX, LR_JSON_UTF8, LR_JSON_DEPTH, LR_JSON_COST } lr_json_status;

typedef struct {
  int max_depth;     /* arrays/objects nested deeper: LR_JSON_DEPTH (above 65536 counts as 65536) */
  uint64_t max_cost; /* estimated decode cost above it: LR_JSON_COST; 0: no cap */
} lr_json_limits;

typedef struct {
  lr_json_status status;
  size_t offset; /* the byte that broke the rule (n when OK) */
  uint64_t cost; /* the estimated decode cost of what was read */
} lr_json_result;

/* Validates s[0..n): exactly one JSON value (surrounding white space
 * allowed, strings valid UTF-8) within the limits. Never reads past s[n-1]. */
/* The length of the UTF-8 sequence at p (1 for ASCII; shortest form, no
 * surrogates, at most U+10FFFF), or 0 when the bytes there are not one.
 * Reads nothing at or past end. */
size_t lr_utf8_len(const unsigned char *p, const unsigned char *end);

/* One escape of a JSON string: p is at its backslash, end bounds the
 * string's content. *cp gets the code point it stands for (a \uD8xx\uDCxx
 * pair combined, a lone surrogate as itself), or LR_JSON_BAD_ESCAPE when
 * JSON has no such escape. Returns the bytes it took (at least 1). */
#define LR_JSON_BAD_ESCAPE 0xFFFFFFFFu
size_t lr_json_escape(const unsigned char *p, const unsigned char *end, uint32_t *cp);
/* The UTF-8 form of cp (at most U+10FFFF) in b; returns its length (1 to 4). */
size_t lr_utf8_put(uint32_t cp, unsigned char b[4]);

/* Does the content k[0..kend) of a JSON string (between its quotes) decode
 * to name[0..n)? A bad escape never matches. */
int lr_json_key_is(const unsigned char *k, const unsigned char *kend, const unsigned char *name, size_t n);

/* The raw text of the top-level member `name` of the JSON object s[0..n)
 * (the last one when the name repeats, as cjson keeps it); keys compare with
 * their escapes decoded. 0 and the value's *off and *len, or -1 when s is no
 * object or has no such member. Meant for valid JSON; on any other bytes it
 * reads nothing out of bounds and its answer means nothing. */
int lr_json_member(const char *s, size_t n, const char *name, size_t name_len, size_t *off, size_t *len);

/* s[0..n) as a whole number of at most 15 digits, else -1. */
double lr_json_whole(const char *s, size_t n);

/* Walkers over valid JSON (reqcheck.c): past white space; past the string
 * whose quote is at p; past the value at p. */
const unsigned char *lr_json_skip_ws(const unsigned char *p, const unsigned char *end);
const unsigned char *lr_json_string_end(const unsigned char *p, const unsigned char *end);
const unsigned char *lr_json_value_end(const unsigned char *p, const unsigned char *end);
/* One walk over the top-level members of the object s[0..n): for each of the
 * k names, the last value under it (off[j], len[j]; found[j] = 1). -1 when s
 * is no object or a member is cut short, else 0. */
int lr_json_members(const char *s, size_t n, int k, const char *const *names, const size_t *lens, size_t *off,
                    size_t *len, int *found);

lr_json_status lr_json_scan(const char *s, size_t n, const lr_json_limits *lim, lr_json_result *res);

/* 0 when s[0..n) is one valid JSON value nested at most max_depth deep, else -1. */
int lr_json_check(const char *s, size_t n, int max_depth);

/* The same, and the top-level value must be an object. */
int lr_json_check_object(const char *s, size_t n, int max_depth);

#define LR_JSON_DECODE_FACTOR 3
/* What decoding a 2xx answer may cost: LR_JSON_DECODE_FACTOR (3) x max_response_bytes. An answer of
 * JSON floats (embeddings), the densest real one, estimates at 1 to 2 x its
 * size; small nested arrays at 20 to 30 x. */
uint64_t lr_json_decode_budget(size_t max_response_bytes);

/* A non-streamed 2xx answer: 0 when it is one JSON object within max_depth
 * and the decode budget, else -1 and a sentence for people in msg. */
int lr_json_check_answer(const char *s, size_t n, int max_depth, size_t max_response_bytes, char *msg,
                         size_t msgn);

#endif
