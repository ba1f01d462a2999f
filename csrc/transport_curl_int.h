/* The libcurl executor's insides, shared by its two files: transport_curl.c
 * (life cycle, calls, libcurl callbacks, streams) and transport_curl_step.c
 * (starting and ending transfers, timers, the wait loop). Nothing else
 * includes this. See transport_curl.h and executor.h. */
#ifndef LR_TRANSPORT_CURL_INT_H
#define LR_TRANSPORT_CURL_INT_H
#include <curl/curl.h>

#include "outcome.h"
#include "transport_curl.h"

#define SLOT_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define POLL_BATCH LR_POLL_BATCH

/* How a stream attempt went wrong, beyond what libcurl reports. */
/* x->es.fault: an lr_stream_fault, or this transport's own: */
enum { SF_IDLE = LR_SF_NOMEM + 1 };

typedef struct lr_transfer {
  CURL *easy;
  lr_client *client;
  lr_call *call;
  char *buf;
  size_t len, cap;
  lr_hints hints;
  int got_first_byte;
  int in_head; /* a status line came and its header block has not ended */
  int too_large;
  double wall; /* wall clock at the first header, for HTTP-date hints */
  double first_byte_deadline;
  int active_idx;
  /* streams */
  int mode;             /* 0 until the first body byte; 1 buffered (JSON, errors), 2 decoded as SSE */
  lr_evstream es;       /* es.fault: an lr_stream_fault, or SF_IDLE */
  size_t stream_bytes;
  double last_read_at;  /* for timeout.idle */
  char errbuf[CURL_ERROR_SIZE];
  struct curl_slist *headers; /* the endpoint's headers and the request's own, for this attempt; or NULL */
  char *body;                 /* the request's body with this endpoint's model name (jsonmodel.h); or NULL */
  struct lr_transfer *next_free;
} lr_transfer;

typedef struct client_endpoint {
  char *urls[LR_API__COUNT]; /* by lr_api */
  struct curl_slist *headers;
} client_endpoint;

struct lr_client {
  lr_client_cfg cfg;
  char *ca_file, *user_agent;
  lr_relay *relay;
  CURLM *multi;
  client_endpoint ep[LR_MAX_ENDPOINTS];
  int n_ep;
  lr_transfer **active;
  int n_active, cap_active;
  lr_transfer *free_xfers;
  lr_call **slots;
  uint32_t n_slots, cap_slots;
  uint32_t *free_slots;
  uint32_t n_free_slots;
  uint64_t next_gen;
  uint64_t *ready;      /* ids of stream calls with events waiting */
  int n_ready, cap_ready;
  lr_call *done_head, *done_tail;
  long n_done;
};

/* A transfer ready for an attempt (from the free list, or a new one); NULL when out of memory. */
lr_transfer *lr_tc_transfer_get(lr_client *c);
void lr_tc_transfer_put(lr_client *c, lr_transfer *x);
/* Queues a finished call for lr_client_next_done. */
void lr_tc_push_done(lr_client *c, lr_call *call);
/* Keeps (the start of) a failed answer's text for the request's message. */
void lr_tc_keep_error_text(lr_call *call, const char *b, size_t n);

#endif
