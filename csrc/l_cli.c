/* Bindings the batch CLI needs besides its lock (l_lock.c):
 *   core.idset() -> set        ids as keyed 96-bit digests (idset.h), a fresh random key each
 *     set:get(id) -> value | nil
 *     set:put(id, value) -> the old value | nil (value: a whole number 0..2^32-1)
 *     set:count(), set:bytes(), set:free() (empties it and gives its memory back)
 * (--model's body rewrite is core.set_model, l_route.c) */
#include "compat.h"
#include "idset.h"
#include "l_common.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define IDSET_MT "llmrelay.idset"

static void random_key(uint64_t *k0, uint64_t *k1, const void *salt) {
  uint64_t k[2] = {0, 0};
  FILE *f = fopen("/dev/urandom", "rb");
  size_t got = f ? fread(k, sizeof k, 1, f) : 0;
  if (f) fclose(f);
  if (got != 1) { /* no /dev/urandom: still a key no input file can know in advance */
    k[0] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    k[1] = (uint64_t)(uintptr_t)salt * 0xbf58476d1ce4e5b9ULL ^ (uint64_t)clock();
  }
  *k0 = k[0];
  *k1 = k[1];
}

static lr_idset *check_set(lua_State *L) { return luaL_checkudata(L, 1, IDSET_MT); }

static lr_iddigest digest_arg(lua_State *L, lr_idset *s) {
  size_t len;
  const char *id = luaL_checklstring(L, 2, &len);
  return lr_idset_digest(s, id, len);
}

static int l_idset_new(lua_State *L) {
  lr_idset *s = lrl_new_object(L, sizeof *s, IDSET_MT);
  uint64_t k0, k1;
  random_key(&k0, &k1, s);
  lr_idset_init(s, k0, k1);
  return 1;
}

static int l_idset_get(lua_State *L) {
  lr_idset *s = check_set(L);
  uint32_t v;
  if (!lr_idset_get(s, digest_arg(L, s), &v)) return 0;
  lua_pushinteger(L, (lua_Integer)v);
  return 1;
}

static int l_idset_put(lua_State *L) {
  lr_idset *s = check_set(L);
  lua_Number v = luaL_checknumber(L, 3);
  if (!(v >= 0 && v <= 4294967295.0)) return luaL_argerror(L, 3, "value must be from 0 to 2^32-1");
  uint32_t old;
  int r = lr_idset_put(s, digest_arg(L, s), (uint32_t)v, &old);
  if (r < 0) return luaL_error(L, "idset: out of memory");
  if (r == 1) return 0;
  lua_pushinteger(L, (lua_Integer)old);
  return 1;
}

static int l_idset_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_set(L)->n);
  return 1;
}

static int l_idset_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lr_idset_bytes(check_set(L)));
  return 1;
}

static int l_idset_gc(lua_State *L) {
  lr_idset_free(check_set(L));
  return 0;
}

void lr_cli_open(lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", l_idset_gc}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"get", l_idset_get}, {"put", l_idset_put}, {"count", l_idset_count}, {"bytes", l_idset_bytes},
      {"free", l_idset_gc},   {NULL, NULL}};
  lrl_register_class(L, IDSET_MT, meta, methods);
  static const luaL_Reg fns[] = {{"idset", l_idset_new}, {NULL, NULL}};
  lrc_setfuncs(L, fns, 0);
}
