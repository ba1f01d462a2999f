/* See clock.h. */
#include "clock.h"

#include <time.h>

static double now_of(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double lr_now_mono(void) { return now_of(CLOCK_MONOTONIC); }

double lr_now_wall(void) { return now_of(CLOCK_REALTIME); }
