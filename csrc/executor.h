/* The executor contract: what runs a relay's attempts on real I/O (DESIGN.md
 * "One core, thin executors"). Two executors keep it: the libcurl multi
 * executor (transport_curl.h, bound by l_client.c) and the OpenResty cosocket
 * executor (lua/llmrelay/resty/, through the relay binding l_relay.c and the
 * HTTP/1.1 decoder l_http1.c). This header gathers the core's side of the
 * contract: an executor includes it and needs nothing else from the core.
 *
 * An executor does, and only does:
 *  1. Ask for work: lr_relay_poll(rl, now, out, max, &next_wake) hands it the
 *     requests to send now (state SENDING: endpoint, attempt_timeout_s) and
 *     the finished ones (state DONE: kind, message, status). Every `now`
 *     the core is given is monotonic seconds (lr_now_mono(), core.now() in
 *     Lua); at most LR_POLL_BATCH requests a poll.
 *  2. Send each attempt the relay hands it: the request's body to
 *     lr_req.endpoint's URL, with the connect / first byte / idle / attempt
 *     limits of the config (lr_client_cfg) and max_response_bytes as they
 *     are. If it cannot send after all (a shared count refused it), it says
 *     so with lr_relay_unsend.
 *  3. Say when a connection is made (lr_pool_reached), and feed what arrives:
 *     the response's header lines to an lr_hints (lr_hints_feed_line, with
 *     lr_now_wall() for HTTP dates), the body either whole or, for a stream,
 *     to an lr_evstream (evbuf.h), whose data events it hands to the caller
 *     as they come (lr_evq).
 *  4. When the attempt ends (the answer came; EOF; an error; one of its own
 *     timers expired), describe it as facts in an lr_attempt_facts (how it
 *     ended, status, body or stream, its own error text) and let
 *     lr_outcome_shape make the outcome; then lr_relay_report it with the
 *     facts only it knows (not_sent, committed, partial).
 *  5. Sleep until the earliest of next_wake, its transfers' timers and I/O,
 *     then wake and go back to 1. Cancel when the caller asks
 *     (lr_relay_cancel) and drop the transfer.
 *
 * An executor never decides: whether to retry or fail over, which endpoint,
 * how to classify an answer (classify.c), caps (line, header, body, event
 * sizes), deadlines and backoff, error kinds and messages (outcome.c,
 * answer.c, http1.c), defaults (the Lua config hands every value), token
 * estimates or usage accounting. Those live once, in the core. */
#ifndef LR_EXECUTOR_H
#define LR_EXECUTOR_H

#include "clock.h"
#include "config.h"
#include "evbuf.h"
#include "hints.h"
#include "outcome.h"
#include "relay.h"

#endif
