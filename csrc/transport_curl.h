/* The native executor: runs the relay's actions on one libcurl multi handle.
 * It keeps the executor contract of executor.h: nothing here decides a retry,
 * a failover, an error kind or a message; the core does. No Lua either:
 * l_client.c binds this to Lua. */
#ifndef LR_TRANSPORT_CURL_H
#define LR_TRANSPORT_CURL_H
#include <stddef.h>
#include <stdint.h>

#include "executor.h"

typedef struct lr_client lr_client;
struct lr_transfer;

/* One request as the client holds it. */
typedef struct lr_call {
  lr_req req;                  /* the relay's view; req.kind etc. hold the result */
  uint64_t id;
  char *body;                  /* the request body, sent by every attempt; the buffer is kept for the slot's next call */
  size_t body_len, body_cap;
  char *model;                 /* the request's model, for an endpoint path's {model}; buffer kept like body's */
  size_t model_len, model_cap;
  struct lr_transfer *xfer;    /* the transfer of the current attempt, if any */
  char *resp;                  /* DONE ok: the response body; the buffer is kept for the slot's next call */
  size_t resp_len, resp_cap;
  char err_body[LR_ERROR_BODY]; /* the last failed answer's body (truncated), for messages */
  size_t err_body_len;
  /* Streams (submitted with stream = 1): decoded events not yet taken, each a
   * 4-byte native-endian length then the event's data. Until the caller has
   * taken one (delivered > 0) a failed attempt drops them and may be retried;
   * after that a failure ends the call as stream_interrupted. */
  int stream;
  lr_evq ev;
  long delivered;              /* events the caller has taken */
  int notified;                /* its id is in the client's ready list */
  struct lr_call *next_done;
  uint32_t slot;
  struct curl_slist *headers;  /* the request's own header lines (replacing the endpoint's of the same
                                  name), or NULL */
} lr_call;

/* NULL on failure, with the reason in err. */
lr_client *lr_client_new(const lr_client_cfg *cfg, const lr_client_endpoint *eps, int n, char *err,
                         size_t errlen);
void lr_client_free(lr_client *c);
lr_relay *lr_client_relay(lr_client *c);


/* A request's own header lines: at most this many. */
#define LR_MAX_REQUEST_HEADERS 64

/* Starts a request; the body and the `headers` lines ("Name: value", sent
 * with every attempt) are copied. deadline: absolute monotonic seconds
 * or INFINITY. NULL when out of memory. */
lr_call *lr_client_submit(lr_client *c, const char *body, size_t len, const char *model, size_t mlen,
                          uint64_t allowed, double tokens, double timeout_s, double deadline, int priority,
                          int stream, const char *const *headers, int n_headers);
/* Streams: ids of calls that have events waiting since the last call (at
 * most max; the rest stay for the next call). */
int lr_client_stream_ready(lr_client *c, uint64_t *ids, int max);
/* Streams: hands over the call's waiting events (see lr_evq); the caller
 * has them once this returns. *n: how many. The buffer is the call's: read it
 * before the next step. */
const char *lr_client_stream_take(lr_client *c, lr_call *call, size_t *len, long *n);
/* Streams: the x-request-id of the attempt whose events are being read, or
 * NULL (none, or no attempt in flight). Known before the first event, so a
 * gateway can pass it on in the headers it sends before the body. */
const char *lr_client_stream_request_id(const lr_client *c, const lr_call *call);
lr_call *lr_client_find(lr_client *c, uint64_t id);

/* Advances transfers and timers, waiting at most max_wait_s for something to
 * happen. Finished calls are queued for lr_client_next_done. Returns -1 on a
 * libcurl failure (message in err), else the number of finished calls queued. */
int lr_client_step(lr_client *c, double max_wait_s, char *err, size_t errlen);
lr_call *lr_client_next_done(lr_client *c);
/* Ends a call now (aborting its transfer), as `cancelled`; it is queued as done. */
void lr_client_cancel(lr_client *c, lr_call *call);
/* Gives a delivered call's memory back. */
void lr_client_release(lr_client *c, lr_call *call);
long lr_client_pending(lr_client *c);

#endif
