/* The one error vocabulary of llmrelay: every failure a request can end with.
 * lua/llmrelay/errors.lua mirrors this table; keep the two in the same order.
 * "budget" (config budget.usd spent) is decided in Lua before anything reaches the
 * core (lua/llmrelay/budget.lua); it is here so that the vocabulary stays one. */
#ifndef LR_ERRORS_H
#define LR_ERRORS_H

#define LR_ERROR_KINDS(X)                          \
  X(NONE, "ok")                                    \
  X(RATE_LIMITED, "rate_limited")                  \
  X(SERVER_ERROR, "server_error")                  \
  X(TIMEOUT, "timeout")                            \
  X(CONNECT, "connect")                            \
  X(HTTP, "http")                                  \
  X(INVALID_REQUEST, "invalid_request")            \
  X(CIRCUIT_OPEN, "circuit_open")                  \
  X(DEADLINE, "deadline")                          \
  X(DECODE, "decode")                              \
  X(STREAM_INTERRUPTED, "stream_interrupted")      \
  X(CANCELLED, "cancelled")                        \
  X(BUDGET, "budget")

typedef enum {
#define LR_X_ENUM(name, str) LR_E_##name,
  LR_ERROR_KINDS(LR_X_ENUM)
#undef LR_X_ENUM
  LR_E__COUNT
} lr_error_kind;

const char *lr_error_kind_name(lr_error_kind kind);

/* Bytes of a failed answer's body (or a stream's error event) kept for its message. */
#define LR_ERROR_BODY 2048

#endif
