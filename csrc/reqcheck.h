/* A request body before it is sent, per api (api.h): is it one a server could
 * answer well, and how many tokens is it expected to cost. */
#ifndef LR_REQCHECK_H
#define LR_REQCHECK_H
#include <stddef.h>

#include "api.h"

/* The tokens a request is expected to cost before it is sent: a quarter of
 * its bytes plus the output it may ask for: chat's top-level
 * "max_completion_tokens" (else "max_tokens"), completions' "max_tokens",
 * Responses' "max_output_tokens"; embeddings have no output tokens. The
 * rpm/tpm buckets charge it; an answer's usage corrects it. */
double lr_json_estimate_tokens(const char *body, size_t n, lr_api api);

/* A request body of `api` before it is sent: 0 when it is one JSON object
 * within max_depth, with valid UTF-8 strings and the api's own required
 * field (chat: a non-empty "messages" array; embeddings and Responses:
 * "input", a non-empty string or array; completions: "prompt", a string or a
 * non-empty array); else -1 and a sentence in msg naming the field
 * ("messages[2].content is not valid UTF-8 (byte 17)": arrays counted from
 * 1, bytes of the decoded string). */
int lr_json_check_request(const char *s, size_t n, lr_api api, int max_depth, char *msg, size_t msgn);

#endif
