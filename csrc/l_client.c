/* Lua binding of the libcurl client: converts between Lua values and the C
 * structs, nothing more. Retry and failover logic lives in relay.c. */
#include <curl/curl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "errors.h"
#include "l_common.h"
#include "transport_curl.h"

#define CLIENT_MT "llmrelay.client"

typedef struct {
  lr_client *c; /* NULL once closed */
} client_ud;

static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  client_ud *ud = lrl_new_object(L, sizeof *ud, CLIENT_MT); /* created closed: an error below leaves nothing half-built */
  int top = lua_gettop(L);

  lr_client_cfg cfg;
  lr_client_endpoint *eps;
  int n;
  lrl_read_config(L, 1, &cfg, &eps, &n); /* pushes the scratch that owns eps */
  char err[256];
  ud->c = lr_client_new(&cfg, eps, n, err, sizeof err);
  if (!ud->c) return luaL_error(L, "llmrelay.core: %s", err);
  lrl_read_routes(L, 1, lr_client_relay(ud->c)); /* an error closes the client with its userdata */
  lua_settop(L, top);
  return 1;
}

static lr_client *check_client(lua_State *L) {
  client_ud *ud = luaL_checkudata(L, 1, CLIENT_MT);
  if (!ud->c) luaL_error(L, "llmrelay client is closed");
  return ud->c;
}

/* submit(body, model|nil, tokens, timeout|nil, deadline_in_s|nil, priority|nil, stream|nil, only|nil,
 *        headers|nil, api|nil) -> id. api: "chat" (nil), "embeddings", "responses", "completions". only: the endpoints the request may use (1-based numbers, one a byte);
 * headers: the request's own "Name: value" lines (checked by lua/llmrelay/reqopts.lua). */
static int l_submit(lua_State *L) {
  lr_client *c = check_client(L);
  size_t len, mlen = 0, olen = 0;
  const char *body = luaL_checklstring(L, 2, &len);
  const char *model = luaL_optlstring(L, 3, NULL, &mlen);
  double tokens = luaL_optnumber(L, 4, 0);
  double timeout = luaL_optnumber(L, 5, 0);
  double deadline = lua_isnoneornil(L, 6) ? INFINITY : lr_now_mono() + luaL_checknumber(L, 6);
  int priority = (int)luaL_optinteger(L, 7, 0);
  int stream = lua_toboolean(L, 8);
  const char *only = luaL_optlstring(L, 9, NULL, &olen);
  const char *hdrs[LR_MAX_REQUEST_HEADERS];
  int n_hdrs = 0;
  if (!lua_isnoneornil(L, 10)) {
    luaL_checktype(L, 10, LUA_TTABLE);
    n_hdrs = (int)lrc_rawlen(L, 10);
    if (n_hdrs > LR_MAX_REQUEST_HEADERS) return luaL_argerror(L, 10, "too many headers");
    for (int k = 0; k < n_hdrs; k++) {
      lua_rawgeti(L, 10, k + 1);
      if (lua_type(L, -1) != LUA_TSTRING) return luaL_argerror(L, 10, "header lines must be strings");
      hdrs[k] = lua_tostring(L, -1); /* the table keeps the string alive */
      lua_pop(L, 1);
    }
  }
  lr_api api = lrl_check_api(L, 11);
  int why;
  uint64_t allowed = lrl_request_allowed(lr_client_relay(c), model, mlen, api, only, olen, &why);
  lr_call *call = lr_client_submit(c, body, len, model, mlen, allowed, tokens, timeout, deadline, priority, stream,
                                   hdrs, n_hdrs);
  if (!call) {
    lua_pushnil(L);
    lua_pushliteral(L, "out of memory");
    return 2;
  }
  lrl_route_request(lr_client_relay(c), &call->req, model, mlen, api, only, olen, why);
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

/* Pushes the call's waiting stream events as an array of strings. */
static void push_events(lua_State *L, lr_client *c, lr_call *call) {
  size_t len;
  long n;
  const char *b = lr_client_stream_take(c, call, &len, &n);
  lrl_push_evq(L, b, len, n);
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

/* stream_take(id) -> array of event data strings (possibly empty) and the
 * answering attempt's x-request-id (or nil), or nothing for an unknown or
 * finished call. The caller has them now: from here on a failure of the
 * stream is final. */
static int l_stream_take(lua_State *L) {
  lr_client *c = check_client(L);
  lr_call *call = lr_client_find(c, (uint64_t)luaL_checknumber(L, 2));
  if (!call || !call->stream || call->req.state == LR_REQ_DONE) return 0;
  push_events(L, c, call);
  const char *rid = lr_client_stream_request_id(c, call);
  if (!rid) return 1;
  lua_pushstring(L, rid);
  return 2;
}

/* take() -> the next finished request as a table, or nil */
static int l_take(lua_State *L) {
  lr_client *c = check_client(L);
  lr_call *call = lr_client_next_done(c);
  if (!call) return 0;
  const lr_req *r = &call->req;
  lrl_push_result(L, lr_client_relay(c), r, 5);
  lrl_set_num(L, "id", (double)call->id);
  if (call->stream) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "stream");
    if (call->ev.n > 0) {
      push_events(L, c, call);
      lua_setfield(L, -2, "events");
    }
  }
  if (r->kind == LR_E_NONE) {
    lua_pushlstring(L, call->resp ? call->resp : "", call->resp_len);
    lua_setfield(L, -2, "body");
  } else {
    lrl_set_str(L, "kind", lr_error_kind_name(r->kind));
    if (r->message[0]) lrl_set_str(L, "message", r->message);
    if (r->retry_after_s >= 0) lrl_set_num(L, "retry_after", r->retry_after_s);
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
  lrl_push_status(L, lr_relay_pool(lr_client_relay(c)), lr_now_mono());
  return 1;
}

static double call_id(void *udata) { return (double)((lr_call *)udata)->id; }

static int l_enable_events(lua_State *L) {
  lr_relay_enable_events(lr_client_relay(check_client(L)), lua_toboolean(L, 2));
  return 0;
}

/* events() -> array of event tables, or nil when there are none */
static int l_events(lua_State *L) {
  lr_client *c = check_client(L);
  return lrl_push_events(L, lr_client_relay(c), call_id);
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

static lr_relay *relay_of(lua_State *L) { return lr_client_relay(check_client(L)); }
LRL_SHARED_METHODS(relay_of)

static const luaL_Reg methods[] = {
    {"submit", l_submit}, {"step", l_step},     {"take", l_take},     {"cancel", l_cancel},
    {"pending", l_pending}, {"status", l_status}, {"events", l_events}, {"enable_events", l_enable_events},
    {"stream_ready", l_stream_ready}, {"stream_take", l_stream_take},
    LRL_SHARED_REG,       {"close", l_close},   {NULL, NULL}};

static const luaL_Reg metamethods[] = {{"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};

void lr_client_open(lua_State *L) {
  static const luaL_Reg scratch_mm[] = {{"__gc", lrl_scratch_gc}, {NULL, NULL}};
  lrl_register_class(L, LRL_SCRATCH_MT, scratch_mm, NULL);
  lrl_register_class(L, CLIENT_MT, metamethods, methods);
  static const luaL_Reg fns[] = {{"client", l_new}, {NULL, NULL}};
  lrc_setfuncs(L, fns, 0);
  lua_createtable(L, LR_E__COUNT, 0);
  for (int k = 0; k < LR_E__COUNT; k++) {
    lua_pushstring(L, lr_error_kind_name((lr_error_kind)k));
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "kinds");
}
