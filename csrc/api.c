/* The api names and their path suffixes (see api.h). */
#include "api.h"

#include <string.h>

static const char *const NAMES[LR_API__COUNT] = {"chat", "embeddings", "responses", "completions"};
static const char *const SUFFIXES[LR_API__COUNT] = {"/chat/completions", "/embeddings", "/responses",
                                                    "/completions"};

const char *lr_api_name(lr_api api) { return (unsigned)api < LR_API__COUNT ? NAMES[api] : "?"; }

const char *lr_api_suffix(lr_api api) { return (unsigned)api < LR_API__COUNT ? SUFFIXES[api] : ""; }

int lr_api_find(const char *s, size_t n) {
  for (int k = 0; k < LR_API__COUNT; k++)
    if (strlen(NAMES[k]) == n && memcmp(NAMES[k], s, n) == 0) return k;
  return -1;
}
