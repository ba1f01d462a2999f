/* An incremental text/event-stream decoder (WHATWG HTML, "server-sent
 * events"): bytes in, events out through a callback, in any chunking.
 * Sans-I/O: no clock, no I/O, no Lua. */
#ifndef LR_SSE_H
#define LR_SSE_H
#include <stddef.h>

typedef struct lr_sse_event {
  const char *data;  /* the data: lines joined by "\n" */
  size_t data_len;
  const char *event; /* the event: field; "message" when none was given */
  size_t event_len;
  const char *id;    /* the last event id so far (it persists across events); len 0 if none */
  size_t id_len;
  long retry_ms;     /* the last valid retry: since the previous dispatch, else -1 */
  int done;          /* data is exactly "[DONE]" (OpenAI's end marker) */
} lr_sse_event;
/* The three strings are NUL-terminated as well (data may hold NULs of its
 * own), never NULL, and valid only during the callback. The callback must not
 * call back into the decoder. Return 0 to go on, nonzero to stop. */
typedef int (*lr_sse_cb)(void *ud, const lr_sse_event *ev);

enum { LR_SSE_OK = 0, LR_SSE_STOPPED = 1, LR_SSE_TOO_BIG = 2, LR_SSE_NOMEM = 3 };

typedef struct lr_sse_buf {
  char *p;
  size_t len, cap; /* cap > len once allocated: room for a NUL */
} lr_sse_buf;

typedef struct lr_sse {
  lr_sse_buf line;  /* the current line, while it spans feeds */
  lr_sse_buf data;  /* the event's data, each line followed by "\n" */
  lr_sse_buf event; /* the event type; empty means "message" */
  lr_sse_buf id;    /* the last event id */
  long retry_ms;    /* a retry: not yet reported with an event, else -1 */
  size_t max_event; /* cap on data + the current line, in bytes */
  size_t events;    /* dispatched so far */
  int bom;          /* bytes of a leading BOM matched; 3 once past the stream's start */
  int cr;           /* the last feed ended with '\r': a '\n' first thing ends no line */
  int error;        /* LR_SSE_TOO_BIG or LR_SSE_NOMEM, sticky until reset */
} lr_sse;

/* max_event caps one event's data plus the line being read (0: 1 MiB). */
void lr_sse_init(lr_sse *s, size_t max_event);
/* Back to the start of a new stream; keeps the buffers (and max_event). */
void lr_sse_reset(lr_sse *s);
/* Frees the buffers; safe on an unused decoder, and twice. */
void lr_sse_free(lr_sse *s);
/* Decodes buf[0..len), calling cb for each event it completes.
 * LR_SSE_OK: all consumed. LR_SSE_STOPPED: cb returned nonzero; the rest of
 *   buf was dropped, the decoder sits just after the blank line that
 *   dispatched, so the stream is normally finished (or reset) there.
 * LR_SSE_TOO_BIG: the current line, or the event's data plus it, passed
 *   max_event. LR_SSE_NOMEM: an allocation failed. Both stick: every later
 *   feed returns them until lr_sse_reset. */
int lr_sse_feed(lr_sse *s, const char *buf, size_t len, lr_sse_cb cb, void *ud);
/* End of stream. An event without its closing blank line is discarded, as
 * the spec says, and so is a partial line. Returns 1 if there was such a
 * thing (or the decoder is in an error state), else 0. Dispatches nothing.
 * A pending retry_ms stays readable in s->retry_ms (a "retry: N" block
 * carries no data, so no event reports it). */
int lr_sse_finish(lr_sse *s);
size_t lr_sse_events(const lr_sse *s);

#endif
