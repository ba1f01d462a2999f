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

/* A chat request body before it is sent: 0 when it is one JSON object within
 * max_depth, with valid UTF-8 strings and a non-empty "messages" array; else
 * -1 and a sentence in msg naming the field ("messages[2].content is not
 * valid UTF-8 (byte 17)": arrays counted from 1, bytes of the decoded string). */
int lr_json_check_request(const char *s, size_t n, int max_depth, char *msg, size_t msgn);

#endif
