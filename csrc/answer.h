/* What an answer says, read the same way by both executors (libcurl in C,
 * cosockets in Lua): how a stream event is to be taken, whether a chunk
 * finishes the answer, and the usage it reports. Scans, not parses.
 * Sans-I/O: no clock, no I/O, no Lua. */
#ifndef LR_ANSWER_H
#define LR_ANSWER_H
#include <stddef.h>

#include "sse.h"

#define LR_MAX_JSON_DEPTH 512

typedef enum {
  LR_SEV_DATA,  /* a chunk for the caller: a JSON object */
  LR_SEV_SKIP,  /* nothing for the caller: a keep-alive event without data, or anything after [DONE] */
  LR_SEV_DONE,  /* data: [DONE] */
  LR_SEV_ERROR, /* an "error" event, or {"error": ...}: the server failed mid-stream */
  LR_SEV_BAD    /* data that is not a JSON object */
} lr_stream_event_class;

/* How to take event ev of a stream that has (done = 1) or has not seen [DONE]. */
lr_stream_event_class lr_answer_classify(const lr_sse_event *ev, int done);
/* Some "finish_reason" of the chunk is not null: the answer is complete. */
int lr_answer_has_finish_reason(const char *b, size_t n);
/* usage.total_tokens of a (valid JSON) answer or chunk, or -1. */
double lr_answer_usage_tokens(const char *b, size_t n);

#endif
