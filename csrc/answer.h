/* What an answer says, read the same way by both executors (libcurl in C,
 * cosockets in Lua): how a stream event is to be taken, whether a chunk
 * finishes the answer, and the usage it reports. Scans, not parses.
 * Sans-I/O: no clock, no I/O, no Lua. */
#ifndef LR_ANSWER_H
#define LR_ANSWER_H
#include <stddef.h>

#include "errors.h"
#include "sse.h"

#define LR_MAX_JSON_DEPTH 512

/* What can end a stream early, found while decoding it. */
typedef enum {
  LR_SF_NONE,
  LR_SF_ERROR_EVENT,     /* an "error" event, or {"error": ...} */
  LR_SF_BAD_EVENT,       /* data that is not a JSON object */
  LR_SF_TOO_BIG,
  LR_SF_RESP_FAILED,     /* Responses: a response.failed event */
  LR_SF_RESP_INCOMPLETE, /* Responses: a response.incomplete event */
  LR_SF_NOMEM
} lr_stream_fault;
/* The faults whose event's data is kept (fault_text) for the error's body. */
#define LR_SF_KEEPS_TEXT(f) \
  ((f) == LR_SF_ERROR_EVENT || (f) == LR_SF_BAD_EVENT || (f) == LR_SF_RESP_FAILED || (f) == LR_SF_RESP_INCOMPLETE)

/* The cap on one SSE event: 4 MiB, and never more than the whole answer may be. */
size_t lr_answer_max_event(size_t max_response_bytes);
/* The attempt's outcome a fault makes: the kind it is reported as, and a
 * message for people (into buf; max_event: the decoder's cap). */
lr_error_kind lr_answer_fault(lr_stream_fault f, size_t max_event, char *buf, size_t n);

typedef enum {
  LR_SEV_DATA,  /* a chunk for the caller: a JSON object */
  LR_SEV_SKIP,  /* nothing for the caller: a keep-alive event without data, or anything after [DONE] */
  LR_SEV_DONE,  /* data: [DONE] */
  LR_SEV_ERROR, /* an "error" event, or {"error": ...}: the server failed mid-stream */
  LR_SEV_BAD    /* data that is not a JSON object */
} lr_stream_event_class;

/* How to take event ev of a stream that has (done = 1) or has not seen [DONE]. */
lr_stream_event_class lr_answer_classify(const lr_sse_event *ev, int done);
/* The type of a Responses stream event: its event: field, else its data's
 * top-level "type" string (raw, between the quotes). 0, or -1 when neither. */
int lr_answer_event_type(const lr_sse_event *ev, const char **type, size_t *len);
/* Some "finish_reason" of the chunk is not null: the answer is complete. */
int lr_answer_has_finish_reason(const char *b, size_t n);
/* usage.total_tokens of a (valid JSON) answer or chunk, or -1. */
double lr_answer_usage_tokens(const char *b, size_t n);
/* The top-level "usage" of a valid JSON answer: its prompt_tokens (else
 * Responses' input_tokens), completion_tokens (else output_tokens) and total_tokens (each -1 when absent or not a whole
 * number). 0, or -1 when the answer has no usage object. */
int lr_answer_usage(const char *b, size_t n, double *prompt, double *completion, double *total);

/* What an OpenAI-shaped error body says: {"error": {"message", "type",
 * "param", "code"}}, or vLLM's older top-level {"object": "error", ...}. Each
 * span is the raw JSON text of a string or number member (len 0 when absent,
 * null or another type). 0, or -1 when b is not one JSON object of at most
 * LR_ERROR_BODY bytes holding such an error. */
typedef struct {
  size_t off, len;
} lr_span;
typedef struct {
  lr_span code, type, param;
} lr_upstream_error;
int lr_answer_error(const char *b, size_t n, lr_upstream_error *e);

#endif
