/* A learnt request rate for servers that publish no limits and answer 429
 * with nothing but a pause (Retry-After). Such a pause costs the endpoint all
 * of its length, so the rate must be right after very few 429s. The model is
 * the token bucket most limiters are: at the first 429 the successes of the
 * last second give the bucket's size (the burst); after each pause the
 * bucket is full again, so the burst goes at once and then requests are paced,
 * the pace doubling every quarter second while it is a probe; at the next 429
 * the successes since the pause are replayed against a bucket of that size to
 * find the smallest refill rate that fits them, and 97 % of it becomes the
 * pace.
 * A bare 429 (no pause, no limits) is the other case: it costs one retry,
 * not a pause, so the learner follows the rate closely instead (`bare`).
 * At the first 429 the bucket is empty: the pace starts at the burst per
 * second and doubles every LR_RL_BARE_START_S of paced sending; at each
 * later 429 the successes since the last 429 (at most the last
 * LR_RL_BARE_WINDOW_S of them) are replayed against the bucket, empty at
 * that 429 (or full at the window's start), and LR_RL_BARE_SHARE (plus a
 * drawn part of LR_RL_BARE_SPREAD) of the smallest rate that fits them, never above the pace that earned the 429,
 * becomes the new pace (too few successes: the pace is cut to
 * LR_RL_BARE_CUT of itself, to its square at the next such 429 in a row,
 * its cube at the third, ..., so a limit that fell is reached in a few). Between 429s the pace grows with t, the time
 * the pace held requests back (an endpoint the caller does not keep busy
 * learns nothing): by LR_RL_BARE_HOLD_GAIN over the first LR_RL_BARE_HOLD_S
 * (it holds near the rate last found), then doubling every
 * LR_RL_BARE_DOUBLE_S, so a raised limit is found again within seconds and
 * the next 429 tells the new rate. Sans-I/O: every call takes `now`
 * (monotonic seconds). */
#ifndef LR_RATELEARN_H
#define LR_RATELEARN_H

#define LR_RL_RECENT 256  /* success times kept for the burst estimate */
#define LR_RL_MAX_TIMES 8192 /* success times kept between two 429s */
#define LR_RL_BARE_WINDOW_S 4.0  /* successes a bare 429's estimate looks back on */
#define LR_RL_BARE_SHARE 0.95    /* of the estimate: the pace after a bare 429, */
#define LR_RL_BARE_SPREAD 0.04   /* plus up to this much more, drawn, so siblings do not probe in step */
#define LR_RL_BARE_CUT 0.85      /* the pace's cut when too few successes tell the rate */
#define LR_RL_BARE_HOLD_S 1.5    /* after a bare 429 the pace holds this long, */
#define LR_RL_BARE_HOLD_GAIN 0.03 /* growing by this share, */
#define LR_RL_BARE_DOUBLE_S 1.0  /* then doubles this often until the next 429 */
#define LR_RL_BARE_START_S 0.25  /* before the first estimate the pace doubles this often */
#define LR_RL_MIN_RATE 0.1       /* requests per second: the pace never goes below */

typedef struct lr_ratelearn {
  int active;         /* a 429 without published limits was seen */
  int estimated;      /* the pace comes from the model (or a sibling's), not the probe */
  int borrowed;       /* the pace is a sibling endpoint's estimate, not this one's */
  int hold;           /* probing is paused: a sibling probes, this one keeps its pace */
  double burst;       /* requests the server's bucket holds */
  double rate;        /* the pace, requests per second */
  double next_at;     /* pacing: the earliest next send */
  double step_at;     /* probing: when the pace doubles next */
  double since;       /* when the current observation began (the last pause's end) */
  double pause_s;     /* the last pause */
  double cut_at;      /* when the last 429 came */
  int cuts;           /* 429s learnt from */
  int burst_left;     /* sends allowed at once after a pause */
  int bare;           /* learning from bare 429s: no pause, the pace follows the rate */
  int lean;           /* bare: 429s in a row with too few successes between them */
  int limited;        /* bare: the pace held a request back at the last look */
  double base;        /* bare: the pace set at the last 429 (or taken from a sibling) */
  double grow_s;      /* bare: time the pace has held requests back since then */
  double grow_last;   /* bare: when grow_s was last brought up to date */
  double recent[LR_RL_RECENT];
  int recent_n, recent_head;
  double *times;      /* successes since `since`, while active */
  int n_times, cap_times;
} lr_ratelearn;

void lr_ratelearn_init(lr_ratelearn *l);
void lr_ratelearn_free(lr_ratelearn *l);
/* An attempt sent at sent_at succeeded. Only attempts sent after the last
 * pause tell the rate; those that were in flight when the first 429 came
 * belong to the burst it measured. */
void lr_ratelearn_success(lr_ratelearn *l, double sent_at, double now);
/* A 429 (one per burst of them) from a server that publishes no limits; it
 * asked for a pause of pause_s seconds. */
void lr_ratelearn_cut(lr_ratelearn *l, double now, double pause_s);
/* A bare 429 (no pause asked, no limits published) of an attempt sent
 * after the last cut; u is uniform in [0, 1). */
void lr_ratelearn_cut_bare(lr_ratelearn *l, double now, double u);
/* A sibling endpoint's first bare 429 found a bucket of `burst`; this one,
 * not refused yet but as busy, is probably as near its end: it paces as if
 * it had been refused now (the pace starts at burst per second and grows
 * while it holds requests back), so the sibling's refused requests do not
 * all fail over into it. A prior: its own first 429 re-estimates. No-op
 * when it is learning already. */
void lr_ratelearn_prior(lr_ratelearn *l, double burst, double now);
/* Successes of the last second. */
int lr_ratelearn_recent(const lr_ratelearn *l, double now);
/* The earliest moment a request may be sent (now when it may). */
double lr_ratelearn_ready_at(lr_ratelearn *l, double now);
/* A request was sent. */
void lr_ratelearn_sent(lr_ratelearn *l, double now);
/* Pauses (hold = 1) or resumes the probe; resuming starts a fresh step. */
void lr_ratelearn_hold(lr_ratelearn *l, int hold, double now);
/* Takes a sibling endpoint's estimate as this one's pace while this one is
 * still probing (a pool of keys to the same service usually shares a limit);
 * a 429 later re-estimates from this endpoint's own successes. */
void lr_ratelearn_adopt(lr_ratelearn *l, double rate);
/* The endpoint is probing (active, no estimate yet). */
int lr_ratelearn_probing(const lr_ratelearn *l);

/* The smallest refill rate of a bucket of `burst`, full (up to rate x pause_s)
 * at `since`, that admits every success in times[0..n); -1 if none does. */
double lr_ratelearn_estimate(const double *times, int n, double since, double burst, double pause_s);

#endif
