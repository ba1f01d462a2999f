/* A streamed answer's events as both executors keep them: the SSE decoder,
 * what the events said so far ([DONE], a finish_reason, usage, a fault) and
 * the data events not yet handed to the caller. Sans-I/O: no clock, no I/O,
 * no Lua. transport_curl.c and the OpenResty decoder (l_relay.c) feed bytes
 * here and read the state back. */
#ifndef LR_EVBUF_H
#define LR_EVBUF_H
#include <stddef.h>

#include "answer.h"
#include "api.h"
#include "errors.h"
#include "sse.h"

/* Data events, in order: each a 4-byte native-endian length then its bytes. */
typedef struct lr_evq {
  char *buf;
  size_t len, cap;
  long n; /* events in buf */
} lr_evq;

/* 0, or -1 when out of memory (q unchanged). */
int lr_evq_push(lr_evq *q, const char *data, size_t n);
/* The event at *off (start at 0), its length in *len; *off moves past it.
 * NULL after the last. Reads any buffer lr_evq_push filled. */
const char *lr_evq_next(const char *buf, size_t buf_len, size_t *off, size_t *len);
void lr_evq_clear(lr_evq *q); /* keeps the buffer */
void lr_evq_free(lr_evq *q);

typedef struct lr_evstream {
  lr_sse sse;
  int api;         /* an lr_api (init: chat); LR_API_RESPONSES reads named events, kept across resets */
  int saw_done, saw_finish;
  int fault;       /* an lr_stream_fault; sticks until reset (an executor may store its own codes above LR_SF_NOMEM) */
  double usage;    /* usage.total_tokens of the last chunk that carried it; < 0 none */
  char fault_text[LR_ERROR_BODY]; /* LR_SF_ERROR_EVENT, LR_SF_BAD_EVENT: the event's data (truncated) */
  size_t fault_text_len;
} lr_evstream;

/* max_event: the cap on one event (see lr_answer_max_event). */
void lr_evstream_init(lr_evstream *s, size_t max_event);
/* A new stream (the next attempt); keeps the decoder's buffers. */
void lr_evstream_reset(lr_evstream *s);
void lr_evstream_free(lr_evstream *s);
/* Decodes bytes: data events go to q, the rest is noted in s. Returns
 * s->fault (LR_SF_NONE: go on). Once a fault is set, nothing more is read. */
int lr_evstream_feed(lr_evstream *s, lr_evq *q, const char *b, size_t n);
/* The stream so far is a whole answer, no fault: for Responses a
 * response.completed event came; for the others [DONE] or a finish_reason. */
int lr_evstream_complete(const lr_evstream *s);

#endif
