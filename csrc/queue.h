/* The relay's queues of requests: intrusive doubly-linked lists (lr_req.prev,
 * .next) and a min-heap on lr_req.wake_at (lr_req.heap_idx). No allocation
 * but the heap's array. */
#ifndef LR_QUEUE_H
#define LR_QUEUE_H

#include "relay.h"

/* front: 1 at the head, 0 at the tail. */
void lr_list_push(lr_req **head, lr_req **tail, lr_req *r, int front);
void lr_list_unlink(lr_req **head, lr_req **tail, lr_req *r);

typedef struct lr_req_heap {
  lr_req **v;
  int n, cap;
} lr_req_heap; /* zeroed: empty */

/* -1 when out of memory (r is not in the heap then). */
int lr_heap_push(lr_req_heap *h, lr_req *r);
void lr_heap_remove(lr_req_heap *h, lr_req *r); /* r->heap_idx = -1 after */
void lr_heap_free(lr_req_heap *h);
/* The earliest wake_at, or NULL when empty. */
static inline lr_req *lr_heap_top(const lr_req_heap *h) { return h->n ? h->v[0] : NULL; }

#endif
