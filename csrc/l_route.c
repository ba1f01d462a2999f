/* Routing by model, for both Lua bindings: reading the normalized config's
 * models (list or map), prices and fallbacks into the pool's model table
 * and the relay's fallbacks; a result's and an event's model names; and
 * core.set_model, the body rewrite the OpenResty executor asks for. */
#include <stdlib.h>
#include <string.h>

#include "jsonmodel.h"
#include "l_common.h"

static void oom(lua_State *L) { luaL_error(L, "llmrelay.core: out of memory"); }

/* Endpoint i (its table at t): the models it serves (models: logical names;
 * upstream: { [logical] = its name for it }, or nil) and its rank prices. */
static void read_endpoint_routes(lua_State *L, int t, int i, lr_models *m) {
  lua_getfield(L, t, "upstream");
  int up = lua_gettop(L);
  lua_getfield(L, t, "models");
  int n = lua_istable(L, -1) ? (int)lrc_rawlen(L, -1) : 0;
  for (int k = 1; k <= n; k++) {
    lua_rawgeti(L, -1, k);
    const char *logical = luaL_checkstring(L, -1);
    const char *upstream = NULL;
    if (lua_istable(L, up)) {
      lua_getfield(L, up, logical);
      upstream = lua_tostring(L, -1);
      lua_pop(L, 1); /* the config table keeps it alive */
    }
    if (lr_models_serve(m, i, logical, upstream) != 0) oom(L);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  /* prices: strategy "cost" ranks by input + output USD per 1M tokens */
  lua_getfield(L, t, "prices");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
        double price = lrl_num_field(L, lua_gettop(L), "input") + lrl_num_field(L, lua_gettop(L), "output");
        if (lr_models_price(m, i, lua_tostring(L, -2), price) != 0) oom(L);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/* cfg[key]: { [logical] = { other, ... } } (checked by lua/llmrelay/route.lua). */
static void read_fallbacks(lua_State *L, int idx, const char *key, int context, lr_relay *rl) {
  lr_models *m = &lr_relay_pool(rl)->models;
  lua_getfield(L, idx, key);
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      int to[LR_MAX_FALLBACKS], n = lua_istable(L, -1) ? (int)lrc_rawlen(L, -1) : -1;
      if (lua_type(L, -2) != LUA_TSTRING || n < 0 || n > LR_MAX_FALLBACKS) /* not lua_tolstring: it would change a key */
        luaL_error(L, "config %s must map model names to at most %d others", key, LR_MAX_FALLBACKS);
      size_t len;
      const char *from = lua_tolstring(L, -2, &len);
      int f = lr_models_intern(m, from, len);
      for (int k = 0; k < n; k++) {
        lua_rawgeti(L, -1, k + 1);
        const char *name = luaL_checklstring(L, -1, &len);
        if ((to[k] = lr_models_intern(m, name, len)) < 0) oom(L);
        lua_pop(L, 1);
      }
      if (f < 0 || lr_fallbacks_set(lr_relay_fallbacks(rl), context, f, to, n) != 0) oom(L);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

void lrl_read_routes(lua_State *L, int idx, lr_relay *rl) {
  lr_pool *p = lr_relay_pool(rl);
  int t = lrl_sub_table(L, idx, "endpoints");
  for (int i = 0; i < p->n; i++) {
    lua_rawgeti(L, t, i + 1);
    read_endpoint_routes(L, lua_gettop(L), i, &p->models);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  read_fallbacks(L, idx, "fallbacks", 0, rl);
  read_fallbacks(L, idx, "context_window_fallbacks", 1, rl);
}

lr_api lrl_check_api(lua_State *L, int i) {
  if (lua_isnoneornil(L, i)) return LR_API_CHAT;
  size_t n;
  const char *s = luaL_checklstring(L, i, &n);
  int api = lr_api_find(s, n);
  if (api < 0) luaL_argerror(L, i, "api must be \"chat\", \"embeddings\", \"responses\" or \"completions\"");
  return (lr_api)api;
}

uint64_t lrl_request_allowed(lr_relay *rl, const char *model, size_t mlen, lr_api api, const char *only, size_t olen,
                             int *why) {
  lr_pool *p = lr_relay_pool(rl);
  uint64_t serving = lr_pool_serving(p, model, mlen), both = serving & lr_pool_serving_api(p, api);
  int by_only;
  uint64_t allowed = lr_relay_only(both, (const unsigned char *)only, olen, &by_only);
  *why = serving && !both ? LRL_EMPTY_BY_API : by_only ? LRL_EMPTY_BY_ONLY : 0;
  return allowed;
}

void lrl_route_request(lr_relay *rl, lr_req *r, const char *model, size_t mlen, lr_api api, const char *only,
                       size_t olen, int why) {
  int none;
  lr_relay_route(r, lr_models_find(&lr_relay_pool(rl)->models, model, mlen),
                 lr_relay_only(~(uint64_t)0, (const unsigned char *)only, olen, &none));
  lr_relay_route_api(r, api, lr_pool_serving_api(lr_relay_pool(rl), api), why == LRL_EMPTY_BY_API);
  if (why == LRL_EMPTY_BY_ONLY) lr_relay_explain_only(r);
}

void lrl_set_model(lua_State *L, lr_relay *rl, int model) {
  size_t len;
  const char *name = lr_models_name(&lr_relay_pool(rl)->models, model, &len);
  if (!name) return;
  lua_pushlstring(L, name, len);
  lua_setfield(L, -2, "model");
}

void lrl_push_model_name(lua_State *L, lr_relay *rl, int model) {
  size_t len;
  const char *name = lr_models_name(&lr_relay_pool(rl)->models, model, &len);
  if (name) lua_pushlstring(L, name, len);
  else lua_pushnil(L);
}

/* core.set_model(body, name) -> the body with its top-level "model" string
 * naming `name` (csrc/jsonmodel.c), or body itself when it already does
 * (or has none to rewrite) */
static int l_set_model(lua_State *L) {
  size_t n, nlen, out_len;
  const char *body = luaL_checklstring(L, 1, &n);
  const char *name = luaL_checklstring(L, 2, &nlen);
  char *out;
  int rc = lr_json_set_model(body, n, name, nlen, &out, &out_len);
  if (rc < 0) oom(L);
  if (rc == 0) {
    lua_settop(L, 1);
    return 1;
  }
  lua_pushlstring(L, out, out_len);
  free(out);
  return 1;
}

void lr_route_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"set_model", l_set_model}, {NULL, NULL}};
  lrc_setfuncs(L, fns, 0);
}
