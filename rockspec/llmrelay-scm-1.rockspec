-- Builds offline from a checkout: `luarocks make rockspec/llmrelay-scm-1.rockspec`.
rockspec_format = "3.0"
package = "llmrelay"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- built from the working tree with `luarocks make`; nothing is fetched
}
description = {
  summary = "A resilient client for OpenAI-compatible chat-completion APIs",
  detailed = [[
    Spreads requests over a pool of endpoints with circuit breakers, full-jitter
    backoff that honours Retry-After / retry-after-ms / x-ratelimit-*, health- and
    latency-aware selection, and a libcurl multi transport, in a small C core.
  ]],
  license = "MIT",
}
-- lua-cjson is required at run time too; it is not listed because Debian's
-- lua-cjson package is not a rock, and listing it would make `luarocks make`
-- try to download it. llmrelay fails with a clear `require` error without it.
dependencies = {
  "lua >= 5.1",
}
external_dependencies = {
  -- only the library is checked: Debian keeps curl/curl.h in a multiarch include
  -- directory LuaRocks does not search, while the compiler finds it by itself
  CURL = { library = "curl" },
  -- TLS to Redis (rediss://), csrc/sock.c
  OPENSSL = { library = "ssl" },
}
build = {
  type = "builtin",
  modules = {
    ["llmrelay"] = "lua/llmrelay/init.lua",
    ["llmrelay.config"] = "lua/llmrelay/config.lua",
    ["llmrelay.schema"] = "lua/llmrelay/schema.lua",
    ["llmrelay.dialect"] = "lua/llmrelay/dialect.lua",
    ["llmrelay.errors"] = "lua/llmrelay/errors.lua",
    ["llmrelay.sched"] = "lua/llmrelay/sched.lua",
    ["llmrelay.batch"] = "lua/llmrelay/batch.lua",
    ["llmrelay.stream"] = "lua/llmrelay/stream.lua",
    ["llmrelay.cost"] = "lua/llmrelay/cost.lua",
    ["llmrelay.executor"] = "lua/llmrelay/executor.lua",
    ["llmrelay.reqopts"] = "lua/llmrelay/reqopts.lua",
    ["llmrelay.route"] = "lua/llmrelay/route.lua",
    ["llmrelay.budget"] = "lua/llmrelay/budget.lua",
    ["llmrelay.apis"] = "lua/llmrelay/apis.lua",
    ["llmrelay.cli"] = "lua/llmrelay/cli.lua",
    ["llmrelay.cli_fleet"] = "lua/llmrelay/cli_fleet.lua",
    ["llmrelay.cli_budget"] = "lua/llmrelay/cli_budget.lua",
    ["llmrelay.cli_help"] = "lua/llmrelay/cli_help.lua",
    ["llmrelay.cli_jsonl"] = "lua/llmrelay/cli_jsonl.lua",
    ["llmrelay.cli_plan"] = "lua/llmrelay/cli_plan.lua",
    ["llmrelay.cli_report"] = "lua/llmrelay/cli_report.lua",
    ["llmrelay.cli_output"] = "lua/llmrelay/cli_output.lua",
    ["llmrelay.resty.http"] = "lua/llmrelay/resty/http.lua",
    ["llmrelay.store"] = "lua/llmrelay/store.lua",
    ["llmrelay.redis"] = "lua/llmrelay/redis.lua",
    ["llmrelay.fleet"] = "lua/llmrelay/fleet.lua",
    ["llmrelay.resty.shared"] = "lua/llmrelay/resty/shared.lua",
    ["llmrelay.resty.metrics"] = "lua/llmrelay/resty/metrics.lua",
    ["llmrelay.resty.engine"] = "lua/llmrelay/resty/engine.lua",
    ["llmrelay.resty.gateway"] = "lua/llmrelay/resty/gateway.lua",
    ["llmrelay.core"] = {
      sources = {
        "csrc/errors.c", "csrc/api.c", "csrc/reqcheck.c", "csrc/backoff.c", "csrc/hints.c", "csrc/breaker.c", "csrc/limiter.c", "csrc/ratelearn.c",
        "csrc/jsoncheck.c", "csrc/jsonmodel.c", "csrc/models.c", "csrc/fallback.c", "csrc/pool.c", "csrc/queue.c", "csrc/classify.c", "csrc/sse.c", "csrc/answer.c", "csrc/evbuf.c", "csrc/outcome.c", "csrc/shared.c", "csrc/relay.c", "csrc/scrub.c", "csrc/http1.c", "csrc/resp.c", "csrc/fleet.c", "csrc/urlenc.c", "csrc/idset.c",
        "csrc/clock.c", "csrc/sock.c", "csrc/transport_curl.c", "csrc/transport_curl_step.c", "csrc/l_common.c", "csrc/l_route.c", "csrc/l_fleet.c", "csrc/l_client.c", "csrc/l_relay.c", "csrc/l_util.c", "csrc/l_scrub.c", "csrc/l_http1.c", "csrc/l_json.c",
        "csrc/l_resp.c", "csrc/l_redis.c", "csrc/l_lock.c", "csrc/l_cli.c", "csrc/llmrelay_core.c",
      },
      incdirs = { "csrc", "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      libraries = { "curl", "ssl", "crypto" },
      defines = { "_GNU_SOURCE" },
    },
  },
  install = {
    bin = { llmrelay = "bin/llmrelay" },
  },
}
