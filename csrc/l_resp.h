/* Lua values of RESP2 replies (resp.h), shared by the plain-Lua Redis
 * connection (l_redis.c) and the decoder object the OpenResty path drives
 * (l_resp.c). */
#ifndef LR_L_RESP_H
#define LR_L_RESP_H
#include "compat.h"
#include "resp.h"

/* The caps of one reply: elements, and string bytes (the largest bulk string
 * is half of it). A reply over them is an error, never a crash. */
#define LRL_RESP_MAX_ELEMS 4096
#define LRL_RESP_ARENA (1u << 20)
#define LRL_RESP_MAX_BULK (LRL_RESP_ARENA / 2)

/* Pushes the complete reply in d as the Lua result of a call: the value and
 * returns 1, or, for an error reply, nil, message, "reply" and returns 3.
 * Values: bulk and simple strings -> strings ("+OK" -> true), integers ->
 * integers, arrays -> tables, nil bulk/array -> a NULL light userdata (the
 * same value as ngx.null and cjson.null), an error inside an array ->
 * { false, message }. */
int lrl_resp_push_result(lua_State *L, const lr_resp *d);

/* The command at stack first..top for lr_resp_encode: replaces numbers by
 * decimal text (integral values without ".0"; anything but strings and
 * numbers is an argument error), pushes a scratch userdata holding *argv and
 * *argl (pointing into those strings: keep the stack as it is while they
 * are used) and returns argc (at least 1, or an argument error). */
size_t lrl_resp_command(lua_State *L, int first, const char ***argv, size_t **argl);

/* Registers core.resp_decoder and core.resp_encode (the table at the top). */
void lr_resp_open(lua_State *L);

#endif
