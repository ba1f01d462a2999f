/* The libcurl multi executor: life cycle, calls, libcurl callbacks, streams.
 * Its attempts and wait loop are in transport_curl_step.c. See transport_curl.h. */
#include "transport_curl_int.h"

#include "answer.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dupstr(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* ---- libcurl callbacks (no Lua here: they only fill the transfer) ------- */

static size_t stream_body(lr_transfer *x, const char *data, size_t n);

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  lr_transfer *x = ud;
  size_t n = size * nmemb;
  x->got_first_byte = 1;
  if (x->mode == 0) {
    x->mode = 1;
    if (x->call && x->call->stream && x->hints.event_stream) { /* only streams pay for the lookup */
      long st = 0;
      curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st);
      if (st >= 200 && st < 300) x->mode = 2;
    }
  }
  if (x->mode == 2) return stream_body(x, data, n);
  if (x->len + n > x->client->cfg.max_response_bytes) {
    x->too_large = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (x->len + n + 1 > x->cap) {
    size_t cap = x->cap ? x->cap : 4096;
    while (cap < x->len + n + 1) cap *= 2;
    char *b = realloc(x->buf, cap);
    if (!b) return 0;
    x->buf = b;
    x->cap = cap;
  }
  memcpy(x->buf + x->len, data, n);
  x->len += n;
  return n;
}

/* The connection is made and the request is about to go: the endpoint is
 * reachable, so the warm-up limit need not wait for its first answer. */
static int on_connected(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                        int conn_local_port) {
  (void)conn_primary_ip;
  (void)conn_local_ip;
  (void)conn_primary_port;
  (void)conn_local_port;
  lr_transfer *x = ud;
  if (x->call && x->call->req.endpoint >= 0)
    lr_pool_reached(lr_relay_pool(x->client->relay), x->call->req.endpoint);
  return CURL_PREREQFUNC_OK;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  lr_transfer *x = ud;
  size_t n = size * nmemb;
  if (!x->got_first_byte || x->wall == 0) x->wall = lr_now_wall();
  x->got_first_byte = 1;
  if (x->call && x->call->stream) x->last_read_at = lr_now_mono();
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) x->in_head = 1;
  else if (n <= 2 && (data[0] == '\r' || data[0] == '\n')) x->in_head = 0;
  lr_hints_feed_line(&x->hints, data, n, x->wall);
  return n;
}

/* ---- streams ------------------------------------------------------------------ */

void lr_tc_keep_error_text(lr_call *call, const char *b, size_t n) {
  if (n > sizeof call->err_body) n = sizeof call->err_body;
  memcpy(call->err_body, b, n);
  call->err_body_len = n;
}

static int ready_push(lr_client *c, lr_call *call) {
  if (c->n_ready == c->cap_ready) {
    int cap = c->cap_ready ? c->cap_ready * 2 : 64;
    uint64_t *r = realloc(c->ready, (size_t)cap * sizeof *r);
    if (!r) return -1;
    c->ready = r;
    c->cap_ready = cap;
  }
  c->ready[c->n_ready++] = call->id;
  call->notified = 1;
  return 0;
}

static size_t stream_body(lr_transfer *x, const char *data, size_t n) {
  x->last_read_at = lr_now_mono();
  x->stream_bytes += n;
  if (x->stream_bytes > x->client->cfg.max_response_bytes) {
    x->too_large = 1;
    return 0;
  }
  lr_call *call = x->call;
  long before = call->ev.n;
  int fault = lr_evstream_feed(&x->es, &call->ev, data, n);
  if (LR_SF_KEEPS_TEXT(fault))
    lr_tc_keep_error_text(call, x->es.fault_text, x->es.fault_text_len);
  if (call->ev.n > before && !call->notified && ready_push(x->client, call) != 0) x->es.fault = LR_SF_NOMEM;
  return x->es.fault == LR_SF_NONE ? n : 0; /* 0 aborts the transfer; x->es.fault says why */
}

int lr_client_stream_ready(lr_client *c, uint64_t *ids, int max) {
  int n = c->n_ready < max ? c->n_ready : max;
  if (n == 0) return 0; /* c->ready may still be NULL */
  memcpy(ids, c->ready, (size_t)n * sizeof *ids);
  memmove(c->ready, c->ready + n, (size_t)(c->n_ready - n) * sizeof *ids);
  c->n_ready -= n;
  for (int k = 0; k < n; k++) {
    lr_call *call = lr_client_find(c, ids[k]);
    if (call) call->notified = 0;
  }
  return n;
}

const char *lr_client_stream_take(lr_client *c, lr_call *call, size_t *len, long *n) {
  (void)c;
  *len = call->ev.len;
  *n = call->ev.n;
  call->delivered += call->ev.n;
  lr_evq_clear(&call->ev);
  return call->ev.buf;
}

const char *lr_client_stream_request_id(const lr_client *c, const lr_call *call) {
  (void)c;
  return call->xfer && call->xfer->hints.request_id[0] ? call->xfer->hints.request_id : NULL;
}

/* ---- life cycle ------------------------------------------------------------ */

static int global_init_done;

lr_client *lr_client_new(const lr_client_cfg *cfg, const lr_client_endpoint *eps, int n, char *err,
                         size_t errlen) {
  if (n < 1 || n > LR_MAX_ENDPOINTS) {
    snprintf(err, errlen, "between 1 and %d endpoints are needed", LR_MAX_ENDPOINTS);
    return NULL;
  }
  if (!global_init_done) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      snprintf(err, errlen, "curl_global_init failed");
      return NULL;
    }
    global_init_done = 1;
  }
  lr_client *c = calloc(1, sizeof *c);
  if (!c) goto oom;
  c->cfg = *cfg;
  c->ca_file = dupstr(cfg->ca_file);
  c->user_agent = dupstr(cfg->user_agent ? cfg->user_agent : "llmrelay");
  c->cfg.ca_file = c->ca_file;
  c->cfg.user_agent = c->user_agent;
  if ((cfg->ca_file && !c->ca_file) || !c->user_agent) goto oom;
  lr_endpoint_cfg pol[LR_MAX_ENDPOINTS];
  for (int i = 0; i < n; i++) pol[i] = eps[i].policy;
  c->relay = lr_relay_new(&cfg->relay, pol, n, cfg->strategy, &cfg->breaker, cfg->seed, lr_now_mono());
  if (!c->relay) goto oom;
  c->n_ep = n;
  for (int i = 0; i < n; i++) {
    for (int a = 0; a < LR_API__COUNT; a++) {
      c->ep[i].urls[a] = dupstr(eps[i].urls[a]);
      if (!c->ep[i].urls[a]) goto oom;
    }
    for (int k = 0; k < eps[i].n_headers; k++) {
      struct curl_slist *l = curl_slist_append(c->ep[i].headers, eps[i].headers[k]);
      if (!l) goto oom;
      c->ep[i].headers = l;
    }
  }
  c->cap_active = cfg->relay.concurrency > 0 ? cfg->relay.concurrency : 1;
  c->active = calloc((size_t)c->cap_active, sizeof *c->active);
  c->multi = curl_multi_init();
  if (!c->active || !c->multi) goto oom;
  /* keep enough idle connections to serve every slot on any endpoint again
   * without a new handshake */
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)(c->cap_active * n + n));
  curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  c->next_gen = 1;
  return c;
oom:
  snprintf(err, errlen, "out of memory");
  lr_client_free(c);
  return NULL;
}

static void transfer_destroy(lr_transfer *x) {
  if (x->easy) curl_easy_cleanup(x->easy);
  curl_slist_free_all(x->headers);
  free(x->body);
  lr_evstream_free(&x->es);
  free(x->buf);
  free(x);
}

void lr_client_free(lr_client *c) {
  if (!c) return;
  for (int k = 0; k < c->n_active; k++) {
    lr_transfer *x = c->active[k];
    curl_multi_remove_handle(c->multi, x->easy);
    transfer_destroy(x);
  }
  while (c->free_xfers) {
    lr_transfer *x = c->free_xfers;
    c->free_xfers = x->next_free;
    transfer_destroy(x);
  }
  if (c->multi) curl_multi_cleanup(c->multi);
  for (uint32_t s = 0; s < c->n_slots; s++) {
    if (!c->slots[s]) continue;
    free(c->slots[s]->body);
    free(c->slots[s]->model);
    free(c->slots[s]->resp);
    lr_evq_free(&c->slots[s]->ev);
    curl_slist_free_all(c->slots[s]->headers);
    free(c->slots[s]);
  }
  free(c->slots);
  free(c->free_slots);
  free(c->ready);
  for (int i = 0; i < c->n_ep; i++) {
    for (int a = 0; a < LR_API__COUNT; a++) free(c->ep[i].urls[a]);
    curl_slist_free_all(c->ep[i].headers);
  }
  lr_relay_free(c->relay);
  free(c->active);
  free(c->ca_file);
  free(c->user_agent);
  free(c);
}

lr_relay *lr_client_relay(lr_client *c) { return c->relay; }

long lr_client_pending(lr_client *c) { return lr_relay_active(c->relay) + c->n_done; }

/* ---- calls ------------------------------------------------------------------- */

static lr_call *call_alloc(lr_client *c) {
  uint32_t slot;
  if (c->n_free_slots) {
    slot = c->free_slots[--c->n_free_slots];
  } else {
    if (c->n_slots == c->cap_slots) {
      uint32_t cap = c->cap_slots ? c->cap_slots * 2 : 64;
      if (cap > SLOT_MASK) return NULL;
      lr_call **s = realloc(c->slots, cap * sizeof *s);
      if (!s) return NULL;
      c->slots = s;
      uint32_t *f = realloc(c->free_slots, cap * sizeof *f);
      if (!f) return NULL;
      c->free_slots = f;
      c->cap_slots = cap;
    }
    slot = c->n_slots++;
    c->slots[slot] = NULL;
  }
  lr_call *call = c->slots[slot];
  if (!call) {
    call = calloc(1, sizeof *call);
    if (!call) {
      c->free_slots[c->n_free_slots++] = slot;
      return NULL;
    }
    c->slots[slot] = call;
  }
  call->slot = slot;
  /* ids stay below 2^53 so Lua 5.1 numbers hold them exactly */
  call->id = ((c->next_gen++ & ((1ull << 29) - 1)) << SLOT_BITS) | slot;
  return call;
}

lr_call *lr_client_find(lr_client *c, uint64_t id) {
  uint32_t slot = (uint32_t)(id & SLOT_MASK);
  if (slot >= c->n_slots || !c->slots[slot] || c->slots[slot]->id != id) return NULL;
  return c->slots[slot];
}

/* Copies n bytes and a NUL into *buf, grown (never shrunk) to fit; -1: out of memory. */
static int copy_kept(char **buf, size_t *cap, const char *src, size_t n) {
  if (*cap < n + 1) {
    char *b = realloc(*buf, n + 1);
    if (!b) return -1;
    *buf = b;
    *cap = n + 1;
  }
  if (n) memcpy(*buf, src, n);
  (*buf)[n] = 0;
  return 0;
}

lr_call *lr_client_submit(lr_client *c, const char *body, size_t len, const char *model, size_t mlen,
                          uint64_t allowed, double tokens, double timeout_s, double deadline, int priority,
                          int stream, const char *const *headers, int n_headers) {
  lr_call *call = call_alloc(c);
  if (!call) return NULL;
  int oom = 0;
  for (int k = 0; k < n_headers && !oom; k++) {
    struct curl_slist *l = curl_slist_append(call->headers, headers[k]);
    if (l) call->headers = l;
    else oom = 1;
  }
  /* the slot keeps its buffers for the next call; both end in a NUL */
  if (oom || copy_kept(&call->body, &call->body_cap, body, len) != 0 ||
      copy_kept(&call->model, &call->model_cap, model, mlen) != 0) {
    curl_slist_free_all(call->headers); /* the slot is free again, its buffers kept */
    call->headers = NULL;
    call->id = 0;
    c->free_slots[c->n_free_slots++] = call->slot;
    return NULL;
  }
  call->body_len = len;
  call->model_len = mlen;
  call->xfer = NULL;
  call->resp_len = 0;
  call->err_body_len = 0;
  call->next_done = NULL;
  call->stream = stream;
  lr_evq_clear(&call->ev);
  call->delivered = 0;
  call->notified = 0;
  lr_relay_submit(c->relay, &call->req, allowed, tokens, deadline, timeout_s, priority, call);
  return call;
}

void lr_client_release(lr_client *c, lr_call *call) {
  curl_slist_free_all(call->headers);
  call->headers = NULL;
  call->body_len = 0;
  call->resp_len = 0;
  lr_evq_clear(&call->ev);
  call->delivered = 0;
  call->stream = call->notified = 0;
  call->id = 0;
  c->free_slots[c->n_free_slots++] = call->slot;
}

void lr_tc_push_done(lr_client *c, lr_call *call) {
  call->next_done = NULL;
  if (c->done_tail) c->done_tail->next_done = call;
  else c->done_head = call;
  c->done_tail = call;
  c->n_done++;
}

lr_call *lr_client_next_done(lr_client *c) {
  lr_call *call = c->done_head;
  if (!call) return NULL;
  c->done_head = call->next_done;
  if (!c->done_head) c->done_tail = NULL;
  c->n_done--;
  return call;
}

/* ---- transfers --------------------------------------------------------------- */

lr_transfer *lr_tc_transfer_get(lr_client *c) {
  lr_transfer *x = c->free_xfers;
  if (x) {
    c->free_xfers = x->next_free;
    return x;
  }
  x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->easy = curl_easy_init();
  if (!x->easy) {
    free(x);
    return NULL;
  }
  x->client = c;
  size_t max_event = lr_answer_max_event(c->cfg.max_response_bytes);
  lr_evstream_init(&x->es, max_event ? max_event : 1);
  CURL *e = x->easy;
  curl_easy_setopt(e, CURLOPT_PRIVATE, x);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_connected);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, c->cfg.user_agent);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ceil(c->cfg.connect_timeout_s * 1000.0));
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c->cfg.insecure ? 0L : 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c->cfg.insecure ? 0L : 2L);
  if (c->cfg.ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, c->cfg.ca_file);
  return x;
}

void lr_tc_transfer_put(lr_client *c, lr_transfer *x) {
  x->call = NULL;
  curl_slist_free_all(x->headers); /* libcurl is done with it: the handle left the multi */
  x->headers = NULL;
  free(x->body);
  x->body = NULL;
  x->next_free = c->free_xfers;
  c->free_xfers = x;
}
