/* See fallback.h. */
#include "fallback.h"

#include <stdlib.h>
#include <string.h>

void lr_fallbacks_free(lr_fallbacks *f) {
  for (int w = 0; w < 2; w++) {
    free(f->list[w]);
    f->list[w] = NULL;
    f->n[w] = 0;
  }
}

static const lr_fallback_list *find(const lr_fallbacks *f, int which, int from) {
  for (int k = 0; k < f->n[which]; k++)
    if (f->list[which][k].from == from) return &f->list[which][k];
  return NULL;
}

int lr_fallbacks_set(lr_fallbacks *f, int context, int from, const int *to, int n) {
  int w = context ? 1 : 0;
  lr_fallback_list *l = (lr_fallback_list *)find(f, w, from);
  if (!l) {
    lr_fallback_list *a = realloc(f->list[w], (size_t)(f->n[w] + 1) * sizeof *a);
    if (!a) return -1;
    f->list[w] = a;
    l = &a[f->n[w]++];
  }
  memset(l, 0, sizeof *l);
  l->from = from;
  l->n = n < 0 ? 0 : n > LR_MAX_FALLBACKS ? LR_MAX_FALLBACKS : n;
  if (l->n) memcpy(l->to, to, (size_t)l->n * sizeof *to);
  return 0;
}

int lr_fallback_list_for(lr_error_kind kind, int context_exceeded) {
  switch (kind) {
  case LR_E_RATE_LIMITED:
  case LR_E_SERVER_ERROR:
  case LR_E_TIMEOUT:
  case LR_E_CONNECT:
  case LR_E_CIRCUIT_OPEN:
    return 0;
  case LR_E_INVALID_REQUEST:
    return context_exceeded ? 1 : -1;
  default:
    return -1;
  }
}

int lr_fallback_next(const lr_fallbacks *f, int which, lr_fallback_state *s) {
  if (which < 0 || which > 1 || s->origin < 0) return -1;
  const lr_fallback_list *l = find(f, which, s->origin);
  if (!l || s->step[which] >= l->n) return -1;
  return l->to[s->step[which]++];
}
