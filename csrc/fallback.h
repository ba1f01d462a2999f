/* Fallbacks between logical models (config fallbacks and
 * context_window_fallbacks): which model a request that failed for good on
 * its model tries next. Sans-I/O; relay.c asks it when a request would end.
 *
 * A request falls back (to the next model of its ORIGINAL model's list that
 * it has not tried yet) when it would end with one of these kinds, nothing
 * of a stream having reached the caller:
 *   fallbacks:                rate_limited, server_error, timeout, connect,
 *                             circuit_open (every endpoint serving the model
 *                             failed, is open, or is throttled beyond
 *                             max_retry_after or the deadline);
 *   context_window_fallbacks: invalid_request from a 400 whose upstream
 *                             error code is "context_length_exceeded".
 * Any other end (success, deadline, cancelled, http, decode, invalid_request
 * otherwise) is final. Each model gets max_attempts of its own; the
 * deadline stays the request's. */
#ifndef LR_FALLBACK_H
#define LR_FALLBACK_H
#include "errors.h"

#define LR_MAX_FALLBACKS 8 /* models in one list */

typedef struct lr_fallback_list {
  int from, n;
  int to[LR_MAX_FALLBACKS];
} lr_fallback_list;

typedef struct lr_fallbacks {
  lr_fallback_list *list[2]; /* [0] fallbacks, [1] context_window_fallbacks */
  int n[2];
} lr_fallbacks;

/* What a request carries for them (in lr_req). */
typedef struct lr_fallback_state {
  int origin;           /* the model it was submitted with (-1: none) */
  int step[2];          /* models of each list tried so far */
  int context_exceeded; /* its last answer was a 400 context_length_exceeded */
} lr_fallback_state;

void lr_fallbacks_free(lr_fallbacks *f);
/* Sets model from's list (context: 1 for context_window_fallbacks) to
 * to[0..n) (n at most LR_MAX_FALLBACKS, more are dropped). 0, or -1 when out of memory. */
int lr_fallbacks_set(lr_fallbacks *f, int context, int from, const int *to, int n);
/* Does a request that ends with kind (context_exceeded: its last answer said
 * so) fall back? -1 when not, else which list (0 or 1). */
int lr_fallback_list_for(lr_error_kind kind, int context_exceeded);
/* The next model of list `which` for a request in state s (its step moves
 * past it), or -1 when the list has none left. */
int lr_fallback_next(const lr_fallbacks *f, int which, lr_fallback_state *s);

#endif
