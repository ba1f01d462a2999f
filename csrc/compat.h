/* The one place that knows Lua 5.1/LuaJIT from 5.4. Every name is prefixed
 * lrc_ so it can never clash with a real luaL_* (LuaJIT has some of them). */
#ifndef LR_COMPAT_H
#define LR_COMPAT_H
#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM >= 502
#define lrc_rawlen(L, i) lua_rawlen((L), (i))
#define lrc_setfuncs(L, reg, nup) luaL_setfuncs((L), (reg), (nup))
#else
#define lrc_rawlen(L, i) lua_objlen((L), (i))
/* luaL_setfuncs of 5.2: registers reg into the table below the nup upvalues. */
static inline void lrc_setfuncs(lua_State *L, const luaL_Reg *reg, int nup) {
  luaL_checkstack(L, nup, "too many upvalues");
  for (; reg->name; reg++) {
    for (int i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, reg->func, nup);
    lua_setfield(L, -(nup + 2), reg->name);
  }
  lua_pop(L, nup);
}
#endif

#if LUA_VERSION_NUM >= 504
#define lrc_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 0)
#else
#define lrc_newuserdata(L, sz) lua_newuserdata((L), (sz))
#endif

/* A userdata of metatable `tname`, or NULL (luaL_testudata is 5.2+). */
static inline void *lrc_testudata(lua_State *L, int ud, const char *tname) {
  void *p = lua_touserdata(L, ud);
  if (!p || !lua_getmetatable(L, ud)) return NULL;
  luaL_getmetatable(L, tname);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? p : NULL;
}

#endif
