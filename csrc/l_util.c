/* Module-level helpers for the Lua layer: clocks, a plain sleep for the
 * scheduler when nothing is in flight, a stop-signal counter, stat() and a
 * content hash for the CLI. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "clock.h"
#include "compat.h"
#include "jsoncheck.h"
#include "l_common.h"
#include "urlenc.h"

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

static volatile sig_atomic_t stop_count, first_stop_signal;

static void on_stop_signal(int sig) {
  if (stop_count < 1000) stop_count++;
  if (!first_stop_signal) first_stop_signal = sig;
}

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};

/* catch_stop_signals(): from now on SIGINT, SIGTERM and SIGHUP only count
 * (the CLI's graceful stop: the first drains, the next one cancels). SIGHUP
 * stays ignored when the process started with it ignored (nohup); SIGINT is
 * caught even then, as a shell ignores it for `cmd &` and kill -INT must work. */
static int l_catch_stop_signals(lua_State *L) {
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a blocking wait returns and the loop looks at the count */
  for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) {
    if (stop_signals[i] == SIGHUP && sigaction(SIGHUP, NULL, &old) == 0 && old.sa_handler == SIG_IGN)
      continue;
    if (sigaction(stop_signals[i], &sa, NULL) != 0) {
      lua_pushnil(L);
      lua_pushstring(L, strerror(errno));
      return 2;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* stop_signals() -> how many stop signals arrived, the first one's name and number */
static int l_stop_signals(lua_State *L) {
  int sig = (int)first_stop_signal;
  lua_pushinteger(L, (lua_Integer)stop_count);
  if (sig == 0) return 1;
  lua_pushstring(L, sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP");
  lua_pushinteger(L, sig);
  return 3;
}

/* stat(path) -> { type = "file"|"directory"|"fifo"|"char"|"block"|"socket"|"other",
 *                 id = "<dev>:<inode>", size = bytes } (symlinks followed),
 * or nil, message, errno. id is a string: an inode does not fit a double. */
static int l_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) {
    int e = errno;
    lua_pushnil(L);
    lua_pushstring(L, strerror(e));
    lua_pushinteger(L, e);
    return 3;
  }
  const char *type = S_ISREG(st.st_mode)    ? "file"
                     : S_ISDIR(st.st_mode)  ? "directory"
                     : S_ISFIFO(st.st_mode) ? "fifo"
                     : S_ISCHR(st.st_mode)  ? "char"
                     : S_ISBLK(st.st_mode)  ? "block"
                     : S_ISSOCK(st.st_mode) ? "socket"
                                            : "other";
  char id[64];
  snprintf(id, sizeof id, "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, type);
  lua_setfield(L, -2, "type");
  lua_pushstring(L, id);
  lua_setfield(L, -2, "id");
  lua_pushnumber(L, (lua_Number)st.st_size);
  lua_setfield(L, -2, "size");
  return 1;
}

/* hash(s) -> 16 hex digits, 64-bit FNV-1a of s: tells a changed line from an
 * unchanged one (not a cryptographic digest). */
static int l_hash(lua_State *L) {
  size_t n;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= 0x100000001b3ULL;
  }
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  lua_pushstring(L, hex);
  return 1;
}

/* url_encode(s) -> s percent-encoded (RFC 3986 unreserved bytes kept), as both executors' URLs are */
static int l_url_encode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char *out = malloc(3 * n + 1);
  if (!out) return luaL_error(L, "out of memory");
  lua_pushlstring(L, out, lr_url_encode(out, s, n));
  free(out);
  return 1;
}

/* url_expand(url, model) -> url with each "{model}" replaced by the encoded model */
static int l_url_expand(lua_State *L) {
  size_t mlen;
  const char *url = luaL_checkstring(L, 1);
  const char *model = luaL_optlstring(L, 2, "", &mlen);
  char *out = lr_url_expand(url, model, mlen);
  if (!out) return luaL_error(L, "out of memory");
  lua_pushstring(L, out);
  free(out);
  return 1;
}

void lr_util_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"now", l_now},
                                 {"wall", l_wall},
                                 {"sleep", l_sleep},
                                 {"catch_stop_signals", l_catch_stop_signals},
                                 {"stop_signals", l_stop_signals},
                                 {"stat", l_stat},
                                 {"hash", l_hash}, {"url_encode", l_url_encode}, {"url_expand", l_url_expand},
                                 {NULL, NULL}};
  lrc_setfuncs(L, fns, 0);
  /* core.limits: the core's fixed limits, for the Lua layer to check and
   * document against (it states none of its own) */
  static const struct {
    const char *name;
    double value;
  } limits[] = {{"max_endpoints", LR_MAX_ENDPOINTS},
                {"max_headers", LRL_MAX_USER_HEADERS},
                {"max_models", LRL_MAX_MODELS},
                {"max_count", LRL_MAX_COUNT},
                {"max_concurrency", LRL_MAX_CONCURRENCY},
                {"max_seconds", LRL_MAX_SECONDS},
                {"priority_min", LR_PRIORITY_MIN},
                {"priority_max", LR_PRIORITY_MAX},
                {"error_body", LRL_ERROR_BODY},
                {"poll_batch", LRL_POLL_BATCH},
                {"max_response_bytes_min", LRL_MIN_RESPONSE_BYTES},
                {"max_response_bytes_max", LRL_MAX_RESPONSE_BYTES},
                {"max_response_bytes_default", LRL_DEFAULT_RESPONSE_BYTES},
                {"json_decode_factor", LR_JSON_DECODE_FACTOR}};
  lua_createtable(L, 0, (int)(sizeof limits / sizeof limits[0]));
  for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
    lua_pushinteger(L, (lua_Integer)limits[i].value);
    lua_setfield(L, -2, limits[i].name);
  }
  lua_setfield(L, -2, "limits");
}
