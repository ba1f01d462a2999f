/* The classifier: what an attempt's outcome means for the request (its error
 * kind, what to do next) and for its endpoint (health, a pause). Sans-I/O and
 * stateless; relay.c applies the verdict. See DESIGN.md "The request state
 * machine". */
#ifndef LR_CLASSIFY_H
#define LR_CLASSIFY_H

#include "errors.h"
#include "pool.h"
#include "relay.h"

typedef enum {
  LR_ACT_OK,               /* done: the answer is the request's result */
  LR_ACT_FINAL,            /* done: the request fails with `kind` */
  LR_ACT_RETRY,            /* retry, on any endpoint the pool picks */
  LR_ACT_RETRY_ELSEWHERE   /* retry, not on this endpoint */
} lr_action;

typedef struct lr_classification {
  lr_error_kind kind;
  lr_verdict health;
  lr_action action;
  double throttle_s; /* > 0: rest the endpoint this long */
  int free;          /* its retry adds no load: routing (404) or paced by the server (429) */
  int bare;          /* a 429 with no hint: the endpoint's learnt pace is cut, no pause */
} lr_classification;

/* deadline: the request's absolute deadline (monotonic seconds), for telling
 * a timeout that ends the request from one that may be retried. */
lr_classification lr_classify(const lr_outcome *o, double deadline, double now);

#endif
