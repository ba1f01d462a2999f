/* The pool's models: the logical names requests ask for, and per endpoint
 * the ones it serves, the name it serves each under (its upstream name) and
 * what each costs there (a number to rank endpoints by, for strategy
 * "cost"). Sans-I/O, no Lua: the bindings fill it from the normalized
 * config (endpoints[i].models as a list or a map, endpoints[i].prices). */
#ifndef LR_MODELS_H
#define LR_MODELS_H
#include <stddef.h>
#include <stdint.h>

#define LR_MODELS_MAX_EP 64 /* LR_MAX_ENDPOINTS (pool.h) */

typedef struct lr_route {
  int model;      /* index into the table */
  int serves;     /* the endpoint serves it (a price alone does not) */
  char *upstream; /* the endpoint's name for it; NULL: the logical name */
  size_t upstream_len;
  double price;   /* the rank price; < 0 unknown */
} lr_route;

typedef struct lr_models {
  char **names;
  size_t *lens;
  int n, cap;
  struct {
    lr_route *r;
    int n, cap;
    int listed;       /* it has a models list or map: it serves only those */
    double price_any; /* prices["*"] as a rank price; < 0 none */
  } ep[LR_MODELS_MAX_EP];
} lr_models;

void lr_models_init(lr_models *m);
void lr_models_free(lr_models *m);
/* The index of logical name[0..len), or -1 when no endpoint names it. */
int lr_models_find(const lr_models *m, const char *name, size_t len);
/* The same, adding it when new; -1 when out of memory. */
int lr_models_intern(lr_models *m, const char *name, size_t len);
const char *lr_models_name(const lr_models *m, int model, size_t *len);
/* Endpoint i serves logical under upstream (NULL, or the same name: as it
 * is). From the first call on it serves only the models so named. 0, or -1
 * when out of memory. */
int lr_models_serve(lr_models *m, int i, const char *logical, const char *upstream);
/* Endpoint i's rank price for logical ("*": any model without its own). */
int lr_models_price(lr_models *m, int i, const char *logical, double price);
/* The endpoints (of n) that serve model (-1: a name no endpoint lists, which
 * only the endpoints without a list serve), as a bit mask. */
uint64_t lr_models_serving(const lr_models *m, int n, int model);
/* The name endpoint i serves model under (*len its length), or NULL when
 * model is -1. */
const char *lr_models_wire(const lr_models *m, int i, int model, size_t *len);
/* Endpoint i's rank price for model (its own, else "*"), or -1 unknown. */
double lr_models_rank(const lr_models *m, int i, int model);

#endif
