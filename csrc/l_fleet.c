/* The methods through which an executor moves shared state between its
 * relay and a store (a lua_shared_dict, a fleet's Redis): the breaker and
 * throttle view (import/export, csrc/shared.h) and leases (csrc/fleet.h).
 * Both executors' objects have them (LRL_SHARED_METHODS in l_common.h);
 * endpoints are 1-based here as everywhere in Lua. */
#include "l_common.h"

#include <math.h>

#include "fleet.h"
#include "shared.h"

static int check_ep(lua_State *L, const lr_pool *p, int idx) {
  int i = (int)luaL_checkinteger(L, idx) - 1;
  if (i < 0 || i >= p->n) luaL_argerror(L, idx, "no such endpoint");
  return i;
}

/* import(endpoint, now, fails, open_until, cooldown, throttled_until, in_flight, proven) -> changed */
int lrl_shared_import(lua_State *L, lr_relay *rl) {
  lr_pool *p = lr_relay_pool(rl);
  int i = check_ep(L, p, 2);
  lr_shared_view v;
  v.fails = luaL_optnumber(L, 4, 0);
  v.open_until = luaL_optnumber(L, 5, 0);
  v.cooldown_s = luaL_optnumber(L, 6, 0);
  v.throttled_until = luaL_optnumber(L, 7, 0);
  v.in_flight = luaL_optnumber(L, 8, 0);
  v.proven = lua_toboolean(L, 9);
  lua_pushboolean(L, lr_shared_import(p, i, &v, luaL_checknumber(L, 3)));
  return 1;
}

/* export(endpoint, now) -> fails, open_until, cooldown, throttled_until, state */
int lrl_shared_export(lua_State *L, lr_relay *rl) {
  lr_pool *p = lr_relay_pool(rl);
  int i = check_ep(L, p, 2);
  double now = luaL_checknumber(L, 3);
  lr_pool_usable(p, i, 0, now, NULL, NULL); /* brings a cooled-down breaker to half-open */
  lr_shared_view v;
  lr_shared_export(p, i, now, &v);
  lua_pushnumber(L, v.fails);
  lua_pushnumber(L, v.open_until);
  lua_pushnumber(L, v.cooldown_s);
  lua_pushnumber(L, v.throttled_until);
  lua_pushstring(L, lr_breaker_state_name(p->ep[i].breaker.state));
  return 5;
}

/* fleet_view(endpoint, now, told) -> table: what a fleet needs from this
 * process (fleet.h); told: the caller tells the fleet what it shows now */
int lrl_fleet_view(lua_State *L, lr_relay *rl) {
  lr_pool *p = lr_relay_pool(rl);
  int i = check_ep(L, p, 2);
  lr_fleet_view v;
  lr_fleet_view_of(p, i, luaL_checknumber(L, 3), &v);
  if (lua_toboolean(L, 4)) lr_fleet_told(p, i);
  lua_createtable(L, 0, 16);
  lua_pushboolean(L, v.on);
  lua_setfield(L, -2, "on");
  lua_pushboolean(L, v.answered);
  lua_setfield(L, -2, "answered");
  lrl_set_num(L, "left", v.rq_left);
  lrl_set_num(L, "tk_left", v.tk_left);
  lrl_set_num(L, "from", v.from);
  lrl_set_num(L, "until_", v.until);
  lrl_set_num(L, "tk_until", v.tk_until);
  lrl_set_num(L, "retry_at", v.retry_at);
  lrl_set_num(L, "wanted_at", v.wanted_at);
  lrl_set_num(L, "rate", v.rate);
  lrl_set_num(L, "cap", v.cap);
  lrl_set_str(L, "rate_from", v.rate_from);
  lrl_set_num(L, "tk_rate", v.tk_rate);
  lrl_set_num(L, "tk_cap", v.tk_cap);
  lrl_set_num(L, "tk_need", v.tk_need);
  lrl_set_num(L, "pub_remaining", v.pub_remaining);
  lrl_set_num(L, "pub_at", v.pub_at);
  return 1;
}

static double finite_arg(lua_State *L, int idx, double dflt) {
  double x = luaL_optnumber(L, idx, dflt);
  if (isnan(x)) luaL_argerror(L, idx, "not a number");
  return x;
}

/* fleet_grant(endpoint, n, from, until, tk, tk_until, retry_at): tk < 0 leaves the token lease off */
int lrl_fleet_grant(lua_State *L, lr_relay *rl) {
  lr_pool *p = lr_relay_pool(rl);
  int i = check_ep(L, p, 2);
  double n = finite_arg(L, 3, 0);
  if (n < 0) luaL_argerror(L, 3, "a lease is not negative");
  lr_fleet_grant(p, i, n, finite_arg(L, 4, 0), finite_arg(L, 5, 0), finite_arg(L, 6, -1), finite_arg(L, 7, 0),
                 finite_arg(L, 8, 0));
  return 0;
}

/* fleet_off(endpoint): leasing off, the endpoint goes by this process's state */
int lrl_fleet_off(lua_State *L, lr_relay *rl) {
  lr_pool *p = lr_relay_pool(rl);
  lr_fleet_off(p, check_ep(L, p, 2));
  return 0;
}

/* fleet_due(now) -> the moment a lease is wanted (math.huge: none) */
int lrl_fleet_due(lua_State *L, lr_relay *rl) {
  lr_pool *p = lr_relay_pool(rl);
  lua_pushnumber(L, lr_fleet_due(p, luaL_checknumber(L, 2)));
  return 1;
}

/* fleet_budget(now) -> first attempts and retries since the relay was made, and in the budget's window */
int lrl_fleet_budget(lua_State *L, lr_relay *rl) {
  double tf, tr, wf, wr;
  lr_relay_budget(rl, luaL_checknumber(L, 2), &tf, &tr, &wf, &wr);
  lua_pushnumber(L, tf);
  lua_pushnumber(L, tr);
  lua_pushnumber(L, wf);
  lua_pushnumber(L, wr);
  return 4;
}

/* fleet_budget_others(first, retry): the other members' attempts in the budget's window */
int lrl_fleet_budget_others(lua_State *L, lr_relay *rl) {
  lr_relay_budget_others(rl, finite_arg(L, 2, 0), finite_arg(L, 3, 0));
  return 0;
}
