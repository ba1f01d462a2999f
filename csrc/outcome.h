/* An attempt's outcome, shaped once for both executors: the executor hands
 * over what it saw (how the transfer ended, the status, the body or the
 * stream's decoder) and gets back the error kind, the message, whether the
 * body is what was asked for, its usage and the text to keep for the
 * request's message. Sans-I/O: no clock, no I/O, no Lua. See executor.h. */
#ifndef LR_OUTCOME_H
#define LR_OUTCOME_H
#include <stddef.h>

#include "errors.h"
#include "evbuf.h"
#include "relay.h"

typedef enum {
  LR_END_ANSWER,     /* the answer came (a buffered body, or a stream that ended) */
  LR_END_ERROR,      /* the executor's transfer failed; error and text say how (a kind and a message it made) */
  LR_END_TOO_LARGE,  /* the answer passed max_response_bytes */
  LR_END_TIMEOUT,    /* the attempt's own limit passed; text: the executor's words */
  LR_END_CUT,        /* the connection failed or was cut; text: the executor's words */
  LR_END_IDLE,       /* a stream was silent for limit_s */
  LR_END_FIRST_BYTE  /* nothing came within limit_s */
} lr_attempt_end;

typedef struct lr_attempt_facts {
  lr_attempt_end end;
  int status;                 /* the response's status, 0 when none came */
  const lr_hints *hints;      /* its headers, or NULL */
  lr_error_kind error;        /* LR_END_ERROR: the kind */
  const char *text;           /* LR_END_ERROR, TIMEOUT, CUT: the executor's text, or NULL */
  double limit_s;             /* LR_END_IDLE, FIRST_BYTE: the limit that passed */
  size_t max_response_bytes;
  lr_evstream *stream;        /* a streamed answer's decoder (the stream's end is noted in it), or NULL */
  const char *body;           /* a buffered answer's body, or NULL */
  size_t body_len;
} lr_attempt_facts;

/* Fills o's status, hints, transport, body_ok, usage_tokens and message (the
 * message may point into msg, or at f->text); the executor sets the rest
 * (not_sent, committed, partial). *keep, *keep_len: the text to keep for the
 * request's message (an error answer's body, a stream's error event), or NULL. */
void lr_outcome_shape(const lr_attempt_facts *f, lr_outcome *o, char *msg, size_t msglen, const char **keep,
                      size_t *keep_len);

#endif
