/* Helpers shared by the Lua bindings (l_client.c, l_relay.c). */
#ifndef LR_L_COMMON_H
#define LR_L_COMMON_H
#include "compat.h"
#include "config.h"
#include "evbuf.h"
#include "relay.h"

#define LRL_SCRATCH_MT "llmrelay.scratch"

/* max_response_bytes: its default and range (lua/llmrelay/config.lua checks
 * the same numbers first); the body is held in memory, and copied. */
#define LRL_DEFAULT_RESPONSE_BYTES (64.0 * 1024 * 1024)
#define LRL_MIN_RESPONSE_BYTES 1024
#define LRL_MAX_RESPONSE_BYTES (1 << 30)
#define LRL_MAX_HEADERS 40 /* 4 set by llmrelay, the rest the endpoint's */
#define LRL_MAX_USER_HEADERS (LRL_MAX_HEADERS - 4)
#define LRL_MAX_MODELS 32
#define LRL_MAX_COUNT 1000000     /* max_attempts, failure_threshold, min_calls, half_open_probes: C ints */
#define LRL_MAX_CONCURRENCY 65536 /* concurrency, max_concurrency: arrays are sized by them */
#define LRL_MAX_SECONDS 1e6       /* timeouts and delays become integer milliseconds */
#define LRL_ERROR_BODY LR_ERROR_BODY /* errors.h */
#define LRL_POLL_BATCH LR_POLL_BATCH /* relay.h */

double lrl_num_field(lua_State *L, int t, const char *k); /* a number, or an error naming k */
int lrl_sub_table(lua_State *L, int t, const char *k);
/* Reads the normalized config (lua/llmrelay/config.lua) at idx (an absolute
 * index). Pushes values onto the stack, among them the userdata that owns
 * *eps and the strings cfg and *eps point to: leave them there while those
 * are used, then restore the stack. */
void lrl_read_config(lua_State *L, int idx, lr_client_cfg *cfg, lr_client_endpoint **eps, int *n);
int lrl_scratch_gc(lua_State *L);
/* A new userdata of size bytes, zeroed, with the metatable named mt; left on the stack. */
void *lrl_new_object(lua_State *L, size_t size, const char *mt);
/* Registers the metatable named mt: metamethods (__gc ...) in it, methods (may
 * be NULL) as its __index. */
void lrl_register_class(lua_State *L, const char *mt, const luaL_Reg *metamethods, const luaL_Reg *methods);
/* Pushes the n events of an lr_evq buffer as an array of strings. */
void lrl_push_evq(lua_State *L, const char *buf, size_t len, long n);
void lrl_set_num(lua_State *L, const char *k, double v);
void lrl_set_int(lua_State *L, const char *k, long v);
void lrl_set_str(lua_State *L, const char *k, const char *v);
/* Pushes a finished request's result table: ok, attempts, status, endpoint,
 * latency, request_id (the last answer's x-request-id), model (the logical
 * model that answered or was tried last; the caller adds the rest). */
void lrl_push_result(lua_State *L, lr_relay *rl, const lr_req *r, int extra_fields);
/* Routing (csrc/l_route.c). Reads the normalized config's models, prices
 * and fallbacks (cfg at idx) into the relay's pool and fallbacks. */
void lrl_read_routes(lua_State *L, int idx, lr_relay *rl);
/* The api named by Lua argument i: nil is "chat"; another name raises. */
lr_api lrl_check_api(lua_State *L, int i);
/* Before lr_relay_submit: the endpoints a new request may use, those serving
 * its model (model, mlen as submitted; NULL none) and api within its
 * opts.endpoints (only, as lr_relay_only). *why: 0, or LRL_EMPTY_BY_ONLY /
 * LRL_EMPTY_BY_API when that alone left none. */
#define LRL_EMPTY_BY_ONLY 1
#define LRL_EMPTY_BY_API 2
uint64_t lrl_request_allowed(lr_relay *rl, const char *model, size_t mlen, lr_api api, const char *only, size_t olen,
                             int *why);
/* After lr_relay_submit: gives the request r its logical model, api and
 * opts.endpoints restriction (fallbacks keep within them), and the message
 * that names why no endpoint may take it (why: lrl_request_allowed's). */
void lrl_route_request(lr_relay *rl, lr_req *r, const char *model, size_t mlen, lr_api api, const char *only,
                       size_t olen, int why);
/* Sets field "model" of the table on top to the logical model's name (nothing for -1). */
void lrl_set_model(lua_State *L, lr_relay *rl, int model);
/* Pushes the logical model's name, or nil. */
void lrl_push_model_name(lua_State *L, lr_relay *rl, int model);
/* Pushes the status array of the pool (one table per endpoint, config order). */
void lrl_push_status(lua_State *L, lr_pool *p, double now);

/* Shared state and fleet leases (csrc/l_fleet.c): methods of both
 * executors' objects, over the relay `relay_of(L)` finds from argument 1. */
int lrl_shared_import(lua_State *L, lr_relay *rl);
int lrl_shared_export(lua_State *L, lr_relay *rl);
int lrl_fleet_view(lua_State *L, lr_relay *rl);
int lrl_fleet_grant(lua_State *L, lr_relay *rl);
int lrl_fleet_off(lua_State *L, lr_relay *rl);
int lrl_fleet_due(lua_State *L, lr_relay *rl);
int lrl_fleet_budget(lua_State *L, lr_relay *rl);
int lrl_fleet_budget_others(lua_State *L, lr_relay *rl);
#define LRL_SHARED_METHODS(relay_of)                                                                             \
  static int l_import(lua_State *L) { return lrl_shared_import(L, relay_of(L)); }                               \
  static int l_export(lua_State *L) { return lrl_shared_export(L, relay_of(L)); }                               \
  static int l_fleet_view(lua_State *L) { return lrl_fleet_view(L, relay_of(L)); }                              \
  static int l_fleet_grant(lua_State *L) { return lrl_fleet_grant(L, relay_of(L)); }                            \
  static int l_fleet_off(lua_State *L) { return lrl_fleet_off(L, relay_of(L)); }                                \
  static int l_fleet_due(lua_State *L) { return lrl_fleet_due(L, relay_of(L)); }                                \
  static int l_fleet_budget(lua_State *L) { return lrl_fleet_budget(L, relay_of(L)); }                          \
  static int l_fleet_budget_others(lua_State *L) { return lrl_fleet_budget_others(L, relay_of(L)); }
#define LRL_SHARED_REG                                                                                           \
  {"import", l_import}, {"export", l_export}, {"fleet_view", l_fleet_view}, {"fleet_grant", l_fleet_grant},     \
      {"fleet_off", l_fleet_off}, {"fleet_due", l_fleet_due}, {"fleet_budget", l_fleet_budget},                 \
      {"fleet_budget_others", l_fleet_budget_others}
/* Pushes the relay's pending events as an array and returns 1, or returns 0
 * (pushing nothing) when there are none. request_id maps a request's udata. */
int lrl_push_events(lua_State *L, lr_relay *rl, double (*request_id)(void *udata));

#endif
