/* Rate-limit hints: the response headers of one attempt, normalised.
 * Sans-I/O: fed raw header lines as they arrive from any transport. */
#ifndef LR_HINTS_H
#define LR_HINTS_H
#include <stddef.h>

/* The longest x-request-id kept; a longer one, or one with other than visible
 * ASCII, is dropped (it goes into errors, results and a gateway's headers). */
#define LR_REQUEST_ID_MAX 128

typedef struct lr_hints {
  double retry_after_s;        /* Retry-After, seconds from now; < 0 unknown */
  double retry_after_ms_s;     /* retry-after-ms, in seconds; < 0 unknown */
  double reset_requests_s;     /* x-ratelimit-reset-requests / anthropic -reset; < 0 unknown */
  double reset_tokens_s;       /* x-ratelimit-reset-tokens; < 0 unknown */
  double reset_s;              /* x-ratelimit-reset (relays); < 0 unknown */
  double limit_requests;       /* x-ratelimit-limit-requests; < 0 unknown */
  double limit_tokens;         /* x-ratelimit-limit-tokens; < 0 unknown */
  double remaining_requests;   /* x-ratelimit-remaining-requests, anthropic-...-requests-remaining; < 0 unknown */
  double remaining_tokens;     /* x-ratelimit-remaining-tokens; < 0 unknown */
  int should_retry;            /* x-should-retry: -1 unknown, 0 false, 1 true */
  int event_stream;            /* Content-Type is text/event-stream */
  char request_id[LR_REQUEST_ID_MAX + 1]; /* x-request-id, or "" */
} lr_hints;

void lr_hints_init(lr_hints *h);

/* Splits one raw header line ("Name: value\r\n", CRLF optional) into a name
 * and a value with surrounding white space trimmed. Returns 0, or -1 for a
 * status line, a blank line, a line with no colon or an empty name. */
int lr_header_split(const char *line, size_t n, const char **name, size_t *name_len,
                    const char **value, size_t *value_len);

/* Feeds one header (name matched case-insensitively). Unknown headers and
 * unparsable values are ignored: a hint that cannot be read is "unknown",
 * and "-1" (Azure) is "unknown" too. A status line ("HTTP/1.1 100 ...")
 * resets the hints, so only the final response's headers count. */
void lr_hints_feed(lr_hints *h, const char *name, size_t name_len, const char *value,
                   size_t value_len, double now_epoch);
void lr_hints_feed_line(lr_hints *h, const char *line, size_t n, double now_epoch);
/* Feeds a raw header block (lines ending in LF or CRLF, the status line included). */
void lr_hints_feed_block(lr_hints *h, const char *block, size_t n, double now_epoch);

/* The delay the server asked for before this endpoint takes another request:
 * retry-after-ms, else Retry-After, else — only when a remaining-* count is 0 —
 * the matching reset (the larger of the exhausted ones), else x-ratelimit-reset
 * when remaining-requests is 0. < 0 when the server said nothing usable. */
double lr_hints_server_delay(const lr_hints *h);
/* s[0..n) equals the lower-case word w, ignoring ASCII case. */
int lr_equals_ci(const char *s, size_t n, const char *w);

#endif
