/* See classify.h. */
#include "classify.h"

static double server_delay(const lr_outcome *o) { return o->hints ? lr_hints_server_delay(o->hints) : -1; }

lr_classification lr_classify(const lr_outcome *o, double deadline, double now) {
  lr_classification c = {LR_E_NONE, LR_VERDICT_NEUTRAL, LR_ACT_RETRY, 0, 0, 0};
  int st = o->status;
  if (o->transport != LR_E_NONE) {
    c.kind = o->transport;
    switch (o->transport) {
    case LR_E_TIMEOUT:
      c.health = LR_VERDICT_FAILURE;
      if (now >= deadline - 1e-3) {
        c.kind = LR_E_DEADLINE;
        c.action = LR_ACT_FINAL;
      }
      break;
    case LR_E_CONNECT:
    case LR_E_DECODE:
    case LR_E_SERVER_ERROR: /* a stream's error event */
      c.health = LR_VERDICT_FAILURE;
      break;
    default: /* body over the cap, cancelled: trying elsewhere would end the same */
      c.action = LR_ACT_FINAL;
      break;
    }
    return c;
  }
  if (st >= 200 && st < 300) {
    if (o->body_ok) {
      c.action = LR_ACT_OK;
      c.health = LR_VERDICT_SUCCESS;
    } else {
      /* The endpoint answered; what it said cannot be used. The same request
       * would likely get the same answer there (an echo of the request, an
       * answer over the decode cap), so it goes elsewhere, and the breaker
       * does not count it: one request's answer must not close an endpoint
       * for every other request. */
      c.kind = LR_E_DECODE;
      c.action = LR_ACT_RETRY_ELSEWHERE;
    }
    return c;
  }
  int should_retry = o->hints ? o->hints->should_retry : -1;
  double sd = server_delay(o);
  if (st == 429) {
    c.kind = LR_E_RATE_LIMITED;
    c.free = 1;
    if (sd >= 0) c.throttle_s = sd;
    else c.bare = 1; /* no hint: information about the endpoint's rate, not a reason to sleep */
  } else if (st >= 500) {
    c.kind = LR_E_SERVER_ERROR;
    c.health = LR_VERDICT_FAILURE;
    if (sd > 0) c.throttle_s = sd; /* a 503 with Retry-After asks for a pause */
  } else if (st == 401 || st == 402 || st == 403) {
    c.kind = LR_E_HTTP; /* this endpoint's key or account is bad: another may be fine */
    c.health = LR_VERDICT_FAILURE;
  } else if (st == 404) {
    c.kind = LR_E_HTTP; /* this endpoint does not serve the model (or the path) */
    c.action = LR_ACT_RETRY_ELSEWHERE;
    c.free = 1;
  } else if (st == 408) {
    c.kind = LR_E_TIMEOUT;
    c.health = LR_VERDICT_FAILURE;
  } else if (st == 409 || st == 425) {
    c.kind = LR_E_HTTP;
  } else if (st == 400 || st == 413 || st == 422) {
    c.kind = LR_E_INVALID_REQUEST; /* the request is wrong: it would fail anywhere */
    c.health = LR_VERDICT_SUCCESS;
    c.action = LR_ACT_FINAL;
  } else {
    c.kind = LR_E_HTTP;
    c.action = should_retry == 1 ? LR_ACT_RETRY : LR_ACT_FINAL;
  }
  if (should_retry == 0 && c.action != LR_ACT_OK) c.action = LR_ACT_FINAL;
  return c;
}
