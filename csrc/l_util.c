/* Module-level helpers for the Lua layer: clocks, a plain sleep for the
 * scheduler when nothing is in flight, and a SIGINT counter for the CLI. */
#include <errno.h>
#include <string.h>
#include <math.h>
#include <signal.h>
#include <time.h>

#include "compat.h"
#include "transport_curl.h"

static int l_now(lua_State *L) {
  lua_pushnumber(L, lr_now_mono());
  return 1;
}

static int l_wall(lua_State *L) {
  lua_pushnumber(L, lr_now_wall());
  return 1;
}

/* sleep(s): blocks the thread; the scheduler calls it only when no request is
 * in flight. Returns early (false) when a signal arrives. */
static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  if (!(s > 0)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  struct timespec ts = {.tv_sec = (time_t)floor(s), .tv_nsec = (long)((s - floor(s)) * 1e9)};
  lua_pushboolean(L, nanosleep(&ts, NULL) == 0);
  return 1;
}

static volatile sig_atomic_t sigint_count;

static void on_sigint(int sig) {
  (void)sig;
  if (sigint_count < 1000) sigint_count++;
}

/* catch_sigint(): from now on SIGINT only counts (the CLI's graceful stop). */
static int l_catch_sigint(lua_State *L) {
  struct sigaction sa;
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a blocking wait returns and the loop looks at the count */
  if (sigaction(SIGINT, &sa, NULL) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_sigint_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sigint_count);
  return 1;
}

void lr_util_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"now", l_now},
                                 {"wall", l_wall},
                                 {"sleep", l_sleep},
                                 {"catch_sigint", l_catch_sigint},
                                 {"sigint_count", l_sigint_count},
                                 {NULL, NULL}};
  lrc_setfuncs(L, fns, 0);
}
