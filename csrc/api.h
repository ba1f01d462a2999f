/* The APIs a request may be for: each has its own path on an endpoint, its
 * own required request fields and token estimate. One pool serves them all
 * (breakers, limits and pacing are the endpoint's, whatever the api). */
#ifndef LR_API_H
#define LR_API_H
#include <stddef.h>

typedef enum {
  LR_API_CHAT,        /* POST {base}/chat/completions: the default */
  LR_API_EMBEDDINGS,  /* POST {base}/embeddings */
  LR_API_RESPONSES,   /* POST {base}/responses */
  LR_API_COMPLETIONS, /* POST {base}/completions */
  LR_API__COUNT
} lr_api;

/* "chat", "embeddings", "responses", "completions". */
const char *lr_api_name(lr_api api);
/* The api named s[0..n), or -1 when there is none of that name. */
int lr_api_find(const char *s, size_t n);
/* The path suffix of each api ("/chat/completions", "/embeddings", ...). */
const char *lr_api_suffix(lr_api api);

#endif
