/* Unit tests of csrc/queue.c: the relay's lists and its heap of waiting requests. */
#include <stdlib.h>

#include "ctest.h"
#include "queue.h"

TEST(list_push_front_and_back_then_unlink) {
  lr_req a = {0}, b = {0}, c = {0}, *head = NULL, *tail = NULL;
  lr_list_push(&head, &tail, &a, 0);
  lr_list_push(&head, &tail, &b, 0);
  lr_list_push(&head, &tail, &c, 1);
  CHECK(head == &c && c.next == &a && a.next == &b && tail == &b && b.prev == &a);
  lr_list_unlink(&head, &tail, &a);
  CHECK(head == &c && c.next == &b && b.prev == &c && !a.prev && !a.next);
  lr_list_unlink(&head, &tail, &c);
  lr_list_unlink(&head, &tail, &b);
  CHECK(!head && !tail);
}

TEST(heap_hands_out_the_earliest_wake_first) {
  enum { N = 200 };
  lr_req *r = calloc(N, sizeof *r);
  lr_req_heap h = {0};
  CHECK(lr_heap_top(&h) == NULL);
  for (int i = 0; i < N; i++) {
    r[i].wake_at = (double)((i * 7919) % N); /* a permutation of 0..N-1 */
    CHECK(lr_heap_push(&h, &r[i]) == 0);
  }
  for (int i = 0; i < N; i += 3) lr_heap_remove(&h, &r[i]); /* out of the middle */
  CHECK(r[0].heap_idx == -1);
  double last = -1;
  int n = 0;
  for (lr_req *t; (t = lr_heap_top(&h));) {
    CHECK(t->wake_at >= last && h.v[t->heap_idx] == t);
    last = t->wake_at;
    lr_heap_remove(&h, t);
    n++;
  }
  CHECK(n == N - (N + 2) / 3);
  lr_heap_free(&h);
  free(r);
}

int main(void) {
  RUN(list_push_front_and_back_then_unlink);
  RUN(heap_hands_out_the_earliest_wake_first);
  CTEST_END();
}
