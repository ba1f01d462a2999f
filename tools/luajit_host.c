/* A minimal LuaJIT command-line host: `luajit-host 'lua code' [args]` or
 * `luajit-host -f file.lua [args]`. Debian's OpenResty LuaJIT
 * (libluajit2-5.1-dev) ships no interpreter binary, and Debian's own
 * `luajit` conflicts with it; this lets `make luajit-check` load the LuaJIT
 * build of llmrelay.core in the very LuaJIT OpenResty uses. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

static int traceback(lua_State *L) {
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s 'lua code' | -f file.lua [args...]\n", argv[0]);
    return 2;
  }
  lua_State *L = luaL_newstate();
  if (!L) return 1;
  luaL_openlibs(L);
  int file = strcmp(argv[1], "-f") == 0 && argc > 2;
  int first = file ? 3 : 2;
  lua_createtable(L, argc, 0);
  for (int i = first; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - first + 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  int rc = file ? luaL_loadfile(L, argv[2]) : luaL_loadstring(L, argv[1]);
  if (rc == 0) rc = lua_pcall(L, 0, 0, -2);
  if (rc != 0) fprintf(stderr, "%s\n", lua_tostring(L, -1));
  lua_close(L);
  return rc == 0 ? 0 : 1;
}
