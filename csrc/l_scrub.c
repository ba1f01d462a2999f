/* core.scrubber(secrets) -> a scrubber (csrc/scrub.h): the secrets live in C
 * memory, so no dump of a client or an error shows them.
 *   sc:text(s [, keys_only]) -> s   messages, plain-text bodies
 *   sc:json(s [, keys_only]) -> s, is_json   bodies that may be JSON
 * keys_only: redact the secrets only (no "Bearer <token>", no cut key at the
 * end), for successful answers. A value that is not a string comes back as is. */
#include "compat.h"
#include "l_common.h"
#include "scrub.h"

#define SCRUB_MT "llmrelay.scrubber"

typedef struct {
  lr_scrub *s;
} scrubber;

static lr_scrub *check(lua_State *L) {
  scrubber *u = luaL_checkudata(L, 1, SCRUB_MT);
  if (!u->s) luaL_error(L, "llmrelay: the scrubber is closed");
  return u->s;
}

static int run(lua_State *L, int json) {
  lr_scrub *s = check(L);
  if (lua_type(L, 2) != LUA_TSTRING) {
    lua_settop(L, 2);
    return 1;
  }
  size_t n, out_n;
  const char *in = lua_tolstring(L, 2, &n), *out;
  int flags = lua_toboolean(L, 3) ? 0 : LR_SCRUB_BEARER | LR_SCRUB_TAIL;
  int r = json ? lr_scrub_json(s, in, n, flags, &out, &out_n) : lr_scrub_text(s, in, n, flags, &out, &out_n);
  if (r < 0) {
    lr_scrub_trim(s);
    return luaL_error(L, "llmrelay: out of memory while scrubbing");
  }
  if (out == in) lua_pushvalue(L, 2);
  else lua_pushlstring(L, out, out_n);
  lr_scrub_trim(s);
  if (!json) return 1;
  lua_pushboolean(L, r == 1);
  return 2;
}

static int l_text(lua_State *L) { return run(L, 0); }
static int l_json(lua_State *L) { return run(L, 1); }

static int l_gc(lua_State *L) {
  scrubber *u = luaL_checkudata(L, 1, SCRUB_MT);
  lr_scrub_free(u->s);
  u->s = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  lua_pushliteral(L, SCRUB_MT);
  return 1;
}

/* core.scrubber({secret, ...}): made closed, then filled, so a failure half
 * way leaves nothing to free but what __gc frees. */
static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)lrc_rawlen(L, 1);
  scrubber *u = lrl_new_object(L, sizeof *u, SCRUB_MT);
  u->s = lr_scrub_new();
  if (!u->s) return luaL_error(L, "llmrelay: out of memory");
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "scrubber: secrets[%d] must be a string", i);
    size_t len;
    const char *k = lua_tolstring(L, -1, &len);
    if (lr_scrub_add(u->s, k, len) != 0) return luaL_error(L, "llmrelay: out of memory");
    lua_pop(L, 1);
  }
  return 1;
}

void lr_scrub_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"text", l_text}, {"json", l_json}, {NULL, NULL}};
  static const luaL_Reg mm[] = {{"__gc", l_gc}, {"__tostring", l_tostring}, {NULL, NULL}};
  lrl_register_class(L, SCRUB_MT, mm, methods);
  static const luaL_Reg fns[] = {{"scrubber", l_new}, {NULL, NULL}};
  lrc_setfuncs(L, fns, 0);
  lua_pushinteger(L, LR_SCRUB_MIN_SECRET);
  lua_setfield(L, -2, "SCRUB_MIN_SECRET");
}
