/* luaopen_llmrelay_core: the one entry point; each binding file adds its part. */
#include "compat.h"

void lr_client_open(lua_State *L);
void lr_relay_open(lua_State *L);
void lr_util_open(lua_State *L);
void lr_http1_open(lua_State *L);
void lr_scrub_open(lua_State *L);
void lr_json_open(lua_State *L);
void lr_redis_open(lua_State *L);
void lr_route_open(lua_State *L);
void lr_lock_open(lua_State *L);
void lr_cli_open(lua_State *L);

#if defined(_WIN32)
#define LR_EXPORT __declspec(dllexport)
#else
#define LR_EXPORT __attribute__((visibility("default")))
#endif

LR_EXPORT int luaopen_llmrelay_core(lua_State *L) {
  lua_newtable(L);
  lr_client_open(L);
  lr_relay_open(L);
  lr_util_open(L);
  lr_http1_open(L);
  lr_scrub_open(L);
  lr_json_open(L);
  lr_redis_open(L);
  lr_route_open(L);
  lr_lock_open(L);
  lr_cli_open(L);
  lua_pushliteral(L, "0.1.0");
  lua_setfield(L, -2, "version");
  return 1;
}
