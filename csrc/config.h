/* The client's configuration as the core reads it: transport-neutral, shared
 * by both bindings (l_client.c for libcurl, l_relay.c for OpenResty) and read
 * from Lua's normalized config by lrl_read_config (l_common.c). */
#ifndef LR_CONFIG_H
#define LR_CONFIG_H
#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "pool.h"
#include "relay.h"

typedef struct lr_client_endpoint {
  const char *urls[LR_API__COUNT]; /* the full URL of each api (urls[LR_API_CHAT]: chat/completions) */
  const char *const *headers;  /* "Name: value" lines (Authorization included) */
  int n_headers;
  lr_endpoint_cfg policy;
} lr_client_endpoint;

typedef struct lr_client_cfg {
  lr_relay_cfg relay;
  lr_breaker_cfg breaker;
  lr_strategy strategy;
  double connect_timeout_s, first_byte_timeout_s;
  double idle_timeout_s;       /* streams: the longest silence between two reads once the answer began; <= 0 none */
  const char *ca_file;         /* NULL: the system's CA store */
  int insecure;                /* 1: do not verify TLS peers (only when asked) */
  size_t max_response_bytes;
  const char *user_agent;
  uint64_t seed;
} lr_client_cfg;

#endif
