/* Lua binding of the bare relay (relay.c plus shared.c) and of the stream
 * decoder (sse.c plus answer.c), for executors written in Lua: the OpenResty
 * transport sends with cosockets, and asks these objects every question of
 * policy. Conversions only; the time is the caller's (`now` arguments). The
 * contract a Lua executor keeps with these objects is csrc/executor.h's. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "clock.h"
#include "compat.h"
#include "errors.h"
#include "executor.h"
#include "hints.h"
#include "jsoncheck.h"
#include "l_common.h"
#include "relay.h"
#include "shared.h"
#include "sse.h"

#define RELAY_MT "llmrelay.relay"
#define DECODER_MT "llmrelay.stream_decoder"

/* A request slot. Slots are allocated one by one (the relay keeps pointers
 * into them) and reused through a free list; a request's id is its slot's
 * index + 1, valid from submit until result() or cancel(). */
typedef struct rq {
  lr_req req;
  int used;
  int index; /* in slots[] */
  struct rq *next_free;
} rq;

typedef struct {
  lr_relay *rl; /* NULL once closed */
  rq **slots;
  int n_slots, cap_slots;
  rq *free_list;
} relay_ud;

static relay_ud *check_relay(lua_State *L) {
  relay_ud *ud = luaL_checkudata(L, 1, RELAY_MT);
  if (!ud->rl) luaL_error(L, "llmrelay relay is closed");
  return ud;
}

static double req_id(void *udata) { return (double)(uintptr_t)udata; }

/* The live request with this id (argument idx), or NULL. */
static rq *find(lua_State *L, relay_ud *ud, int idx) {
  lua_Number v = luaL_checknumber(L, idx);
  if (v < 1 || v > ud->n_slots || v != floor(v)) return NULL;
  rq *q = ud->slots[(int)v - 1];
  return q->used ? q : NULL;
}

static void release(relay_ud *ud, rq *q) {
  q->used = 0;
  q->next_free = ud->free_list;
  ud->free_list = q;
}

static void free_relay(relay_ud *ud) {
  if (ud->rl) lr_relay_free(ud->rl);
  ud->rl = NULL;
  for (int k = 0; k < ud->n_slots; k++) free(ud->slots[k]);
  free(ud->slots);
  ud->slots = NULL;
  ud->n_slots = ud->cap_slots = 0;
  ud->free_list = NULL;
}

/* core.relay(cfg, now) -> relay. cfg: the normalized config. */
static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  double now = luaL_checknumber(L, 2);
  relay_ud *ud = lrl_new_object(L, sizeof *ud, RELAY_MT);
  int top = lua_gettop(L);
  lr_client_cfg cfg;
  lr_client_endpoint *eps;
  int n;
  lrl_read_config(L, 1, &cfg, &eps, &n);
  lr_endpoint_cfg pol[LR_MAX_ENDPOINTS];
  for (int i = 0; i < n; i++) pol[i] = eps[i].policy;
  ud->rl = lr_relay_new(&cfg.relay, pol, n, cfg.strategy, &cfg.breaker, cfg.seed, now);
  if (!ud->rl) return luaL_error(L, "llmrelay.core: out of memory");
  lrl_read_routes(L, 1, ud->rl); /* an error frees the relay with its userdata */
  lua_settop(L, top);
  return 1;
}

/* submit(model|nil, tokens, timeout|nil, deadline|nil (absolute, the caller's clock), priority|nil,
 *        only|nil, api|nil) -> id. only: the endpoints the request may use (1-based numbers, one a byte);
 *        api: "chat" (nil), "embeddings", "responses" or "completions". */
static int l_submit(lua_State *L) {
  relay_ud *ud = check_relay(L);
  size_t mlen = 0;
  const char *model = luaL_optlstring(L, 2, NULL, &mlen);
  double tokens = luaL_optnumber(L, 3, 0);
  double timeout = luaL_optnumber(L, 4, 0);
  double deadline = lua_isnoneornil(L, 5) ? INFINITY : luaL_checknumber(L, 5);
  int priority = (int)luaL_optinteger(L, 6, 0);
  size_t olen = 0;
  const char *only = luaL_optlstring(L, 7, NULL, &olen);
  rq *q = ud->free_list;
  if (q) {
    ud->free_list = q->next_free;
  } else {
    if (ud->n_slots == ud->cap_slots) {
      int cap = ud->cap_slots ? ud->cap_slots * 2 : 64;
      rq **s = realloc(ud->slots, (size_t)cap * sizeof *s);
      if (!s) goto oom;
      ud->slots = s;
      ud->cap_slots = cap;
    }
    q = calloc(1, sizeof *q);
    if (!q) goto oom;
    q->index = ud->n_slots;
    ud->slots[ud->n_slots++] = q;
  }
  q->used = 1;
  uintptr_t id = (uintptr_t)q->index + 1;
  lr_api api = lrl_check_api(L, 8);
  int why;
  uint64_t allowed = lrl_request_allowed(ud->rl, model, mlen, api, only, olen, &why);
  lr_relay_submit(ud->rl, &q->req, allowed, tokens, deadline, timeout, priority, (void *)id);
  lrl_route_request(ud->rl, &q->req, model, mlen, api, only, olen, why);
  lua_pushnumber(L, (lua_Number)id);
  return 1;
oom:
  lua_pushnil(L);
  lua_pushliteral(L, "out of memory");
  return 2;
}

/* poll(now, out) -> n, next_wake. Fills out[] with n actions of 4 values:
 * id, endpoint (1-based: send attempt now; 0: finished, see result(id)),
 * attempt number, attempt timeout in seconds. next_wake: math.huge when
 * only a report or a submit can help. */
static int l_poll(lua_State *L) {
  relay_ud *ud = check_relay(L);
  double now = luaL_checknumber(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lr_req *out[LRL_POLL_BATCH];
  double next_wake = INFINITY;
  int n = lr_relay_poll(ud->rl, now, out, LRL_POLL_BATCH, &next_wake);
  for (int k = 0; k < n; k++) {
    lr_req *r = out[k];
    int sending = r->state == LR_REQ_SENDING;
    lua_pushnumber(L, req_id(r->udata));
    lua_rawseti(L, 3, 4 * k + 1);
    lua_pushinteger(L, sending ? r->endpoint + 1 : 0);
    lua_rawseti(L, 3, 4 * k + 2);
    lua_pushinteger(L, r->attempts);
    lua_rawseti(L, 3, 4 * k + 3);
    lua_pushnumber(L, sending ? r->attempt_timeout_s : 0);
    lua_rawseti(L, 3, 4 * k + 4);
  }
  lua_pushinteger(L, n);
  lua_pushnumber(L, next_wake);
  return 2;
}

/* result(id) -> { ok, attempts, status, endpoint, latency, kind, message, retry_after }
 * for a finished request; the id is free afterwards. nil if not finished. */
/* Pushes a finished request's result table (the shape of the client's take()). */
static void push_done(lua_State *L, lr_relay *rl, const lr_req *r, int extra) {
  lrl_push_result(L, rl, r, extra);
  if (r->kind != LR_E_NONE) {
    lrl_set_str(L, "kind", lr_error_kind_name(r->kind));
    if (r->message[0]) lrl_set_str(L, "message", r->message);
    if (r->retry_after_s >= 0) lrl_set_num(L, "retry_after", r->retry_after_s);
  }
}

static int l_result(lua_State *L) {
  relay_ud *ud = check_relay(L);
  rq *q = find(L, ud, 2);
  if (!q || q->req.state != LR_REQ_DONE) return 0;
  push_done(L, ud->rl, &q->req, 3);
  /* read before poll handed it out: it is still on the relay's done list */
  lr_relay_cancel(ud->rl, &q->req, q->req.kind, 0);
  release(ud, q);
  return 1;
}

static lr_error_kind kind_of(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return LR_E_NONE;
  const char *s = luaL_checkstring(L, idx);
  for (int k = 1; k < LR_E__COUNT; k++)
    if (strcmp(s, lr_error_kind_name((lr_error_kind)k)) == 0) return (lr_error_kind)k;
  return (lr_error_kind)luaL_argerror(L, idx, "unknown error kind");
}

static const char *verdict_names[] = {"success", "failure", "neutral"};

/* report(id, now, status, transport_kind|nil, body_ok, headers|nil, message|nil,
 *        not_sent, usage_tokens|nil, committed, partial, context_exceeded) -> verdict, endpoint
 * headers: the raw header block ("Name: value" lines). verdict: what the
 * attempt said of its endpoint's health ("success" "failure" "neutral"). */
static int l_report(lua_State *L) {
  relay_ud *ud = check_relay(L);
  rq *q = find(L, ud, 2);
  if (!q || q->req.state != LR_REQ_SENDING) return 0;
  double now = luaL_checknumber(L, 3);
  lr_outcome o;
  memset(&o, 0, sizeof o);
  o.status = (int)luaL_optinteger(L, 4, 0);
  o.transport = kind_of(L, 5);
  o.body_ok = lua_toboolean(L, 6);
  lr_hints h;
  size_t hl = 0;
  const char *hb = luaL_optlstring(L, 7, NULL, &hl);
  if (hb) {
    lr_hints_init(&h);
    lr_hints_feed_block(&h, hb, hl, lr_now_wall()); /* HTTP dates are wall-clock times */
    o.hints = &h;
  }
  o.message = luaL_optstring(L, 8, NULL);
  o.not_sent = lua_toboolean(L, 9);
  o.usage_tokens = luaL_optnumber(L, 10, -1);
  o.committed = lua_toboolean(L, 11);
  o.partial = lua_toboolean(L, 12);
  o.context_exceeded = lua_toboolean(L, 13);
  int ep = q->req.endpoint;
  lr_relay_report(ud->rl, &q->req, &o, now);
  lua_pushstring(L, verdict_names[q->req.verdict]);
  lua_pushinteger(L, ep + 1);
  return 2;
}

/* wire_model(id) -> the name the SENDING request's body must carry on its
 * endpoint (the endpoint's name for its logical model), or nil: as it is */
static int l_wire_model(lua_State *L) {
  relay_ud *ud = check_relay(L);
  rq *q = find(L, ud, 2);
  if (!q || q->req.state != LR_REQ_SENDING) return 0;
  size_t len;
  const char *name = lr_relay_wire_model(ud->rl, &q->req, q->req.endpoint, &len);
  if (!name) return 0;
  lua_pushlstring(L, name, len);
  return 1;
}

/* is_probe(id) -> whether the attempt being sent is a half-open probe */
static int l_is_probe(lua_State *L) {
  relay_ud *ud = check_relay(L);
  rq *q = find(L, ud, 2);
  lua_pushboolean(L, q && q->req.state == LR_REQ_SENDING && q->req.probe);
  return 1;
}

/* unsend(id, now, until): the attempt was not sent after all (see lr_relay_unsend). */
static int l_unsend(lua_State *L) {
  relay_ud *ud = check_relay(L);
  rq *q = find(L, ud, 2);
  if (q) lr_relay_unsend(ud->rl, &q->req, luaL_checknumber(L, 4), luaL_checknumber(L, 3));
  return 0;
}

/* cancel(id, now, kind|nil) -> previous state ("sending", ...), result | nil: the id is
 * free afterwards; result is what the request ended with (kind "cancelled", or kind), the
 * table result() gives, for the executor to hand to its waiter as the libcurl client does */
static int l_cancel(lua_State *L) {
  static const char *states[] = {"new", "ready", "waiting", "sending", "done"};
  relay_ud *ud = check_relay(L);
  rq *q = find(L, ud, 2);
  if (!q) return 0;
  lr_error_kind kind = lua_isnoneornil(L, 4) ? LR_E_CANCELLED : kind_of(L, 4);
  lr_req_state was = lr_relay_cancel(ud->rl, &q->req, kind, luaL_checknumber(L, 3));
  lua_pushstring(L, states[was]);
  int n = 1;
  if (q->req.state == LR_REQ_DONE) { /* its result, as the libcurl client hands a cancelled call back */
    push_done(L, ud->rl, &q->req, 3);
    n = 2;
  }
  release(ud, q);
  return n;
}

static int check_ep(lua_State *L, relay_ud *ud, int idx) {
  int i = (int)luaL_checkinteger(L, idx) - 1;
  if (i < 0 || i >= lr_relay_pool(ud->rl)->n) luaL_argerror(L, idx, "no such endpoint");
  return i;
}

/* reached(endpoint): a connection to it was made */
static int l_reached(lua_State *L) {
  relay_ud *ud = check_relay(L);
  lr_pool_reached(lr_relay_pool(ud->rl), check_ep(L, ud, 2));
  return 0;
}

static void read_view(lua_State *L, int idx, lr_shared_view *v) {
  v->fails = luaL_optnumber(L, idx, 0);
  v->open_until = luaL_optnumber(L, idx + 1, 0);
  v->cooldown_s = luaL_optnumber(L, idx + 2, 0);
  v->throttled_until = luaL_optnumber(L, idx + 3, 0);
  v->in_flight = luaL_optnumber(L, idx + 4, 0);
  v->proven = lua_toboolean(L, idx + 5);
}

/* admit(endpoint, now, probe, fails, open_until, cooldown, throttled_until, in_flight, proven) -> ok, retry_at */
static int l_admit(lua_State *L) {
  relay_ud *ud = check_relay(L);
  int i = check_ep(L, ud, 2);
  lr_shared_view v;
  read_view(L, 5, &v);
  double at;
  int ok = lr_shared_admit(lr_relay_pool(ud->rl), i, &v, lua_toboolean(L, 4), luaL_checknumber(L, 3), &at);
  lua_pushboolean(L, ok);
  lua_pushnumber(L, at);
  return 2;
}

static lr_relay *relay_of(lua_State *L) { return check_relay(L)->rl; }
LRL_SHARED_METHODS(relay_of)

static int l_status(lua_State *L) {
  relay_ud *ud = check_relay(L);
  lrl_push_status(L, lr_relay_pool(ud->rl), luaL_checknumber(L, 2));
  return 1;
}

static int l_enable_events(lua_State *L) {
  lr_relay_enable_events(check_relay(L)->rl, lua_toboolean(L, 2));
  return 0;
}

static int l_events(lua_State *L) { return lrl_push_events(L, check_relay(L)->rl, req_id); }

static int l_active(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lr_relay_active(check_relay(L)->rl));
  return 1;
}

static int l_in_flight(lua_State *L) {
  lua_pushinteger(L, lr_relay_in_flight(check_relay(L)->rl));
  return 1;
}

static int l_close(lua_State *L) {
  free_relay(luaL_checkudata(L, 1, RELAY_MT));
  return 0;
}

/* ---- the stream decoder --------------------------------------------------- */

typedef struct {
  lr_evstream es;
  lr_evq q; /* during a feed: its data events */
  int live;
} decoder_ud;

static const char *fault_names[] = {NULL,           "error_event",         "bad_event", "too_big",
                                    "response_failed", "response_incomplete", "nomem"}; /* by lr_stream_fault */

static decoder_ud *check_decoder_at(lua_State *L, int idx) {
  decoder_ud *d = luaL_checkudata(L, idx, DECODER_MT);
  if (!d->live) luaL_error(L, "llmrelay stream decoder is closed");
  return d;
}

static decoder_ud *check_decoder(lua_State *L) { return check_decoder_at(L, 1); }

/* core.stream_decoder(max_response_bytes|nil, api|nil) -> decoder; one event may take
 * that much, and at most 4 MiB (lr_answer_max_event); api: "responses" reads
 * named events (evbuf.h), the others chat's chunks */
static int l_decoder_new(lua_State *L) {
  size_t max = lr_answer_max_event(SIZE_MAX);
  if (!lua_isnoneornil(L, 1)) {
    lua_Number v = luaL_checknumber(L, 1);
    if (v < (lua_Number)max) max = v < 1 ? 1 : (size_t)v;
  }
  lr_api api = lrl_check_api(L, 2);
  decoder_ud *d = lrl_new_object(L, sizeof *d, DECODER_MT);
  lr_evstream_init(&d->es, max);
  d->es.api = api;
  d->live = 1;
  return 1;
}

/* feed(bytes) -> events, fault|nil, fault_text|nil, kind|nil, message|nil
 * events: the data of each chunk for the caller (JSON object texts). fault:
 * "error_event" (the server failed mid-stream), "bad_event" (not a JSON
 * object), "too_big" (an event over the cap), "response_failed",
 * "response_incomplete" (Responses: the server ended it so), "nomem". A fault sticks.
 * kind, message: the attempt's outcome it makes (lr_answer_fault). */
static int l_decoder_feed(lua_State *L) {
  decoder_ud *d = check_decoder(L);
  size_t len;
  const char *b = luaL_checklstring(L, 2, &len);
  int was = d->es.fault;
  int fault = lr_evstream_feed(&d->es, &d->q, b, len);
  lrl_push_evq(L, d->q.buf, d->q.len, d->q.n);
  lr_evq_clear(&d->q);
  if (fault == LR_SF_NONE) return 1;
  lua_pushstring(L, fault_names[fault]);
  if (fault != was && LR_SF_KEEPS_TEXT(fault))
    lua_pushlstring(L, d->es.fault_text, d->es.fault_text_len);
  else
    lua_pushnil(L);
  char msg[96];
  lua_pushstring(L, lr_error_kind_name(lr_answer_fault((lr_stream_fault)fault, d->es.sse.max_event, msg, sizeof msg)));
  lua_pushstring(L, msg);
  return 5;
}

/* state() -> saw_done, saw_finish, usage_tokens (-1 unknown) */
static int l_decoder_state(lua_State *L) {
  decoder_ud *d = check_decoder(L);
  lua_pushboolean(L, d->es.saw_done);
  lua_pushboolean(L, d->es.saw_finish);
  lua_pushnumber(L, d->es.usage);
  return 3;
}

/* complete() -> whether the stream so far is a whole answer ([DONE] or a finish_reason came;
 * Responses: response.completed) */
static int l_decoder_complete(lua_State *L) {
  decoder_ud *d = check_decoder(L);
  lr_sse_finish(&d->es.sse);
  lua_pushboolean(L, lr_evstream_complete(&d->es));
  return 1;
}

/* reset(): ready for a new stream (the next attempt) */
static int l_decoder_reset(lua_State *L) {
  decoder_ud *d = check_decoder(L);
  lr_evstream_reset(&d->es);
  return 0;
}

static int l_decoder_gc(lua_State *L) {
  decoder_ud *d = luaL_checkudata(L, 1, DECODER_MT);
  if (d->live) {
    lr_evstream_free(&d->es);
    lr_evq_free(&d->q);
  }
  d->live = 0;
  return 0;
}

/* core.attempt_outcome(status, err_kind|nil, err|nil, decoder|nil, body|nil, max_response_bytes)
 *   -> kind|nil, message|nil, body_ok, usage_tokens|nil, keep_text|nil, context_exceeded
 * The outcome of an attempt from what the executor saw (lr_outcome_shape, as
 * the libcurl executor shapes its own): err_kind, err: its transfer failed
 * (a kind and the message it made); decoder: the stream decoder of a streamed
 * answer; body: a buffered one. keep_text: what to keep for the request's
 * message (an error answer's body, a stream's error event). */
static int l_attempt_outcome(lua_State *L) {
  lr_attempt_facts f = {.end = LR_END_ANSWER, .status = (int)luaL_optinteger(L, 1, 0)};
  if (!lua_isnoneornil(L, 2)) {
    f.end = LR_END_ERROR;
    f.error = kind_of(L, 2);
    f.text = luaL_optstring(L, 3, NULL);
  }
  if (!lua_isnoneornil(L, 4)) f.stream = &check_decoder_at(L, 4)->es;
  f.body = luaL_optlstring(L, 5, NULL, &f.body_len);
  lua_Number max = luaL_optnumber(L, 6, LRL_DEFAULT_RESPONSE_BYTES);
  if (!(max >= LRL_MIN_RESPONSE_BYTES && max <= LRL_MAX_RESPONSE_BYTES))
    return luaL_argerror(L, 6, "max_response_bytes out of range");
  f.max_response_bytes = (size_t)max;
  lr_outcome o;
  char msg[LRL_ERROR_BODY + 128];
  const char *keep;
  size_t keep_len;
  lr_outcome_shape(&f, &o, msg, sizeof msg, &keep, &keep_len);
  if (o.transport != LR_E_NONE) lua_pushstring(L, lr_error_kind_name(o.transport));
  else lua_pushnil(L);
  if (o.message) lua_pushstring(L, o.message);
  else lua_pushnil(L);
  lua_pushboolean(L, o.body_ok);
  if (o.usage_tokens >= 0) lua_pushnumber(L, o.usage_tokens);
  else lua_pushnil(L);
  if (keep) lua_pushlstring(L, keep, keep_len > LRL_ERROR_BODY ? LRL_ERROR_BODY : keep_len);
  else lua_pushnil(L);
  lua_pushboolean(L, o.context_exceeded);
  return 6;
}

/* core.shared_bucket(per_minute, t0, used_after, need, now) -> ok, excess, retry_at
 * (see lr_shared_bucket; the bucket is shaped as the configured limiters are) */
static int l_shared_bucket(lua_State *L) {
  double rate, cap, excess, at;
  lr_limiter_shape(luaL_checknumber(L, 1), &rate, &cap);
  int ok = lr_shared_bucket(rate, cap, luaL_checknumber(L, 2), luaL_checknumber(L, 3), luaL_checknumber(L, 4),
                            luaL_checknumber(L, 5), &excess, &at);
  lua_pushboolean(L, ok);
  lua_pushnumber(L, excess);
  lua_pushnumber(L, at);
  return 3;
}

void lr_relay_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"submit", l_submit},   {"poll", l_poll},       {"result", l_result},   {"report", l_report},
      {"is_probe", l_is_probe}, {"wire_model", l_wire_model}, {"unsend", l_unsend}, {"cancel", l_cancel},   {"reached", l_reached},
      {"admit", l_admit},     {"status", l_status},   LRL_SHARED_REG,
      {"events", l_events},   {"enable_events", l_enable_events}, {"active", l_active},
      {"in_flight", l_in_flight}, {"close", l_close}, {NULL, NULL}};
  static const luaL_Reg mm[] = {{"__gc", l_close}, {NULL, NULL}};
  lrl_register_class(L, RELAY_MT, mm, methods);
  static const luaL_Reg dmethods[] = {{"feed", l_decoder_feed}, {"state", l_decoder_state},
                                      {"complete", l_decoder_complete}, {"reset", l_decoder_reset},
                                      {"close", l_decoder_gc}, {NULL, NULL}};
  static const luaL_Reg dmm[] = {{"__gc", l_decoder_gc}, {NULL, NULL}};
  lrl_register_class(L, DECODER_MT, dmm, dmethods);
  static const luaL_Reg fns[] = {{"relay", l_new},
                                 {"stream_decoder", l_decoder_new},
                                 {"attempt_outcome", l_attempt_outcome},
                                 {"shared_bucket", l_shared_bucket},
                                 {NULL, NULL}};
  lrc_setfuncs(L, fns, 0);
}
