/* See models.h. */
#include "models.h"

#include <stdlib.h>
#include <string.h>

void lr_models_init(lr_models *m) {
  memset(m, 0, sizeof *m);
  for (int i = 0; i < LR_MODELS_MAX_EP; i++) m->ep[i].price_any = -1;
}

void lr_models_free(lr_models *m) {
  for (int k = 0; k < m->n; k++) free(m->names[k]);
  free(m->names);
  free(m->lens);
  for (int i = 0; i < LR_MODELS_MAX_EP; i++) {
    for (int k = 0; k < m->ep[i].n; k++) free(m->ep[i].r[k].upstream);
    free(m->ep[i].r);
  }
  lr_models_init(m);
}

int lr_models_find(const lr_models *m, const char *name, size_t len) {
  if (!name) return -1;
  for (int k = 0; k < m->n; k++)
    if (m->lens[k] == len && memcmp(m->names[k], name, len) == 0) return k;
  return -1;
}

static char *copy(const char *s, size_t len) {
  char *c = malloc(len + 1);
  if (!c) return NULL;
  memcpy(c, s, len);
  c[len] = 0;
  return c;
}

int lr_models_intern(lr_models *m, const char *name, size_t len) {
  int k = lr_models_find(m, name, len);
  if (k >= 0) return k;
  if (m->n == m->cap) {
    int cap = m->cap ? m->cap * 2 : 16;
    char **names = realloc(m->names, (size_t)cap * sizeof *names);
    if (!names) return -1;
    m->names = names;
    size_t *lens = realloc(m->lens, (size_t)cap * sizeof *lens);
    if (!lens) return -1;
    m->lens = lens;
    m->cap = cap;
  }
  char *c = copy(name, len);
  if (!c) return -1;
  m->names[m->n] = c;
  m->lens[m->n] = len;
  return m->n++;
}

const char *lr_models_name(const lr_models *m, int model, size_t *len) {
  if (model < 0 || model >= m->n) return NULL;
  if (len) *len = m->lens[model];
  return m->names[model];
}

static lr_route *find_route(const lr_models *m, int i, int model) {
  for (int k = 0; k < m->ep[i].n; k++)
    if (m->ep[i].r[k].model == model) return &m->ep[i].r[k];
  return NULL;
}

/* Endpoint i's entry for logical, made when new; NULL when out of memory. */
static lr_route *route(lr_models *m, int i, const char *logical) {
  int model = lr_models_intern(m, logical, strlen(logical));
  if (model < 0) return NULL;
  lr_route *r = find_route(m, i, model);
  if (r) return r;
  if (m->ep[i].n == m->ep[i].cap) {
    int cap = m->ep[i].cap ? m->ep[i].cap * 2 : 4;
    lr_route *a = realloc(m->ep[i].r, (size_t)cap * sizeof *a);
    if (!a) return NULL;
    m->ep[i].r = a;
    m->ep[i].cap = cap;
  }
  r = &m->ep[i].r[m->ep[i].n++];
  memset(r, 0, sizeof *r);
  r->model = model;
  r->price = -1;
  return r;
}

int lr_models_serve(lr_models *m, int i, const char *logical, const char *upstream) {
  if (i < 0 || i >= LR_MODELS_MAX_EP) return 0;
  lr_route *r = route(m, i, logical);
  if (!r) return -1;
  m->ep[i].listed = 1;
  r->serves = 1;
  free(r->upstream);
  r->upstream = NULL;
  r->upstream_len = 0;
  if (upstream && strcmp(upstream, logical) != 0) {
    r->upstream_len = strlen(upstream);
    if (!(r->upstream = copy(upstream, r->upstream_len))) return -1;
  }
  return 0;
}

int lr_models_price(lr_models *m, int i, const char *logical, double price) {
  if (i < 0 || i >= LR_MODELS_MAX_EP) return 0;
  if (strcmp(logical, "*") == 0) {
    m->ep[i].price_any = price;
    return 0;
  }
  lr_route *r = route(m, i, logical);
  if (!r) return -1;
  r->price = price;
  return 0;
}

uint64_t lr_models_serving(const lr_models *m, int n, int model) {
  uint64_t mask = 0;
  for (int i = 0; i < n && i < LR_MODELS_MAX_EP; i++) {
    const lr_route *r = model >= 0 ? find_route(m, i, model) : NULL;
    if (!m->ep[i].listed || (r && r->serves)) mask |= (uint64_t)1 << i;
  }
  return mask;
}

const char *lr_models_wire(const lr_models *m, int i, int model, size_t *len) {
  if (model < 0 || model >= m->n || i < 0 || i >= LR_MODELS_MAX_EP) return NULL;
  const lr_route *r = find_route(m, i, model);
  if (r && r->upstream) {
    *len = r->upstream_len;
    return r->upstream;
  }
  return lr_models_name(m, model, len);
}

double lr_models_rank(const lr_models *m, int i, int model) {
  if (i < 0 || i >= LR_MODELS_MAX_EP) return -1;
  const lr_route *r = model >= 0 ? find_route(m, i, model) : NULL;
  if (r && r->price >= 0) return r->price;
  return m->ep[i].price_any;
}
