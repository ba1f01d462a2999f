/* Lua values for the RESP2 codec (resp.c): reply conversion, command
 * encoding, and a decoder object for executors that move the bytes
 * themselves (the OpenResty cosocket path of lua/llmrelay/redis.lua).
 * Conversions only. */
#include "l_resp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l_common.h"

static void push_elem(lua_State *L, const lr_resp_elem *e, size_t *i) {
  const lr_resp_elem *x = &e[(*i)++];
  luaL_checkstack(L, 3, "redis reply nested too deep");
  switch (x->type) {
  case LR_RESP_SIMPLE:
    if (x->len == 2 && memcmp(x->str, "OK", 2) == 0) lua_pushboolean(L, 1);
    else lua_pushlstring(L, x->str, x->len);
    break;
  case LR_RESP_ERROR_STR:
    lua_createtable(L, 2, 0);
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, x->str, x->len);
    lua_rawseti(L, -2, 2);
    break;
  case LR_RESP_INTEGER:
    lua_pushinteger(L, (lua_Integer)x->integer);
    break;
  case LR_RESP_BULK:
    lua_pushlstring(L, x->str, x->len);
    break;
  case LR_RESP_ARRAY: {
    int n = (int)x->integer;
    lua_createtable(L, n, 0);
    for (int k = 1; k <= n; k++) {
      push_elem(L, e, i);
      lua_rawseti(L, -2, k);
    }
    break;
  }
  default: /* nil bulk, nil array */
    lua_pushlightuserdata(L, NULL);
  }
}

int lrl_resp_push_result(lua_State *L, const lr_resp *d) {
  size_t i = 0;
  if (d->elems[0].type == LR_RESP_ERROR_STR) {
    lua_pushnil(L);
    lua_pushlstring(L, d->elems[0].str, d->elems[0].len);
    lua_pushliteral(L, "reply");
    return 3;
  }
  push_elem(L, d->elems, &i);
  return 1;
}

void lrl_resp_args(lua_State *L, int first, int last) {
  for (int i = first; i <= last; i++) {
    int t = lua_type(L, i);
    if (t == LUA_TNUMBER) {
      char buf[32];
      lua_Number n = lua_tonumber(L, i);
      if (n == floor(n) && fabs(n) < 9.2e18) snprintf(buf, sizeof buf, "%lld", (long long)n);
      else snprintf(buf, sizeof buf, "%.17g", (double)n);
      lua_pushstring(L, buf);
      lua_replace(L, i);
    } else if (t != LUA_TSTRING) {
      luaL_argerror(L, i, "a redis argument must be a string or a number");
    }
  }
}
