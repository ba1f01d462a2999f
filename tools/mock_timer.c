/* mock_timer.c - the timer heap of the llmrelay mock server (see mock_net.c):
 * a binary min-heap of connections keyed by deadline, O(log n) per
 * operation; each connection knows its index (hidx, -1 when not armed). */
#include "mock.h"

#include <stdlib.h>

static struct conn **heap;
static size_t heap_n, heap_cap;

static void heap_swap(size_t a, size_t b)
{
    struct conn *t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
    heap[a]->hidx = (long)a;
    heap[b]->hidx = (long)b;
}

static void heap_up(size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (heap[p]->deadline <= heap[i]->deadline)
            break;
        heap_swap(i, p);
        i = p;
    }
}

static void heap_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_n && heap[l]->deadline < heap[m]->deadline)
            m = l;
        if (r < heap_n && heap[r]->deadline < heap[m]->deadline)
            m = r;
        if (m == i)
            return;
        heap_swap(i, m);
        i = m;
    }
}

void timer_clear(struct conn *c)
{
    if (c->hidx < 0)
        return;
    size_t i = (size_t)c->hidx;
    c->hidx = -1;
    heap_n--;
    if (i == heap_n)
        return;
    heap[i] = heap[heap_n];
    heap[i]->hidx = (long)i;
    heap_up(i);
    heap_down((size_t)heap[i]->hidx);
}

void timer_set(struct conn *c, int64_t deadline)
{
    timer_clear(c);
    if (heap_n == heap_cap) {
        heap_cap = heap_cap ? heap_cap * 2 : 1024;
        heap = realloc(heap, heap_cap * sizeof *heap);
        if (!heap)
            abort();
    }
    c->deadline = deadline;
    c->hidx = (long)heap_n;
    heap[heap_n++] = c;
    heap_up(heap_n - 1);
}

struct conn *timer_first(void) { return heap_n ? heap[0] : NULL; }

void timer_cleanup(void)
{
    free(heap);
    heap = NULL;
    heap_n = heap_cap = 0;
}
