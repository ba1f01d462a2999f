/* See queue.h. */
#include "queue.h"

#include <stdlib.h>

void lr_list_push(lr_req **head, lr_req **tail, lr_req *r, int front) {
  r->prev = r->next = NULL;
  if (!*head) {
    *head = *tail = r;
  } else if (front) {
    r->next = *head;
    (*head)->prev = r;
    *head = r;
  } else {
    r->prev = *tail;
    (*tail)->next = r;
    *tail = r;
  }
}

void lr_list_unlink(lr_req **head, lr_req **tail, lr_req *r) {
  if (r->prev) r->prev->next = r->next;
  else *head = r->next;
  if (r->next) r->next->prev = r->prev;
  else *tail = r->prev;
  r->prev = r->next = NULL;
}

static void heap_swap(lr_req_heap *h, int a, int b) {
  lr_req *t = h->v[a];
  h->v[a] = h->v[b];
  h->v[b] = t;
  h->v[a]->heap_idx = a;
  h->v[b]->heap_idx = b;
}

static void heap_up(lr_req_heap *h, int i) {
  while (i > 0) {
    int p = (i - 1) / 2;
    if (h->v[p]->wake_at <= h->v[i]->wake_at) break;
    heap_swap(h, i, p);
    i = p;
  }
}

static void heap_down(lr_req_heap *h, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && h->v[l]->wake_at < h->v[m]->wake_at) m = l;
    if (r < h->n && h->v[r]->wake_at < h->v[m]->wake_at) m = r;
    if (m == i) break;
    heap_swap(h, i, m);
    i = m;
  }
}

int lr_heap_push(lr_req_heap *h, lr_req *r) {
  if (h->n == h->cap) {
    int cap = h->cap ? h->cap * 2 : 64;
    lr_req **v = realloc(h->v, (size_t)cap * sizeof *v);
    if (!v) return -1;
    h->v = v;
    h->cap = cap;
  }
  r->heap_idx = h->n;
  h->v[h->n++] = r;
  heap_up(h, r->heap_idx);
  return 0;
}

void lr_heap_remove(lr_req_heap *h, lr_req *r) {
  int i = r->heap_idx;
  h->n--;
  if (i != h->n) {
    h->v[i] = h->v[h->n];
    h->v[i]->heap_idx = i;
    heap_down(h, i);
    heap_up(h, h->v[i]->heap_idx);
  }
  r->heap_idx = -1;
}

void lr_heap_free(lr_req_heap *h) {
  free(h->v);
  h->v = NULL;
  h->n = h->cap = 0;
}
