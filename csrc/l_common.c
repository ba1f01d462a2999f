/* What both Lua bindings (the libcurl client and the bare relay the
 * OpenResty executor drives) share: reading the normalized config, status
 * tables and events. Conversions only, no policy. */
#include "l_common.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "clock.h"

/* ---- reading the normalized config (validated by lua/llmrelay/config.lua) -- */

/* Every value comes from the normalized config: the core fills in no default
 * of its own, it only checks ranges. A missing one is a programmer's mistake
 * (a config that did not go through llmrelay.config). */
double lrl_num_field(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "config %s must be a number (normalize the config with llmrelay.config)", k);
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static const char *str_field(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "config %s must be a string (normalize the config with llmrelay.config)", k);
  return lua_tostring(L, -1); /* stays on the stack, as lrl_read_config says */
}

/* The ranges lua/llmrelay/config.lua checks first, with the same numbers. */

/* Integer fields land in C ints and sizes: a value out of range is refused,
 * never wrapped. */
static long long int_field(lua_State *L, int t, const char *k, double lo, double hi) {
  double v = lrl_num_field(L, t, k);
  if (!(v >= lo && v <= hi) || v != floor(v)) {
    char range[64]; /* lua_pushfstring knows no %.0f */
    snprintf(range, sizeof range, "from %.0f to %.0f", lo, hi);
    luaL_error(L, "config %s must be an integer %s", k, range);
  }
  return (long long)v;
}

static double seconds_field(lua_State *L, int t, const char *k, int zero_ok) {
  double v = lrl_num_field(L, t, k);
  if (!((v > 0 || (zero_ok && v == 0)) && v <= LRL_MAX_SECONDS)) {
    char range[64];
    snprintf(range, sizeof range, "%s and at most %.0f seconds", zero_ok ? ">= 0" : "above 0", LRL_MAX_SECONDS);
    luaL_error(L, "config %s must be %s", k, range);
  }
  return v;
}

int lrl_sub_table(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  if (!lua_istable(L, -1)) luaL_error(L, "config.%s must be a table", k);
  return lua_gettop(L);
}

/* Everything built while reading the config, in a userdata whose __gc frees
 * it, so an error half-way through leaks nothing. */
#define SCRATCH_MT LRL_SCRATCH_MT

typedef struct {
  lr_client_endpoint eps[LR_MAX_ENDPOINTS];
  const char *hdrs[LR_MAX_ENDPOINTS][LRL_MAX_HEADERS];
  char *items[LR_MAX_ENDPOINTS * (LRL_MAX_HEADERS + 1)];
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

int lrl_scratch_gc(lua_State *L) {
  scratch *s = luaL_checkudata(L, 1, SCRATCH_MT);
  for (int i = 0; i < s->n; i++) free(s->items[i]);
  s->n = 0;
  return 0;
}

static int has_crlf(const char *s) { return strpbrk(s, "\r\n") != NULL; }

/* Pushes endpoint i's list field k (t: the endpoint's table) and returns its
 * length: 0 when it is no table, an error over max. Pop it when done. */
static int open_list(lua_State *L, int t, int i, const char *k, int max) {
  lua_getfield(L, t, k);
  if (!lua_istable(L, -1)) return 0;
  int n = (int)lrc_rawlen(L, -1);
  if (n > max) luaL_error(L, "endpoints[%d].%s: at most %d %s", i + 1, k, max, k);
  return n;
}

static void read_endpoint(lua_State *L, int t, int i, lr_client_endpoint *ep, const char **hdr, scratch *s) {
  lua_getfield(L, t, "url");
  ep->urls[LR_API_CHAT] = keep(L, s, luaL_checkstring(L, -1), NULL, NULL);
  lua_pop(L, 1);
  lua_getfield(L, t, "urls"); /* { [api] = URL }: the other apis' (config.lua derives them) */
  int has_urls = lua_istable(L, -1);
  for (int a = 1; a < LR_API__COUNT; a++) {
    ep->urls[a] = ep->urls[LR_API_CHAT];
    if (!has_urls) continue;
    lua_getfield(L, -1, lr_api_name((lr_api)a));
    if (lua_isstring(L, -1)) ep->urls[a] = keep(L, s, lua_tostring(L, -1), NULL, NULL);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  ep->policy.apis = 0; /* every api, unless endpoints[i].apis lists some */
  lua_getfield(L, t, "apis");
  if (lua_istable(L, -1)) {
    int na = (int)lrc_rawlen(L, -1);
    for (int k = 1; k <= na; k++) {
      lua_rawgeti(L, -1, k);
      size_t alen;
      const char *name = lua_tolstring(L, -1, &alen);
      int a = name ? lr_api_find(name, alen) : -1;
      if (a < 0) luaL_error(L, "endpoints[%d].apis[%d] must name an api", i + 1, k);
      ep->policy.apis |= 1u << a;
      lua_pop(L, 1);
    }
    if (!ep->policy.apis) luaL_error(L, "endpoints[%d].apis must not be empty", i + 1);
  }
  lua_pop(L, 1);
  int nh = 0;
  lua_getfield(L, t, "api_key");
  if (lua_isstring(L, -1)) {
    const char *key = lua_tostring(L, -1);
    if (has_crlf(key)) luaL_error(L, "endpoints[%d].api_key must not contain CR or LF", i + 1);
    lua_getfield(L, t, "auth"); /* "bearer" (nil too) or "api-key": Azure's header */
    const char *auth = lua_tostring(L, -1);
    int api_key = auth && strcmp(auth, "api-key") == 0;
    if (auth && !api_key && strcmp(auth, "bearer") != 0)
      luaL_error(L, "endpoints[%d].auth must be \"bearer\" or \"api-key\"", i + 1);
    lua_pop(L, 1);
    hdr[nh++] = keep(L, s, api_key ? "api-key: " : "Authorization: Bearer ", key, NULL);
  }
  lua_pop(L, 1);
  hdr[nh++] = "Content-Type: application/json";
  hdr[nh++] = "Accept: application/json, text/event-stream";
  hdr[nh++] = "Expect:"; /* no 100-continue round trip before the body */
  int n = open_list(L, t, i, "headers", LRL_MAX_USER_HEADERS);
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
  lua_pop(L, 1);
  ep->headers = hdr;
  ep->n_headers = nh;
  ep->policy.weight = lrl_num_field(L, t, "weight");
  if (!(ep->policy.weight > 0 && ep->policy.weight < HUGE_VAL)) luaL_error(L, "endpoints[%d].weight must be above 0", i + 1);
  ep->policy.max_concurrency = (int)int_field(L, t, "max_concurrency", 0, LRL_MAX_CONCURRENCY);
  ep->policy.rpm = lrl_num_field(L, t, "rpm");
  ep->policy.tpm = lrl_num_field(L, t, "tpm");
  if (!(ep->policy.rpm >= 0 && ep->policy.rpm < HUGE_VAL && ep->policy.tpm >= 0 && ep->policy.tpm < HUGE_VAL))
    luaL_error(L, "endpoints[%d].rpm and .tpm must be numbers >= 0", i + 1);
}


void lrl_read_config(lua_State *L, int idx, lr_client_cfg *out, lr_client_endpoint **eps_out, int *n_out) {
  lr_client_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  int t = lrl_sub_table(L, idx, "retry");
  cfg.relay.max_attempts = (int)int_field(L, t, "max_attempts", 1, LRL_MAX_COUNT);
  cfg.relay.backoff.base_delay_s = seconds_field(L, t, "base_delay", 0);
  cfg.relay.backoff.max_delay_s = seconds_field(L, t, "max_delay", 0);
  cfg.relay.backoff.max_retry_after_s = seconds_field(L, t, "max_retry_after", 1);
  cfg.relay.budget = lrl_num_field(L, t, "budget"); /* -1: no budget */
  if (!(cfg.relay.budget == -1 || (cfg.relay.budget >= 0 && cfg.relay.budget < HUGE_VAL)))
    luaL_error(L, "config budget must be a number >= 0, or -1 for none");
  t = lrl_sub_table(L, idx, "breaker");
  cfg.breaker.failure_threshold = (int)int_field(L, t, "failure_threshold", 1, LRL_MAX_COUNT);
  cfg.breaker.failure_rate = lrl_num_field(L, t, "failure_rate");
  if (!(cfg.breaker.failure_rate > 0 && cfg.breaker.failure_rate <= 1))
    luaL_error(L, "config failure_rate must be a number in (0, 1]");
  cfg.breaker.min_calls = (int)int_field(L, t, "min_calls", 1, LRL_MAX_COUNT);
  cfg.breaker.window_s = seconds_field(L, t, "window", 0);
  cfg.breaker.cooldown_s = seconds_field(L, t, "cooldown", 0);
  cfg.breaker.max_cooldown_s = seconds_field(L, t, "max_cooldown", 0);
  cfg.breaker.half_open_probes = (int)int_field(L, t, "half_open_probes", 1, LRL_MAX_COUNT);
  t = lrl_sub_table(L, idx, "timeout");
  cfg.connect_timeout_s = seconds_field(L, t, "connect", 0);
  cfg.first_byte_timeout_s = seconds_field(L, t, "first_byte", 0);
  cfg.idle_timeout_s = seconds_field(L, t, "idle", 0);
  cfg.relay.attempt_timeout_s = seconds_field(L, t, "total", 0);
  t = lrl_sub_table(L, idx, "tls");
  lua_getfield(L, t, "ca_file");
  cfg.ca_file = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
  lua_getfield(L, t, "insecure");
  if (!lua_isboolean(L, -1)) luaL_error(L, "config tls.insecure must be a boolean (normalize the config with llmrelay.config)");
  cfg.insecure = lua_toboolean(L, -1);
  cfg.max_response_bytes =
      (size_t)int_field(L, idx, "max_response_bytes", LRL_MIN_RESPONSE_BYTES, LRL_MAX_RESPONSE_BYTES);
  cfg.relay.concurrency = (int)int_field(L, idx, "concurrency", 1, LRL_MAX_CONCURRENCY);
  cfg.user_agent = str_field(L, idx, "user_agent");
  const char *strat = str_field(L, idx, "strategy");
  if (strcmp(strat, "priority") == 0) cfg.strategy = LR_STRATEGY_PRIORITY;
  else if (strcmp(strat, "round_robin") == 0) cfg.strategy = LR_STRATEGY_ROUND_ROBIN;
  else if (strcmp(strat, "weighted") == 0) cfg.strategy = LR_STRATEGY_WEIGHTED;
  else if (strcmp(strat, "cost") == 0) cfg.strategy = LR_STRATEGY_COST;
  else luaL_error(L, "config strategy must be \"weighted\", \"priority\", \"round_robin\" or \"cost\"");
  /* jitter must differ between processes that start together */
  cfg.seed = (uint64_t)(lr_now_wall() * 1e6) ^ ((uint64_t)(uintptr_t)&cfg << 16) ^ ((uint64_t)getpid() << 40);

  t = lrl_sub_table(L, idx, "endpoints");
  int n = (int)lrc_rawlen(L, t);
  if (n < 1 || n > LR_MAX_ENDPOINTS) luaL_error(L, "config.endpoints must hold 1 to %d endpoints", LR_MAX_ENDPOINTS);
  scratch *s = lrl_new_object(L, sizeof *s, SCRATCH_MT);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, t, i + 1);
    if (!lua_istable(L, -1)) luaL_error(L, "config.endpoints[%d] must be a table", i + 1);
    read_endpoint(L, lua_gettop(L), i, &s->eps[i], s->hdrs[i], s);
    lua_pop(L, 1);
  }
  *out = cfg;
  *eps_out = s->eps;
  *n_out = n;
}

void lrl_set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

void lrl_set_int(lua_State *L, const char *k, long v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

void lrl_set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}


void lrl_push_status(lua_State *L, lr_pool *p, double now) {
  lua_createtable(L, p->n, 0);
  for (int i = 0; i < p->n; i++) {
    lr_endpoint *e = &p->ep[i];
    lr_pool_usable(p, i, 0, now, NULL, NULL); /* brings a cooled-down breaker to half-open */
    lua_createtable(L, 0, 16);
    lrl_set_str(L, "state", lr_breaker_state_name(e->breaker.state));
    lrl_set_int(L, "in_flight", e->in_flight);
    lrl_set_int(L, "requests", e->requests);
    lrl_set_int(L, "successes", e->successes);
    lrl_set_int(L, "failures", e->failures);
    lrl_set_int(L, "throttles", e->throttles);
    lrl_set_int(L, "consecutive_failures", e->breaker.consecutive_failures);
    lrl_set_int(L, "times_opened", e->breaker.times_opened);
    if (e->latency_ewma_s >= 0) lrl_set_num(L, "latency_ewma", e->latency_ewma_s);
    lrl_set_num(L, "success_rate", lr_pool_success_rate(p, i, now));
    if (e->throttled_until > now) lrl_set_num(L, "throttled_for", e->throttled_until - now);
    if (e->breaker.state == LR_BREAKER_OPEN) lrl_set_num(L, "open_for", e->breaker.open_until - now);
    lrl_set_num(L, "cooldown", e->breaker.cooldown_s);
    int calls, fails;
    lr_breaker_window(&e->breaker, &p->breaker_cfg, now, &calls, &fails);
    lrl_set_int(L, "window_calls", calls);
    lrl_set_int(L, "window_failures", fails);
    if (e->max_concurrency) lrl_set_int(L, "max_concurrency", e->max_concurrency);
    /* what the server's rate-limit headers taught us */
    if (e->remaining >= 0 && now < e->remaining_until) lrl_set_num(L, "remaining", e->remaining);
    if (e->slot_interval > 0) lrl_set_num(L, "server_rpm", 60.0 / e->slot_interval);
    if (e->limit > 0) lrl_set_num(L, "adaptive_limit", e->limit);
    if (e->learnt.active) {
      lrl_set_num(L, "learnt_rate", e->learnt.rate);
      lrl_set_str(L, "learnt_from", e->learnt.borrowed    ? "sibling"
                                    : e->learnt.estimated ? "own"
                                    : e->learnt.cuts == 0 ? "prior"
                                                          : "probe");
      lrl_set_str(L, "learnt_mode", e->learnt.bare ? "bare" : "retry_after");
      lrl_set_num(L, "learnt_burst", e->learnt.burst);
    }
    lua_rawseti(L, -2, i + 1);
  }
}

static const char *event_names[] = {"retry", "failover", "breaker", "throttle", "fallback"};

int lrl_push_events(lua_State *L, lr_relay *rl, double (*request_id)(void *udata)) {
  lr_event ev[64];
  int n = lr_relay_events(rl, ev, 64);
  if (n == 0) return 0;
  lua_createtable(L, n, 0);
  for (int k = 0; k < n; k++) {
    lr_event *e = &ev[k];
    lua_createtable(L, 0, 8);
    lrl_set_str(L, "type", event_names[e->type]);
    lrl_set_int(L, "endpoint", e->endpoint + 1);
    switch (e->type) {
    case LR_EV_FAILOVER:
      lrl_set_int(L, "to", e->to + 1);
      /* fall through */
    case LR_EV_RETRY:
      lrl_set_int(L, "attempt", e->attempt);
      if (e->kind != LR_E_NONE) lrl_set_str(L, "kind", lr_error_kind_name(e->kind));
      if (e->type == LR_EV_RETRY) lrl_set_num(L, "delay", e->delay_s);
      if (e->udata) lrl_set_num(L, "request", request_id(e->udata));
      break;
    case LR_EV_BREAKER:
      lrl_set_str(L, "from", lr_breaker_state_name((lr_breaker_state)e->from));
      lrl_set_str(L, "state", lr_breaker_state_name((lr_breaker_state)e->to));
      break;
    case LR_EV_THROTTLE:
      lrl_set_num(L, "delay", e->delay_s);
      break;
    case LR_EV_FALLBACK: /* from, to: logical model names */
      lrl_push_model_name(L, rl, e->from);
      lua_setfield(L, -2, "from");
      lrl_push_model_name(L, rl, e->to);
      lua_setfield(L, -2, "to");
      if (e->kind != LR_E_NONE) lrl_set_str(L, "kind", lr_error_kind_name(e->kind));
      if (e->udata) lrl_set_num(L, "request", request_id(e->udata));
      break;
    }
    if (e->status) lrl_set_int(L, "status", e->status);
    lua_rawseti(L, -2, k + 1);
  }
  return 1;
}

void lrl_push_evq(lua_State *L, const char *buf, size_t len, long n) {
  lua_createtable(L, n > 0 && n < INT32_MAX ? (int)n : 0, 0);
  size_t off = 0, l;
  int k = 0;
  for (const char *e; (e = lr_evq_next(buf, len, &off, &l));) {
    lua_pushlstring(L, e, l);
    lua_rawseti(L, -2, ++k);
  }
}

void *lrl_new_object(lua_State *L, size_t size, const char *mt) {
  void *p = lrc_newuserdata(L, size);
  memset(p, 0, size);
  luaL_getmetatable(L, mt);
  lua_setmetatable(L, -2);
  return p;
}

void lrl_register_class(lua_State *L, const char *mt, const luaL_Reg *metamethods, const luaL_Reg *methods) {
  luaL_newmetatable(L, mt);
  lrc_setfuncs(L, metamethods, 0);
  if (methods) {
    lua_newtable(L);
    lrc_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}

void lrl_push_result(lua_State *L, lr_relay *rl, const lr_req *r, int extra_fields) {
  lua_createtable(L, 0, 7 + extra_fields);
  lrl_set_model(L, rl, r->model);
  lua_pushboolean(L, r->kind == LR_E_NONE);
  lua_setfield(L, -2, "ok");
  lrl_set_int(L, "attempts", r->attempts);
  if (r->status) lrl_set_int(L, "status", r->status);
  if (r->last_endpoint >= 0) lrl_set_int(L, "endpoint", r->last_endpoint + 1);
  if (r->latency_s >= 0) lrl_set_num(L, "latency", r->latency_s);
  if (r->request_id[0]) lrl_set_str(L, "request_id", r->request_id);
}
