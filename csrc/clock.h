/* The core's two clocks, for every executor and binding. */
#ifndef LR_CLOCK_H
#define LR_CLOCK_H

/* Monotonic seconds: deadlines, timers, pacing. */
double lr_now_mono(void);
/* Wall-clock seconds since the epoch: only for HTTP dates (Retry-After, reset headers). */
double lr_now_wall(void);

#endif
