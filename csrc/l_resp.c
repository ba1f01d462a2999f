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

size_t lrl_resp_command(lua_State *L, int first, const char ***argv, size_t **argl) {
  int last = lua_gettop(L);
  size_t argc = last >= first ? (size_t)(last - first + 1) : 0;
  if (argc == 0) luaL_argerror(L, first, "a redis command");
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
  *argv = (const char **)lrc_newuserdata(L, argc * (sizeof **argv + sizeof **argl));
  *argl = (size_t *)(*argv + argc);
  for (size_t i = 0; i < argc; i++) (*argv)[i] = lua_tolstring(L, first + (int)i, &(*argl)[i]);
  return argc;
}

/* ---- for executors that move the bytes themselves -------------------------- */

#define DECODER_MT "llmrelay.resp_decoder"

typedef struct {
  lr_resp d;
  lr_resp_elem *elems;
  char *arena;
} decoder;

static void decoder_free(decoder *x) {
  free(x->elems);
  free(x->arena);
  x->elems = NULL;
  x->arena = NULL;
}

/* core.resp_decoder() -> a decoder with the caps of l_resp.h */
static int l_decoder(lua_State *L) {
  decoder *x = lrl_new_object(L, sizeof *x, DECODER_MT); /* empty until filled */
  x->elems = malloc(LRL_RESP_MAX_ELEMS * sizeof *x->elems);
  x->arena = malloc(LRL_RESP_ARENA);
  if (!x->elems || !x->arena) {
    decoder_free(x);
    return luaL_error(L, "out of memory");
  }
  lr_resp_init(&x->d, x->elems, LRL_RESP_MAX_ELEMS, x->arena, LRL_RESP_ARENA, LRL_RESP_MAX_BULK);
  return 1;
}

static decoder *check_decoder(lua_State *L) {
  decoder *x = luaL_checkudata(L, 1, DECODER_MT);
  if (!x->elems) luaL_error(L, "llmrelay resp decoder is closed");
  return x;
}

/* dec:feed(bytes) -> "more" (all taken: feed more)
 *                  | "done", used, reply | nil, err, "reply" (one reply
 *                    complete from the first `used` bytes; the decoder is
 *                    ready for the next)
 *                  | "error", nil, nil, message (out of step: reset() or drop it) */
static int l_feed(lua_State *L) {
  decoder *x = check_decoder(L);
  size_t len, used;
  const char *s = luaL_checklstring(L, 2, &len);
  lr_resp_event ev = lr_resp_feed(&x->d, s, len, &used);
  if (ev == LR_RESP_MORE) {
    lua_pushliteral(L, "more");
    return 1;
  }
  if (ev == LR_RESP_ERROR) {
    lua_pushliteral(L, "error");
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushstring(L, x->d.message);
    return 4;
  }
  lua_pushliteral(L, "done");
  lua_pushinteger(L, (lua_Integer)used);
  {
    int n = lrl_resp_push_result(L, &x->d);
    lr_resp_next(&x->d); /* the reply is in Lua values now */
    return 2 + n;
  }
}

/* dec:reset(): forget any partial reply (after a failed call) */
static int l_reset(lua_State *L) {
  decoder *x = check_decoder(L);
  lr_resp_init(&x->d, x->elems, LRL_RESP_MAX_ELEMS, x->arena, LRL_RESP_ARENA, LRL_RESP_MAX_BULK);
  return 0;
}

static int l_decoder_gc(lua_State *L) {
  decoder_free(luaL_checkudata(L, 1, DECODER_MT));
  return 0;
}

/* core.resp_encode(arg1, ...) -> the command as RESP bytes (numbers as in
 * lrl_resp_args) */
static int l_encode(lua_State *L) {
  const char **argv;
  size_t *argl, argc = lrl_resp_command(L, 1, &argv, &argl);
  size_t need = lr_resp_encode(NULL, 0, argc, argv, argl);
  char *out = lrc_newuserdata(L, need);
  lr_resp_encode(out, need, argc, argv, argl);
  lua_pushlstring(L, out, need);
  return 1;
}

void lr_resp_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"feed", l_feed}, {"reset", l_reset}, {NULL, NULL}};
  static const luaL_Reg mm[] = {{"__gc", l_decoder_gc}, {NULL, NULL}};
  lrl_register_class(L, DECODER_MT, mm, methods);
  lua_pushcfunction(L, l_decoder);
  lua_setfield(L, -2, "resp_decoder");
  lua_pushcfunction(L, l_encode);
  lua_setfield(L, -2, "resp_encode");
}
