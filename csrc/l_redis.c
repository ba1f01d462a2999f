/* The plain-Lua Redis connection: a deadline-bounded socket (sock.c) and the
 * RESP2 codec (resp.c) behind one call per round trip. lua/llmrelay/redis.lua
 * adds AUTH, SELECT, scripts and the URL; this file only moves bytes and
 * converts values.
 *
 *   core.redis_connect(host, port, timeout, tls, verify, ca_file) -> conn | nil, err, kind
 *   conn:call(arg1, ...)  -> reply | nil, err, kind   ("reply": Redis answered
 *                            an error, the connection stays usable; "timeout",
 *                            "io": the connection is closed)
 *   conn:settimeout(s), conn:close() (safe twice; __gc too)
 * The TCP connect and the TLS handshake together are bounded by the timeout,
 * and so is each call (its write and its read together). */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "l_common.h"
#include "l_resp.h"
#include "sock.h"

#define REDIS_MT "llmrelay.redis"
#define READ_CHUNK 16384

typedef struct {
  lr_sock s;
  lr_resp d;
  lr_resp_elem *elems;
  char *arena, *rbuf, *wbuf;
  size_t rpos, rlen, wcap;
  double timeout;
  int live;
} conn;

static void release(conn *c) {
  lr_sock_close(&c->s);
  free(c->elems);
  free(c->arena);
  free(c->rbuf);
  free(c->wbuf);
  c->elems = NULL;
  c->arena = c->rbuf = c->wbuf = NULL;
  c->live = 0;
}

static int push_fail(lua_State *L, int code, const char *err) {
  lua_pushnil(L);
  lua_pushstring(L, err);
  lua_pushstring(L, code == LR_SOCK_TIMEOUT ? "timeout" : "io");
  return 3;
}

static double check_timeout(lua_State *L, int i) {
  double t = luaL_checknumber(L, i);
  if (!(t > 0 && t <= LRL_MAX_SECONDS)) luaL_argerror(L, i, "timeout must be above 0 seconds");
  return t;
}

static int l_connect(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2);
  double timeout = check_timeout(L, 3);
  int tls = lua_toboolean(L, 4), verify = lua_toboolean(L, 5), r;
  const char *ca_file = luaL_optstring(L, 6, NULL);
  double deadline;
  char err[256];
  conn *c = lrl_new_object(L, sizeof *c, REDIS_MT); /* closed until filled */
  lr_sock_init(&c->s);
  c->elems = malloc(LRL_RESP_MAX_ELEMS * sizeof *c->elems);
  c->arena = malloc(LRL_RESP_ARENA);
  c->rbuf = malloc(READ_CHUNK);
  if (!c->elems || !c->arena || !c->rbuf) {
    release(c);
    return luaL_error(L, "out of memory");
  }
  c->live = 1;
  c->timeout = timeout;
  lr_resp_init(&c->d, c->elems, LRL_RESP_MAX_ELEMS, c->arena, LRL_RESP_ARENA, LRL_RESP_MAX_BULK);
  deadline = lr_now_mono() + timeout; /* the connect and the handshake together */
  r = lr_sock_connect(&c->s, host, port, deadline, err, sizeof err);
  if (r == LR_SOCK_OK && tls) r = lr_sock_tls(&c->s, host, verify, ca_file, deadline, err, sizeof err);
  if (r != LR_SOCK_OK) {
    release(c);
    return push_fail(L, r, err);
  }
  return 1;
}

static conn *check(lua_State *L) { return luaL_checkudata(L, 1, REDIS_MT); }

/* Encodes the command at stack 2..top into c->wbuf; returns its length. */
static size_t encode(lua_State *L, conn *c) {
  const char **argv;
  size_t *argl, argc = lrl_resp_command(L, 2, &argv, &argl);
  size_t need = lr_resp_encode(c->wbuf, c->wcap, argc, argv, argl);
  if (need > c->wcap) {
    char *w = realloc(c->wbuf, need);
    if (!w) luaL_error(L, "out of memory");
    c->wbuf = w;
    c->wcap = need;
    lr_resp_encode(c->wbuf, c->wcap, argc, argv, argl);
  }
  return need;
}

static int l_call(lua_State *L) {
  conn *c = check(L);
  char err[256];
  double deadline;
  size_t len;
  int r;
  if (!c->live) return push_fail(L, LR_SOCK_IO, "the connection is closed");
  len = encode(L, c);
  deadline = lr_now_mono() + c->timeout;
  r = lr_sock_write(&c->s, c->wbuf, len, deadline, err, sizeof err);
  while (r == LR_SOCK_OK) {
    size_t used = 0;
    lr_resp_event ev = LR_RESP_MORE;
    long n;
    if (c->rpos < c->rlen) {
      ev = lr_resp_feed(&c->d, c->rbuf + c->rpos, c->rlen - c->rpos, &used);
      c->rpos += used;
    }
    if (ev == LR_RESP_DONE) {
      int results = lrl_resp_push_result(L, &c->d);
      lr_resp_next(&c->d);
      return results;
    }
    if (ev == LR_RESP_ERROR) {
      snprintf(err, sizeof err, "%s: bad reply: %s", c->s.peer, c->d.message);
      r = LR_SOCK_IO;
      break;
    }
    c->rpos = c->rlen = 0;
    n = lr_sock_read(&c->s, c->rbuf, READ_CHUNK, deadline, err, sizeof err);
    if (n < 0) r = (int)n;
    else c->rlen = (size_t)n;
  }
  release(c); /* out of step with the server: never reused */
  return push_fail(L, r, err);
}

static int l_settimeout(lua_State *L) {
  conn *c = check(L);
  c->timeout = check_timeout(L, 2);
  return 0;
}

static int l_gc(lua_State *L) {
  conn *c = check(L);
  if (c->live) release(c);
  return 0;
}

void lr_redis_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"call", l_call}, {"settimeout", l_settimeout}, {"close", l_gc}, {NULL, NULL}};
  static const luaL_Reg mm[] = {{"__gc", l_gc}, {NULL, NULL}};
  lrl_register_class(L, REDIS_MT, mm, methods);
  lua_pushcfunction(L, l_connect);
  lua_setfield(L, -2, "redis_connect");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "redis_null");
  lr_resp_open(L);
}
