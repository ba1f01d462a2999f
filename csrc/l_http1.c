/* Lua binding of the HTTP/1.1 response decoder (http1.c), for the OpenResty
 * executor: lua/llmrelay/resty/http.lua only moves bytes between a cosocket
 * and this object, which frames the answer, applies every cap and words every
 * error and timeout. Conversions only. */
#include <string.h>

#include "compat.h"
#include "errors.h"
#include "hints.h"
#include "http1.h"
#include "l_common.h"

#define HTTP1_MT "llmrelay.http1"

typedef struct {
  lr_http1 h;
  int live;
} http1_ud;

static http1_ud *check(lua_State *L) {
  http1_ud *d = luaL_checkudata(L, 1, HTTP1_MT);
  if (!d->live) luaL_error(L, "llmrelay http1 decoder is closed");
  return d;
}

/* core.http1(max_response_bytes) -> decoder for one answer */
static int l_new(lua_State *L) {
  lua_Number max = luaL_checknumber(L, 1);
  http1_ud *d = lrl_new_object(L, sizeof *d, HTTP1_MT); /* closed until filled: an error below leaves nothing half made */
  lr_http1_init(&d->h, max < 0 ? 0 : max >= 9e18 ? (uint64_t)9e18 : (uint64_t)max);
  d->live = 1;
  return 1;
}

static const char *state_name(lr_h1_event ev) {
  return ev == LR_H1_DONE ? "done" : ev == LR_H1_ERROR ? "error" : "more";
}

/* Pushes state, and kind, message for an error; returns how many. */
static int push_end(lua_State *L, const lr_http1 *h, lr_h1_event ev) {
  lua_pushstring(L, state_name(ev));
  if (ev != LR_H1_ERROR) return 1;
  lua_pushstring(L, lr_error_kind_name(h->kind));
  lua_pushstring(L, h->message);
  return 3;
}

/* feed(bytes) -> state, body, kind|nil, message|nil, left|nil
 * state: "more" (feed more), "done" (the answer ended; left: bytes after its
 * end, which make the connection unfit for reuse), "error". body: the body's
 * bytes in this piece, de-chunked ("" when none); head() tells when the head
 * is complete. */
static int l_feed(lua_State *L) {
  http1_ud *d = check(L);
  size_t len, at = 0;
  const char *buf = luaL_checklstring(L, 2, &len);
  lr_h1_event ev;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (;;) {
    const char *body;
    size_t body_len, used;
    ev = lr_http1_feed(&d->h, buf + at, len - at, &used, &body, &body_len);
    at += used;
    if (ev == LR_H1_BODY) luaL_addlstring(&b, body, body_len);
    else if (ev != LR_H1_HEAD) break;
  }
  luaL_pushresult(&b);
  lua_pushstring(L, state_name(ev));
  lua_insert(L, -2);
  if (ev == LR_H1_ERROR) {
    lua_pushstring(L, lr_error_kind_name(d->h.kind));
    lua_pushstring(L, d->h.message);
    return 4;
  }
  if (ev == LR_H1_DONE) {
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)(len - at));
    return 5;
  }
  return 2;
}

/* head() -> nil until the final answer's head came; then status,
 * content_type (lower case, or nil), headers (the raw block), keep_alive,
 * request_id (x-request-id as the core keeps it, or nil) */
static int l_head(lua_State *L) {
  http1_ud *d = check(L);
  const lr_http1 *h = &d->h;
  if (!h->status) return 0;
  lua_pushinteger(L, h->status);
  if (h->ctype_len) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < h->ctype_len; i++) {
      char c = h->head[h->ctype_off + i];
      luaL_addchar(&b, c >= 'A' && c <= 'Z' ? (char)(c + 32) : c);
    }
    luaL_pushresult(&b);
  } else {
    lua_pushnil(L);
  }
  lua_pushlstring(L, h->head, h->head_len);
  lua_pushboolean(L, h->keep_alive);
  lr_hints hints;
  lr_hints_init(&hints);
  lr_hints_feed_block(&hints, h->head, h->head_len, 0); /* only the request id is read: no dates */
  if (hints.request_id[0]) lua_pushstring(L, hints.request_id);
  else lua_pushnil(L);
  return 5;
}

/* eof() -> state, kind|nil, message|nil: the connection closed */
static int l_eof(lua_State *L) {
  http1_ud *d = check(L);
  return push_end(L, &d->h, lr_http1_eof(&d->h));
}

/* cut(reason) -> state, kind|nil, message|nil: the socket failed */
static int l_cut(lua_State *L) {
  http1_ud *d = check(L);
  return push_end(L, &d->h, lr_http1_cut(&d->h, luaL_checkstring(L, 2)));
}

/* timeout(limit, seconds, at|nil) -> "timeout", message
 * limit: "total" "connect" "first_byte" "idle"; at: "connect" "send" or nil
 * (reading the answer) */
static int l_timeout(lua_State *L) {
  static const char *const limits[] = {"total", "connect", "first_byte", "idle", NULL};
  static const char *const ats[] = {"connect", "send", "answer", NULL};
  http1_ud *d = check(L);
  lr_h1_timer t = (lr_h1_timer)luaL_checkoption(L, 2, NULL, limits);
  double s = luaL_checknumber(L, 3);
  lr_h1_at at = (lr_h1_at)luaL_checkoption(L, 4, "answer", ats);
  char msg[160];
  lua_pushstring(L, lr_error_kind_name(lr_http1_timeout(&d->h, t, at, s, msg, sizeof msg)));
  lua_pushstring(L, msg);
  return 2;
}

/* received() -> the bytes of the answer taken so far */
static int l_received(lua_State *L) {
  http1_ud *d = check(L);
  lua_pushinteger(L, (lua_Integer)d->h.bytes_in);
  return 1;
}

static int l_gc(lua_State *L) {
  http1_ud *d = luaL_checkudata(L, 1, HTTP1_MT);
  if (d->live) lr_http1_free(&d->h);
  d->live = 0;
  return 0;
}

void lr_http1_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"feed", l_feed},         {"head", l_head},         {"eof", l_eof},
                                     {"cut", l_cut},           {"timeout", l_timeout},   {"received", l_received},
                                     {"close", l_gc},          {NULL, NULL}};
  static const luaL_Reg mm[] = {{"__gc", l_gc}, {NULL, NULL}};
  lrl_register_class(L, HTTP1_MT, mm, methods);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "http1");
}
