/* The JSON helpers of the core for the Lua layer: checks of answers and
 * requests, and reading the few members llmrelay's policy needs (a request's
 * token estimate, an answer's usage, a batch line's raw body, an error
 * body's code, type and param) without
 * decoding the whole document. Every input is untrusted: each function
 * validates before it reads (spec/fuzz/fuzz_json.c). */
#include <string.h>

#include "answer.h"
#include "compat.h"
#include "jsoncheck.h"
#include "reqcheck.h"
#include "l_common.h"

/* core.json_object_ok(body, max_response_bytes|nil) -> true | false, why: whether a 2xx body is
 * one JSON object within the decode budget (the check the libcurl executor makes) */
static int l_json_object_ok(lua_State *L) {
  size_t n;
  const char *b = luaL_checklstring(L, 1, &n);
  lua_Number max = luaL_optnumber(L, 2, LRL_DEFAULT_RESPONSE_BYTES);
  if (!(max >= LRL_MIN_RESPONSE_BYTES && max <= LRL_MAX_RESPONSE_BYTES))
    return luaL_argerror(L, 2, "max_response_bytes out of range");
  char msg[200];
  int ok = lr_json_check_answer(b, n, LR_MAX_JSON_DEPTH, (size_t)max, msg, sizeof msg) == 0;
  lua_pushboolean(L, ok);
  if (ok) return 1;
  lua_pushstring(L, msg);
  return 2;
}

/* core.check_request(body, api|nil) -> true | nil, why: a request body no server could answer
 * well (not a JSON object, invalid UTF-8, no messages for chat, no input for embeddings or
 * Responses, no prompt for completions), named by its field */
static int l_check_request(lua_State *L) {
  size_t n;
  const char *b = luaL_checklstring(L, 1, &n);
  char msg[256];
  if (lr_json_check_request(b, n, lrl_check_api(L, 2), LR_MAX_JSON_DEPTH, msg, sizeof msg) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

/* core.usage_tokens(body) -> usage.total_tokens of an answer, or nil */
static int l_usage_tokens(lua_State *L) {
  size_t n;
  const char *b = luaL_checklstring(L, 1, &n);
  double u = lr_answer_usage_tokens(b, n);
  if (u < 0) return 0;
  lua_pushnumber(L, u);
  return 1;
}

/* core.json_member(json, name) -> the raw text of the top-level member `name`
 * of a JSON object (the last one when it repeats, as cjson keeps), or nil.
 * Meant for text a JSON decoder has accepted; on any other bytes it reads
 * nothing out of bounds and its answer means nothing. */
static int l_json_member(lua_State *L) {
  size_t n, k, off, len;
  const char *s = luaL_checklstring(L, 1, &n);
  const char *name = luaL_checklstring(L, 2, &k);
  if (lr_json_member(s, n, name, k, &off, &len) != 0) return 0;
  lua_pushlstring(L, s + off, len);
  return 1;
}

/* core.estimate_tokens(body, api|nil) -> the tokens a request is expected to cost:
 * a quarter of its bytes plus the output it may ask for (reqcheck.h) */
static int l_estimate_tokens(lua_State *L) {
  size_t n;
  const char *b = luaL_checklstring(L, 1, &n);
  lua_pushnumber(L, lr_json_estimate_tokens(b, n, lrl_check_api(L, 2)));
  return 1;
}

/* core.usage(body) -> prompt_tokens, completion_tokens, total_tokens of an
 * answer's top-level usage (each nil when absent), or nothing without one */
static int l_usage(lua_State *L) {
  size_t n;
  const char *b = luaL_checklstring(L, 1, &n);
  double v[3];
  if (lr_answer_usage(b, n, &v[0], &v[1], &v[2]) != 0) return 0;
  for (int i = 0; i < 3; i++) {
    if (v[i] >= 0) lua_pushnumber(L, v[i]);
    else lua_pushnil(L);
  }
  return 3;
}

/* Pushes the JSON string or number at b[sp) (checked JSON) as a Lua string
 * or number, or nil when sp is empty. A lone surrogate becomes U+FFFD. */
static void push_scalar(lua_State *L, const char *b, lr_span sp) {
  const unsigned char *p = (const unsigned char *)b + sp.off, *end = p + sp.len;
  if (sp.len == 0) {
    lua_pushnil(L);
  } else if (*p != '"') {
    lua_pushlstring(L, (const char *)p, sp.len);
    lua_Number x = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (x == (lua_Number)(lua_Integer)x && x > -9e15 && x < 9e15) lua_pushinteger(L, (lua_Integer)x);
    else lua_pushnumber(L, x);
  } else {
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    for (p++, end--; p < end;) {
      if (*p != '\\') {
        luaL_addchar(&buf, (char)*p++);
        continue;
      }
      uint32_t cp;
      unsigned char u[4];
      p += lr_json_escape(p, end, &cp);
      if (cp == LR_JSON_BAD_ESCAPE || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
      luaL_addlstring(&buf, (const char *)u, lr_utf8_put(cp, u));
    }
    luaL_pushresult(&buf);
  }
}

/* core.upstream_error(body) -> code, type, param of an OpenAI-shaped error
 * body (each nil when absent, null or not a string or number), or nothing
 * when body holds no such error (or is over LR_ERROR_BODY bytes) */
static int l_upstream_error(lua_State *L) {
  size_t n;
  const char *b = luaL_checklstring(L, 1, &n);
  lr_upstream_error e;
  if (lr_answer_error(b, n, &e) != 0) return 0;
  push_scalar(L, b, e.code);
  push_scalar(L, b, e.type);
  push_scalar(L, b, e.param);
  return 3;
}

void lr_json_open(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"json_object_ok", l_json_object_ok}, {"check_request", l_check_request}, {"usage_tokens", l_usage_tokens},
      {"json_member", l_json_member},       {"estimate_tokens", l_estimate_tokens}, {"usage", l_usage},
      {"upstream_error", l_upstream_error}, {NULL, NULL}};
  lrc_setfuncs(L, fns, 0);
}
