/* See outcome.h. */
#include "outcome.h"

#include <stdio.h>
#include <string.h>

#include "answer.h"
#include "jsoncheck.h"

static const char *text_or(const char *t, const char *dflt) { return t && t[0] ? t : dflt; }

void lr_outcome_shape(const lr_attempt_facts *f, lr_outcome *o, char *msg, size_t msglen, const char **keep,
                      size_t *keep_len) {
  lr_evstream *s = f->stream;
  o->status = f->status;
  o->hints = f->hints;
  o->transport = LR_E_NONE;
  o->body_ok = 0;
  o->usage_tokens = -1;
  o->message = NULL;
  *keep = NULL;
  *keep_len = 0;
  msg[0] = 0;
  if (s && s->fault >= LR_SF_ERROR_EVENT && s->fault <= LR_SF_NOMEM) {
    o->transport = lr_answer_fault((lr_stream_fault)s->fault, s->sse.max_event, msg, msglen);
    if (s->fault_text_len) {
      *keep = s->fault_text;
      *keep_len = s->fault_text_len;
    }
  } else if (f->end != LR_END_ANSWER) {
    /* a buffered answer that failed this way tells nothing about the endpoint's status or hints */
    if (!s && (f->end == LR_END_TIMEOUT || f->end == LR_END_FIRST_BYTE || f->end == LR_END_CUT)) {
      o->status = 0;
      o->hints = NULL;
    }
    switch (f->end) {
    case LR_END_ERROR:
      o->transport = f->error;
      if (f->text) snprintf(msg, msglen, "%s", f->text);
      if (f->body && f->body_len) {
        *keep = f->body;
        *keep_len = f->body_len;
      }
      break;
    case LR_END_TOO_LARGE:
      o->transport = LR_E_HTTP;
      snprintf(msg, msglen, "%s exceeds max_response_bytes (%zu)", s ? "stream" : "response body",
               f->max_response_bytes);
      break;
    case LR_END_TIMEOUT:
      o->transport = LR_E_TIMEOUT;
      snprintf(msg, msglen, "timeout: %s", text_or(f->text, "the attempt took too long"));
      break;
    case LR_END_CUT:
      o->transport = LR_E_CONNECT;
      if (s) snprintf(msg, msglen, "the stream was cut: %s", text_or(f->text, "connection lost"));
      else snprintf(msg, msglen, "%s", text_or(f->text, "connection lost"));
      break;
    case LR_END_IDLE:
      o->transport = LR_E_TIMEOUT;
      snprintf(msg, msglen, "timeout: the stream was silent for idle (%.3g s)", f->limit_s);
      break;
    case LR_END_FIRST_BYTE:
      o->transport = LR_E_TIMEOUT;
      snprintf(msg, msglen, "timeout: no response within first_byte (%.3g s)", f->limit_s);
      break;
    case LR_END_ANSWER:
      break;
    }
  } else if (s) {
    lr_sse_finish(&s->sse); /* an event without its blank line is no event */
    o->body_ok = lr_evstream_complete(s);
    if (o->body_ok) o->usage_tokens = s->usage;
    else if (s->api == LR_API_RESPONSES) snprintf(msg, msglen, "the Responses stream ended before response.completed");
    else snprintf(msg, msglen, "the stream ended without [DONE] or a finish_reason");
  } else {
    const char *b = f->body ? f->body : "";
    if (f->status >= 200 && f->status < 300) {
      o->body_ok = lr_json_check_answer(b, f->body_len, LR_MAX_JSON_DEPTH, f->max_response_bytes, msg, msglen) == 0;
      if (o->body_ok) {
        msg[0] = 0;
        o->usage_tokens = lr_answer_usage_tokens(b, f->body_len);
      }
    }
    if (!o->body_ok && f->body_len) {
      *keep = b;
      *keep_len = f->body_len;
    }
  }
  if (msg[0]) o->message = msg;
  /* the request is too long for this model: context_window_fallbacks may name a larger one */
  static const char ctx[] = "\"context_length_exceeded\"";
  lr_upstream_error e;
  o->context_exceeded = o->status == 400 && *keep && lr_answer_error(*keep, *keep_len, &e) == 0 &&
                        e.code.len == sizeof ctx - 1 && memcmp(*keep + e.code.off, ctx, sizeof ctx - 1) == 0;
}
