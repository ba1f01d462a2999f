/* Lua binding of the libcurl client: converts between Lua values and the C
 * structs, nothing more. Retry and failover logic lives in relay.c. */
#include <curl/curl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "errors.h"
#include "transport_curl.h"

#define CLIENT_MT "llmrelay.client"

typedef struct {
  lr_client *c; /* NULL once closed */
} client_ud;

/* ---- reading the normalized config (validated by lua/llmrelay/config.lua) -- */

static double num_field(lua_State *L, int t, const char *k, double dflt) {
  lua_getfield(L, t, k);
  double v = lua_isnil(L, -1) ? dflt : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static int sub_table(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  if (!lua_istable(L, -1)) luaL_error(L, "config.%s must be a table", k);
  return lua_gettop(L);
}

/* Everything built while reading the config, in a userdata whose __gc frees
 * it, so an error half-way through leaks nothing. */
#define SCRATCH_MT "llmrelay.scratch"
#define MAX_HEADERS 40
#define MAX_MODELS 32

typedef struct {
  lr_client_endpoint eps[LR_MAX_ENDPOINTS];
  const char *hdrs[LR_MAX_ENDPOINTS][MAX_HEADERS];
  const char *models[LR_MAX_ENDPOINTS][MAX_MODELS];
  char *items[LR_MAX_ENDPOINTS * (MAX_HEADERS + MAX_MODELS + 1)];
  int n;
} scratch;

static const char *keep(lua_State *L, scratch *s, const char *a, const char *b, const char *c) {
  size_t la = strlen(a), lb = b ? strlen(b) : 0, lc = c ? strlen(c) : 0;
  if (s->n == (int)(sizeof s->items / sizeof s->items[0])) luaL_error(L, "config too large");
  char *p = malloc(la + lb + lc + 1);
  if (!p) luaL_error(L, "out of memory");
  memcpy(p, a, la);
  if (b) memcpy(p + la, b, lb);
  if (c) memcpy(p + la + lb, c, lc);
  p[la + lb + lc] = 0;
  s->items[s->n++] = p;
  return p;
}

static int scratch_gc(lua_State *L) {
  scratch *s = luaL_checkudata(L, 1, SCRATCH_MT);
  for (int i = 0; i < s->n; i++) free(s->items[i]);
  s->n = 0;
  return 0;
}

static int has_crlf(const char *s) { return strpbrk(s, "\r\n") != NULL; }

static void read_endpoint(lua_State *L, int t, int i, lr_client_endpoint *ep, const char **hdr, const char **models,
                          scratch *s) {
  lua_getfield(L, t, "url");
  const char *url = luaL_checkstring(L, -1);
  ep->url = keep(L, s, url, NULL, NULL);
  lua_pop(L, 1);
  int nh = 0;
  lua_getfield(L, t, "api_key");
  if (lua_isstring(L, -1)) {
    const char *key = lua_tostring(L, -1);
    if (has_crlf(key)) luaL_error(L, "endpoints[%d].api_key must not contain CR or LF", i + 1);
    hdr[nh++] = keep(L, s, "Authorization: Bearer ", key, NULL);
  }
  lua_pop(L, 1);
  hdr[nh++] = "Content-Type: application/json";
  hdr[nh++] = "Accept: application/json, text/event-stream";
  hdr[nh++] = "Expect:"; /* no 100-continue round trip before the body */
  lua_getfield(L, t, "headers");
  if (lua_istable(L, -1)) {
    int n = (int)lrc_rawlen(L, -1);
    if (n > MAX_HEADERS - 4) luaL_error(L, "endpoints[%d].headers: at most %d", i + 1, MAX_HEADERS - 4);
    for (int k = 1; k <= n; k++) {
      lua_rawgeti(L, -1, k);
      lua_rawgeti(L, -1, 1);
      lua_rawgeti(L, -2, 2);
      const char *name = luaL_checkstring(L, -2), *value = luaL_checkstring(L, -1);
      if (has_crlf(name) || has_crlf(value))
        luaL_error(L, "endpoints[%d].headers[\"%s\"] must not contain CR or LF", i + 1, name);
      hdr[nh++] = keep(L, s, name, ": ", value);
      lua_pop(L, 3);
    }
  }
  lua_pop(L, 1);
  ep->headers = hdr;
  ep->n_headers = nh;
  int nm = 0;
  lua_getfield(L, t, "models");
  if (lua_istable(L, -1)) {
    int n = (int)lrc_rawlen(L, -1);
    if (n > MAX_MODELS) luaL_error(L, "endpoints[%d].models: at most %d", i + 1, MAX_MODELS);
    for (int k = 1; k <= n; k++) {
      lua_rawgeti(L, -1, k);
      models[nm++] = keep(L, s, luaL_checkstring(L, -1), NULL, NULL);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  ep->models = models;
  ep->n_models = nm;
  ep->policy.weight = num_field(L, t, "weight", 1);
  ep->policy.max_concurrency = (int)num_field(L, t, "max_concurrency", 0);
  ep->policy.rpm = num_field(L, t, "rpm", 0);
  ep->policy.tpm = num_field(L, t, "tpm", 0);
}

static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  client_ud *ud = lrc_newuserdata(L, sizeof *ud); /* created closed: an error below leaves nothing half-built */
  ud->c = NULL;
  luaL_getmetatable(L, CLIENT_MT);
  lua_setmetatable(L, -2);
  int top = lua_gettop(L);

  lr_client_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  int t = sub_table(L, 1, "retry");
  cfg.relay.max_attempts = (int)num_field(L, t, "max_attempts", 5);
  cfg.relay.backoff.base_delay_s = num_field(L, t, "base_delay", 0.5);
  cfg.relay.backoff.max_delay_s = num_field(L, t, "max_delay", 30);
  cfg.relay.backoff.max_retry_after_s = num_field(L, t, "max_retry_after", 120);
  cfg.relay.budget = num_field(L, t, "budget", 0.2);
  t = sub_table(L, 1, "breaker");
  cfg.breaker.failure_threshold = (int)num_field(L, t, "failure_threshold", 5);
  cfg.breaker.failure_rate = num_field(L, t, "failure_rate", 0.5);
  cfg.breaker.min_calls = (int)num_field(L, t, "min_calls", 20);
  cfg.breaker.window_s = num_field(L, t, "window", 30);
  cfg.breaker.cooldown_s = num_field(L, t, "cooldown", 60);
  cfg.breaker.max_cooldown_s = num_field(L, t, "max_cooldown", 300);
  cfg.breaker.half_open_probes = (int)num_field(L, t, "half_open_probes", 1);
  t = sub_table(L, 1, "timeout");
  cfg.connect_timeout_s = num_field(L, t, "connect", 5);
  cfg.first_byte_timeout_s = num_field(L, t, "first_byte", 60);
  cfg.idle_timeout_s = num_field(L, t, "idle", 30);
  cfg.relay.attempt_timeout_s = num_field(L, t, "total", 600);
  t = sub_table(L, 1, "tls");
  lua_getfield(L, t, "ca_file");
  cfg.ca_file = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
  lua_getfield(L, t, "insecure");
  cfg.insecure = lua_toboolean(L, -1);
  cfg.max_response_bytes = (size_t)num_field(L, 1, "max_response_bytes", 64.0 * 1024 * 1024);
  cfg.relay.concurrency = (int)num_field(L, 1, "concurrency", 64);
  lua_getfield(L, 1, "user_agent");
  cfg.user_agent = lua_isstring(L, -1) ? lua_tostring(L, -1) : "llmrelay";
  lua_getfield(L, 1, "strategy");
  const char *strat = lua_isstring(L, -1) ? lua_tostring(L, -1) : "weighted";
  cfg.strategy = strcmp(strat, "priority") == 0      ? LR_STRATEGY_PRIORITY
                 : strcmp(strat, "round_robin") == 0 ? LR_STRATEGY_ROUND_ROBIN
                                                     : LR_STRATEGY_WEIGHTED;
  /* jitter must differ between processes that start together */
  cfg.seed = (uint64_t)(lr_now_wall() * 1e6) ^ ((uint64_t)(uintptr_t)ud << 16);

  t = sub_table(L, 1, "endpoints");
  int n = (int)lrc_rawlen(L, t);
  if (n < 1 || n > LR_MAX_ENDPOINTS) return luaL_error(L, "config.endpoints must hold 1 to %d endpoints", LR_MAX_ENDPOINTS);
  scratch *s = lrc_newuserdata(L, sizeof *s);
  s->n = 0;
  luaL_getmetatable(L, SCRATCH_MT);
  lua_setmetatable(L, -2);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, t, i + 1);
    if (!lua_istable(L, -1)) return luaL_error(L, "config.endpoints[%d] must be a table", i + 1);
    read_endpoint(L, lua_gettop(L), i, &s->eps[i], s->hdrs[i], s->models[i], s);
    lua_pop(L, 1);
  }
  char err[256];
  ud->c = lr_client_new(&cfg, s->eps, n, err, sizeof err);
  if (!ud->c) return luaL_error(L, "llmrelay.core: %s", err);
  lua_settop(L, top);
  return 1;
}

static lr_client *check_client(lua_State *L) {
  client_ud *ud = luaL_checkudata(L, 1, CLIENT_MT);
  if (!ud->c) luaL_error(L, "llmrelay client is closed");
  return ud->c;
}

/* submit(body, model|nil, tokens, timeout|nil, deadline_in_s|nil, priority|nil, stream|nil) -> id */
static int l_submit(lua_State *L) {
  lr_client *c = check_client(L);
  size_t len, mlen = 0;
  const char *body = luaL_checklstring(L, 2, &len);
  const char *model = luaL_optlstring(L, 3, NULL, &mlen);
  double tokens = luaL_optnumber(L, 4, 0);
  double timeout = luaL_optnumber(L, 5, 0);
  double deadline = lua_isnoneornil(L, 6) ? INFINITY : lr_now_mono() + luaL_checknumber(L, 6);
  int priority = (int)luaL_optinteger(L, 7, 0);
  int stream = lua_toboolean(L, 8);
  lr_call *call = lr_client_submit(c, body, len, lr_client_serving(c, model, mlen), tokens, timeout, deadline,
                                   priority, stream);
  if (!call) {
    lua_pushnil(L);
    lua_pushliteral(L, "out of memory");
    return 2;
  }
  lua_pushnumber(L, (lua_Number)call->id);
  return 1;
}

/* step(max_wait_s) -> number of finished requests waiting in take(), or nil, err */
static int l_step(lua_State *L) {
  lr_client *c = check_client(L);
  double wait = luaL_optnumber(L, 2, 0);
  char err[256];
  int n = lr_client_step(c, wait, err, sizeof err);
  if (n < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushinteger(L, n);
  return 1;
}

static void set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, long v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* Pushes the call's waiting stream events as an array of strings. */
static void push_events(lua_State *L, lr_client *c, lr_call *call) {
  size_t len;
  long n;
  const char *b = lr_client_stream_take(c, call, &len, &n);
  lua_createtable(L, (int)n, 0);
  size_t off = 0;
  for (long k = 1; k <= n && off + 4 <= len; k++) {
    uint32_t l;
    memcpy(&l, b + off, 4);
    lua_pushlstring(L, b + off + 4, l);
    lua_rawseti(L, -2, (int)k);
    off += 4 + l;
  }
}

/* stream_ready() -> array of ids of streams with events waiting, or nil */
static int l_stream_ready(lua_State *L) {
  lr_client *c = check_client(L);
  uint64_t ids[256];
  int n = lr_client_stream_ready(c, ids, 256), total = 0;
  if (n == 0) return 0;
  lua_createtable(L, n, 0);
  while (n > 0) {
    for (int k = 0; k < n; k++) {
      lua_pushnumber(L, (lua_Number)ids[k]);
      lua_rawseti(L, -2, ++total);
    }
    n = lr_client_stream_ready(c, ids, 256);
  }
  return 1;
}

/* stream_take(id) -> array of event data strings (possibly empty), or nil for
 * an unknown or finished call. The caller has them now: from here on a
 * failure of the stream is final. */
static int l_stream_take(lua_State *L) {
  lr_client *c = check_client(L);
  lr_call *call = lr_client_find(c, (uint64_t)luaL_checknumber(L, 2));
  if (!call || !call->stream || call->req.state == LR_REQ_DONE) return 0;
  push_events(L, c, call);
  return 1;
}

/* take() -> the next finished request as a table, or nil */
static int l_take(lua_State *L) {
  lr_client *c = check_client(L);
  lr_call *call = lr_client_next_done(c);
  if (!call) return 0;
  const lr_req *r = &call->req;
  lua_createtable(L, 0, 10);
  set_num(L, "id", (double)call->id);
  lua_pushboolean(L, r->kind == LR_E_NONE);
  lua_setfield(L, -2, "ok");
  set_int(L, "attempts", r->attempts);
  if (r->status) set_int(L, "status", r->status);
  if (r->last_endpoint >= 0) set_int(L, "endpoint", r->last_endpoint + 1);
  if (r->latency_s >= 0) set_num(L, "latency", r->latency_s);
  if (call->stream) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "stream");
    if (call->ev_n > 0) {
      push_events(L, c, call);
      lua_setfield(L, -2, "events");
    }
  }
  if (r->kind == LR_E_NONE) {
    lua_pushlstring(L, call->resp ? call->resp : "", call->resp_len);
    lua_setfield(L, -2, "body");
  } else {
    set_str(L, "kind", lr_error_kind_name(r->kind));
    if (r->message[0]) set_str(L, "message", r->message);
    if (r->retry_after_s >= 0) set_num(L, "retry_after", r->retry_after_s);
    if (call->err_body_len) {
      lua_pushlstring(L, call->err_body, call->err_body_len);
      lua_setfield(L, -2, "error_body");
    }
  }
  lr_client_release(c, call);
  return 1;
}

static int l_cancel(lua_State *L) {
  lr_client *c = check_client(L);
  lr_call *call = lr_client_find(c, (uint64_t)luaL_checknumber(L, 2));
  if (call && call->req.state != LR_REQ_DONE) lr_client_cancel(c, call);
  lua_pushboolean(L, call != NULL);
  return 1;
}

static int l_pending(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lr_client_pending(check_client(L)));
  return 1;
}

static int l_status(lua_State *L) {
  lr_client *c = check_client(L);
  lr_pool *p = lr_relay_pool(lr_client_relay(c));
  double now = lr_now_mono();
  lua_createtable(L, p->n, 0);
  for (int i = 0; i < p->n; i++) {
    lr_endpoint *e = &p->ep[i];
    lr_pool_usable(p, i, 0, now, NULL, NULL); /* brings a cooled-down breaker to half-open */
    lua_createtable(L, 0, 16);
    set_str(L, "state", lr_breaker_state_name(e->breaker.state));
    set_int(L, "in_flight", e->in_flight);
    set_int(L, "requests", e->requests);
    set_int(L, "successes", e->successes);
    set_int(L, "failures", e->failures);
    set_int(L, "throttles", e->throttles);
    set_int(L, "consecutive_failures", e->breaker.consecutive_failures);
    set_int(L, "times_opened", e->breaker.times_opened);
    if (e->latency_ewma_s >= 0) set_num(L, "latency_ewma", e->latency_ewma_s);
    set_num(L, "success_rate", lr_pool_success_rate(p, i, now));
    if (e->throttled_until > now) set_num(L, "throttled_for", e->throttled_until - now);
    if (e->breaker.state == LR_BREAKER_OPEN) set_num(L, "open_for", e->breaker.open_until - now);
    set_num(L, "cooldown", e->breaker.cooldown_s);
    int calls, fails;
    lr_breaker_window(&e->breaker, &p->breaker_cfg, now, &calls, &fails);
    set_int(L, "window_calls", calls);
    set_int(L, "window_failures", fails);
    if (e->max_concurrency) set_int(L, "max_concurrency", e->max_concurrency);
    /* what the server's rate-limit headers taught us */
    if (e->remaining >= 0 && now < e->remaining_until) set_num(L, "remaining", e->remaining);
    if (e->slot_interval > 0) set_num(L, "server_rpm", 60.0 / e->slot_interval);
    if (e->limit > 0) set_num(L, "adaptive_limit", e->limit);
    if (e->learnt.active) {
      set_num(L, "learnt_rate", e->learnt.rate);
      set_str(L, "learnt_from", e->learnt.borrowed ? "sibling" : e->learnt.estimated ? "own" : "probe");
    }
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static const char *event_names[] = {"retry", "failover", "breaker", "throttle"};

static int l_enable_events(lua_State *L) {
  lr_relay_enable_events(lr_client_relay(check_client(L)), lua_toboolean(L, 2));
  return 0;
}

/* events() -> array of event tables, or nil when there are none */
static int l_events(lua_State *L) {
  lr_client *c = check_client(L);
  lr_event ev[64];
  int n = lr_relay_events(lr_client_relay(c), ev, 64);
  if (n == 0) return 0;
  lua_createtable(L, n, 0);
  for (int k = 0; k < n; k++) {
    lr_event *e = &ev[k];
    lua_createtable(L, 0, 8);
    set_str(L, "type", event_names[e->type]);
    set_int(L, "endpoint", e->endpoint + 1);
    switch (e->type) {
    case LR_EV_FAILOVER:
      set_int(L, "to", e->to + 1);
      /* fall through */
    case LR_EV_RETRY:
      set_int(L, "attempt", e->attempt);
      if (e->kind != LR_E_NONE) set_str(L, "kind", lr_error_kind_name(e->kind));
      if (e->type == LR_EV_RETRY) set_num(L, "delay", e->delay_s);
      if (e->udata) set_num(L, "request", (double)((lr_call *)e->udata)->id);
      break;
    case LR_EV_BREAKER:
      set_str(L, "from", lr_breaker_state_name((lr_breaker_state)e->from));
      set_str(L, "state", lr_breaker_state_name((lr_breaker_state)e->to));
      break;
    case LR_EV_THROTTLE:
      set_num(L, "delay", e->delay_s);
      break;
    }
    if (e->status) set_int(L, "status", e->status);
    lua_rawseti(L, -2, k + 1);
  }
  return 1;
}

static int l_close(lua_State *L) {
  client_ud *ud = luaL_checkudata(L, 1, CLIENT_MT);
  if (ud->c) {
    lr_client_free(ud->c);
    ud->c = NULL;
  }
  return 0;
}

static int l_tostring(lua_State *L) {
  client_ud *ud = luaL_checkudata(L, 1, CLIENT_MT);
  lua_pushfstring(L, "llmrelay.client (%s)", ud->c ? "open" : "closed");
  return 1;
}

static const luaL_Reg methods[] = {
    {"submit", l_submit}, {"step", l_step},     {"take", l_take},     {"cancel", l_cancel},
    {"pending", l_pending}, {"status", l_status}, {"events", l_events}, {"enable_events", l_enable_events},
    {"stream_ready", l_stream_ready}, {"stream_take", l_stream_take},
    {"close", l_close},   {NULL, NULL}};

static const luaL_Reg metamethods[] = {{"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};

void lr_client_open(lua_State *L) {
  luaL_newmetatable(L, SCRATCH_MT);
  lua_pushcfunction(L, scratch_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, CLIENT_MT);
  lrc_setfuncs(L, metamethods, 0);
  lua_newtable(L);
  lrc_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"client", l_new}, {NULL, NULL}};
  lrc_setfuncs(L, fns, 0);
  lua_createtable(L, LR_E__COUNT, 0);
  for (int k = 0; k < LR_E__COUNT; k++) {
    lua_pushstring(L, lr_error_kind_name((lr_error_kind)k));
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "kinds");
}
