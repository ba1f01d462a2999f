/* The libcurl executor's attempts and its wait loop: starts the transfers
 * the relay decides, hands their ends to the core (outcome.c, relay.c), runs
 * the transfers' own timers and waits on the multi handle. See
 * transport_curl_int.h. */
#include "transport_curl_int.h"
#include "jsonmodel.h"
#include "urlenc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void active_remove(lr_client *c, lr_transfer *x) {
  int k = x->active_idx;
  c->active[k] = c->active[--c->n_active];
  c->active[k]->active_idx = k;
  curl_multi_remove_handle(c->multi, x->easy);
}

/* Reports the attempt's outcome, shaped from what the transfer saw (outcome.c). */
static void report(lr_client *c, lr_call *call, lr_attempt_facts *f, int not_sent) {
  char msg[CURL_ERROR_SIZE + 128];
  const char *keep;
  size_t keep_len;
  lr_outcome o = {.not_sent = not_sent};
  f->max_response_bytes = c->cfg.max_response_bytes;
  lr_outcome_shape(f, &o, msg, sizeof msg, &keep, &keep_len);
  if (f->end == LR_END_ANSWER && !f->stream && o.body_ok) { /* both buffers live as long as their owners */
    if (call->resp_cap < f->body_len + 1) {
      char *b = realloc(call->resp, f->body_len + 1);
      if (!b) {
        o.body_ok = 0;
        o.usage_tokens = -1;
        o.message = "out of memory for the response body";
        keep = f->body;
        keep_len = f->body_len;
      } else {
        call->resp = b;
        call->resp_cap = f->body_len + 1;
      }
    }
    if (o.body_ok) {
      memcpy(call->resp, f->body, f->body_len);
      call->resp_len = f->body_len;
    }
  }
  if (keep) lr_tc_keep_error_text(call, keep, keep_len);
  if (f->stream) {
    o.committed = call->delivered > 0;
    o.partial = call->ev.n > 0;
  }
  lr_relay_report(c->relay, &call->req, &o, lr_now_mono());
  if (f->stream && call->req.state != LR_REQ_DONE) /* retried: nothing reached the caller, the next attempt starts afresh */
    lr_evq_clear(&call->ev);
}

/* The header name of a "Name: value" line is `name` (len bytes, no colon). */
static int same_name(const char *line, const char *name, size_t len) {
  return strncasecmp(line, name, len) == 0 && line[len] == ':';
}

/* The endpoint's header lines, less those the request sets itself, then the
 * request's; NULL when out of memory. */
static struct curl_slist *merged_headers(const struct curl_slist *ep, const struct curl_slist *own) {
  struct curl_slist *out = NULL, *l;
  for (; ep; ep = ep->next) {
    const char *colon = strchr(ep->data, ':');
    int replaced = 0;
    for (const struct curl_slist *o = own; colon && o && !replaced; o = o->next)
      replaced = same_name(o->data, ep->data, (size_t)(colon - ep->data));
    if (replaced) continue;
    if (!(l = curl_slist_append(out, ep->data))) goto oom;
    out = l;
  }
  for (; own; own = own->next) {
    if (!(l = curl_slist_append(out, own->data))) goto oom;
    out = l;
  }
  return out;
oom:
  curl_slist_free_all(out);
  return NULL;
}

static int transfer_start(lr_client *c, lr_call *call, double now) {
  int i = call->req.endpoint;
  lr_transfer *x = lr_tc_transfer_get(c);
  if (!x) return -1;
  /* the endpoint's name for the request's model, in the body and a {model} path */
  size_t wlen = call->model_len;
  const char *wire = lr_relay_wire_model(c->relay, &call->req, i, &wlen);
  if (!wire) wire = call->model;
  size_t body_len = call->body_len;
  if (wire != call->model && (wlen != call->model_len || memcmp(wire, call->model, wlen) != 0) &&
      lr_json_set_model(call->body, call->body_len, wire, wlen, &x->body, &body_len) < 0) {
    lr_tc_transfer_put(c, x);
    return -1;
  }
  char *url = NULL; /* libcurl copies CURLOPT_URL */
  const char *ep_url = c->ep[i].urls[(unsigned)call->req.api < LR_API__COUNT ? call->req.api : LR_API_CHAT];
  if (strstr(ep_url, "{model}")) {
    url = lr_url_expand(ep_url, wire, wlen);
    if (!url) {
      lr_tc_transfer_put(c, x);
      return -1;
    }
  }
  CURL *e = x->easy;
  x->call = call;
  x->len = 0;
  x->got_first_byte = 0;
  x->in_head = 0;
  x->wall = 0;
  x->too_large = 0;
  x->errbuf[0] = 0;
  x->mode = 0;
  x->stream_bytes = 0;
  x->last_read_at = now;
  lr_evstream_reset(&x->es);
  x->es.api = call->req.api; /* Responses streams end on their own events */
  lr_hints_init(&x->hints);
  double t = call->req.attempt_timeout_s;
  x->first_byte_deadline = now + c->cfg.first_byte_timeout_s;
  curl_easy_setopt(e, CURLOPT_URL, url ? url : ep_url);
  free(url);
  if (call->headers) {
    x->headers = merged_headers(c->ep[i].headers, call->headers);
    if (!x->headers) {
      lr_tc_transfer_put(c, x);
      return -1;
    }
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers ? x->headers : c->ep[i].headers);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(x->body ? body_len : call->body_len));
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body ? x->body : call->body);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(t > 0 ? ceil(t * 1000.0) : 0));
  if (c->n_active == c->cap_active) { /* the relay keeps within concurrency; be safe anyway */
    lr_transfer **a = realloc(c->active, (size_t)c->cap_active * 2 * sizeof *a);
    if (!a) {
      lr_tc_transfer_put(c, x);
      return -1;
    }
    c->active = a;
    c->cap_active *= 2;
  }
  if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
    lr_tc_transfer_put(c, x);
    return -1;
  }
  x->active_idx = c->n_active;
  c->active[c->n_active++] = x;
  call->xfer = x;
  return 0;
}

/* libcurl refuses a response header line over CURL_MAX_HTTP_HEADER (100 KB)
 * with CURLE_OUT_OF_MEMORY and no text (CURLE_TOO_LARGE since 8.6), and a
 * header block over 300 KB with CURLE_RECV_ERROR "Too large response
 * headers".  Inside a header block that is the upstream's doing, unless
 * memory is really short: then a buffer twice the limit cannot be had either. */
static const char *header_refused(const lr_transfer *x, CURLcode rc) {
  static const char line[] = "the upstream sent a response header line over libcurl's limit of 100 KB";
  if (!x->in_head) return NULL;
#if LIBCURL_VERSION_NUM >= 0x080600
  if (rc == CURLE_TOO_LARGE) return line;
#endif
  if (rc == CURLE_RECV_ERROR && strncmp(x->errbuf, "Too large response headers", 26) == 0)
    return "the upstream's response headers exceed libcurl's limit of 300 KB";
  if (rc != CURLE_OUT_OF_MEMORY) return NULL;
  char *volatile probe = malloc(2 * CURL_MAX_HTTP_HEADER); /* volatile: the compiler may not assume success */
  if (!probe) return NULL;
  free(probe);
  return line;
}

static void transfer_done(lr_client *c, lr_transfer *x, CURLcode rc) {
  lr_call *call = x->call;
  active_remove(c, x);
  call->xfer = NULL;
  long status = 0;
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
  const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
  char text[CURL_ERROR_SIZE + 96];
  lr_attempt_facts f = {.end = LR_END_ANSWER, .status = (int)status, .hints = &x->hints, .text = why,
                        .stream = x->mode == 2 ? &x->es : NULL};
  int not_sent = 0;
  const char *refused;
  if (x->mode == 2 && x->es.fault == SF_IDLE) {
    f.end = LR_END_IDLE;
    f.limit_s = c->cfg.idle_timeout_s;
  } else if (x->mode == 2 && x->es.fault != LR_SF_NONE) {
    f.end = LR_END_ANSWER; /* the decoder's fault says what went wrong */
  } else if (x->too_large) {
    f.end = LR_END_TOO_LARGE;
  } else if (rc == CURLE_OK) {
    f.body = x->buf;
    f.body_len = x->len;
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    f.end = LR_END_TIMEOUT;
  } else if (x->mode != 2 && (refused = header_refused(x, rc))) {
    f.end = LR_END_ERROR;
    f.error = LR_E_HTTP;
    if (rc == CURLE_RECV_ERROR) snprintf(text, sizeof text, "%s (%s)", refused, x->errbuf);
    else snprintf(text, sizeof text, "%s", refused);
    f.text = text;
  } else {
    f.end = LR_END_CUT;
    curl_off_t sent_at = 0; /* 0: the request was never sent (refused, DNS, TLS handshake) */
    if (x->mode != 2) curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &sent_at);
    not_sent = x->mode != 2 && sent_at == 0;
  }
  report(c, call, &f, not_sent);
  lr_tc_transfer_put(c, x);
}

/* Hands the relay's decisions to libcurl until it has nothing more to say. */
static double dispatch(lr_client *c) {
  lr_req *out[POLL_BATCH];
  double next_wake = INFINITY;
  for (;;) {
    double now = lr_now_mono();
    int n = lr_relay_poll(c->relay, now, out, POLL_BATCH, &next_wake);
    for (int k = 0; k < n; k++) {
      lr_call *call = out[k]->udata;
      if (out[k]->state == LR_REQ_DONE) {
        lr_tc_push_done(c, call);
      } else if (transfer_start(c, call, now) != 0) {
        lr_attempt_facts f = {.end = LR_END_ERROR, .error = LR_E_CONNECT,
                              .text = "could not start a transfer (out of memory)"};
        report(c, call, &f, 0);
      }
    }
    if (n < POLL_BATCH && next_wake > now) return next_wake;
  }
}

/* When a transfer's own timer (first byte, stream idle) expires; INFINITY if none. */
static double timer_due(const lr_client *c, const lr_transfer *x) {
  if (!x->got_first_byte) return x->first_byte_deadline;
  if (x->call && x->call->stream && x->mode != 1 && c->cfg.idle_timeout_s > 0)
    return x->last_read_at + c->cfg.idle_timeout_s;
  return INFINITY;
}

/* Ends the transfers whose own timer expired. */
static void check_timers(lr_client *c, double now) {
  for (int k = 0; k < c->n_active;) {
    lr_transfer *x = c->active[k];
    if (now < timer_due(c, x)) {
      k++;
    } else if (x->got_first_byte) { /* a stream gone silent */
      x->es.fault = SF_IDLE;
      x->mode = 2;
      transfer_done(c, x, CURLE_OPERATION_TIMEDOUT); /* the slot now holds another transfer */
    } else {
      lr_call *call = x->call;
      active_remove(c, x);
      call->xfer = NULL;
      lr_attempt_facts f = {.end = LR_END_FIRST_BYTE, .limit_s = c->cfg.first_byte_timeout_s};
      report(c, call, &f, 0);
      lr_tc_transfer_put(c, x);
    }
  }
}

int lr_client_step(lr_client *c, double max_wait_s, char *err, size_t errlen) {
  double wake = dispatch(c);
  double now = lr_now_mono();
  double wait = c->n_done ? 0 : max_wait_s;
  if (wake - now < wait) wait = wake - now;
  for (int k = 0; k < c->n_active; k++) {
    double due = timer_due(c, c->active[k]);
    if (due - now < wait) wait = due - now;
  }
  if (wait < 0) wait = 0;
  if (c->n_active > 0 || wait > 0) {
    int ms = (int)ceil(wait * 1000.0);
    CURLMcode mc = curl_multi_poll(c->multi, NULL, 0, ms, NULL);
    if (mc != CURLM_OK) {
      snprintf(err, errlen, "curl_multi_poll: %s", curl_multi_strerror(mc));
      return -1;
    }
  }
  int running = 0;
  CURLMcode mc = curl_multi_perform(c->multi, &running);
  if (mc != CURLM_OK) {
    snprintf(err, errlen, "curl_multi_perform: %s", curl_multi_strerror(mc));
    return -1;
  }
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(c->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    lr_transfer *x = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    if (x && x->call) transfer_done(c, x, m->data.result);
  }
  check_timers(c, lr_now_mono());
  dispatch(c);
  return (int)c->n_done;
}

void lr_client_cancel(lr_client *c, lr_call *call) {
  lr_req_state was = lr_relay_cancel(c->relay, &call->req, LR_E_CANCELLED, lr_now_mono());
  if (was == LR_REQ_SENDING && call->xfer) {
    lr_transfer *x = call->xfer;
    active_remove(c, x);
    call->xfer = NULL;
    lr_tc_transfer_put(c, x);
  }
  if (was != LR_REQ_DONE) {
    lr_tc_push_done(c, call);
    return;
  }
  /* finished before the cancel: keep its result, unless already queued */
  for (lr_call *d = c->done_head; d; d = d->next_done)
    if (d == call) return;
  lr_tc_push_done(c, call);
}
