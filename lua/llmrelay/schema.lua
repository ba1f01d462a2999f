-- The configuration of llmrelay.new, stated once: every field with its type, default and a
-- one-line doc. config.lua validates, fills in and normalizes from this table; README's
-- configuration table is checked against it (spec/config_schema_spec.lua).

local _M = {}

local format, floor = string.format, math.floor
local limits = require("llmrelay.core").limits

-- Ranges the C core can hold (core.limits: counts land in C ints, concurrency sizes
-- arrays, seconds become integer milliseconds); a weight's bound is the Lua layer's own.
local MAX_COUNT, MAX_CONCURRENCY, MAX_SECONDS = limits.max_count, limits.max_concurrency, limits.max_seconds
local MAX_WEIGHT = 1000000
_M.MAX_SECONDS = MAX_SECONDS -- per-call timeouts (init.lua) share the range
_M.MAX_ENDPOINTS, _M.MAX_HEADERS, _M.MAX_MODELS = limits.max_endpoints, limits.max_headers,
  limits.max_models

local MIB, GIB = 1024 * 1024, 1024 * 1024 * 1024
local BYTES_MIN, BYTES_MAX = limits.max_response_bytes_min, limits.max_response_bytes_max

-- The number types. desc says what a value must be; a value is refused outside
-- [min, max] (above: the lower bound itself excluded); range, when there is one, is said
-- after the value, so every refusal names the whole range.
_M.numbers = {
  count = { desc = "a positive integer", int = true, min = 1, max = MAX_COUNT },
  concurrency = { desc = "a positive integer", int = true, min = 1, max = MAX_CONCURRENCY },
  seconds = { desc = "a positive number", above = 0, max = MAX_SECONDS, unit = " seconds" },
  seconds_or_zero = { desc = "a number >= 0", min = 0, max = MAX_SECONDS, unit = " seconds" },
  weight = { desc = "a positive number", above = 0, max = MAX_WEIGHT },
  positive = { desc = "a positive number", above = 0 },
  usd = { desc = "a number >= 0 (USD per 1M tokens)", min = 0 },
  dollars = { desc = "a number >= 0 (USD)", min = 0 },
  rate = { desc = "a number in (0, 1]", above = 0, max = 1, no_range = true },
  budget = { desc = "a number >= 0 or false", min = 0, false_is = -1 }, -- false: no budget
  bytes = { desc = "an integer >= " .. BYTES_MIN, int = true, min = BYTES_MIN, max = BYTES_MAX,
            unit = format(" (%d GiB)", floor(BYTES_MAX / GIB)) },
  -- An upper bound paired with a lower one (field.lower, a sibling): the range starts at it.
  cap = { max = MAX_SECONDS, unit = " seconds" },
}
for _, t in pairs(_M.numbers) do
  if t.max and not t.no_range and (t.min or t.above) then
    local from = t.above and "above " .. t.above or tostring(t.min)
    t.range = from .. " to " .. t.max .. (t.unit or "")
  end
end

-- Every field, in the order they are checked (on_event first, a cap after the rest of its
-- table). path names the field as messages do ("endpoints[i]" is each endpoint); type is a
-- number type above or a checker of config.lua; default is what a missing field becomes;
-- shown is the default as README states it, where the value alone would not say it.
_M.fields = {
  { path = "on_event", type = "function", doc = "function(ev), called for each event" },
  { path = "endpoints[i].name", type = "endpoint_name", shown = "host[:port]",
    doc = "unique; appears in errors, events, status" },
  { path = "endpoints[i].base_url", type = "base_url", required = true,
    doc = "http(s)://host[:port]/path; requests go to base_url .. path" },
  { path = "endpoints[i].api_key", type = "api_key",
    doc = "the key (at least " .. require("llmrelay.errors").MIN_SECRET .. " characters)" },
  { path = "endpoints[i].api_key_env", type = "api_key_env",
    doc = "the environment variable holding the key, read at new(); not with api_key" },
  { path = "endpoints[i].weight", type = "weight", default = 1,
    doc = "share of traffic in weighted selection" },
  { path = "endpoints[i].rpm", type = "positive", default = 0, shown = "none",
    doc = "client-side requests per minute" },
  { path = "endpoints[i].tpm", type = "positive", default = 0, shown = "none",
    doc = "client-side estimated tokens per minute" },
  { path = "endpoints[i].max_concurrency", type = "concurrency", default = 0, shown = "none",
    doc = "attempts in flight to this endpoint; more requests queue" },
  { path = "endpoints[i].models", type = "models", shown = "every model",
    doc = "models it serves (at most " .. limits.max_models .. "): names served as they are, or { [model] = its name here }" },
  { path = "endpoints[i].prices", type = "prices", shown = "none",
    doc = "USD per 1M tokens by model: { [model] = { input =, output =, cached_input = } }, \"*\" for any other" },
  { path = "endpoints[i].headers", type = "headers", shown = "none",
    doc = "extra headers (at most " .. limits.max_headers .. ")" },
  { path = "endpoints[i].secret_headers", type = "secret_headers", shown = "none",
    doc = "names of more headers whose values are secrets" },
  { path = "endpoints[i].path", type = "url_path", default = "/chat/completions",
    doc = "the request path after base_url; {model} becomes the request's model, percent-encoded" },
  { path = "endpoints[i].query", type = "url_query", shown = "none",
    doc = "{ [name] = value } appended, percent-encoded, to every request's URL" },
  { path = "endpoints[i].paths", type = "api_paths", shown = "derived from path",
    doc = "{ embeddings =, responses =, completions = }: each api's path; by default path with its "
      .. "/chat/completions replaced (/embeddings ...), or OpenAI's layout after base_url" },
  { path = "endpoints[i].apis", type = "apis", shown = "all four",
    doc = "the apis it serves: \"chat\", \"embeddings\", \"responses\", \"completions\"" },
  { path = "endpoints[i].auth", type = "auth", default = "bearer",
    doc = "how the key is sent: \"bearer\" (Authorization: Bearer KEY) or \"api-key\" (api-key: KEY)" },
  { path = "strategy", type = "enum", values = { "weighted", "priority", "round_robin", "cost" },
    default = "weighted", doc = "how an endpoint is chosen (cost: the cheapest usable one by prices)" },
  { path = "fallbacks", type = "fallbacks", shown = "none",
    doc = "{ [model] = { other, ... } }: models tried in turn when a model fails for good (at most 8)" },
  { path = "context_window_fallbacks", type = "fallbacks", shown = "none",
    doc = "the same, for a 400 whose code is context_length_exceeded" },
  { path = "retry.max_attempts", type = "count", default = 5,
    doc = "attempts per request, the first included" },
  { path = "retry.base_delay", type = "seconds", default = 0.5, doc = "backoff's first delay" },
  { path = "retry.max_retry_after", type = "seconds_or_zero", default = 120,
    doc = "a longer server-given wait means gone for now" },
  { path = "retry.max_delay", type = "cap", lower = "base_delay", default = 30,
    doc = "backoff's largest delay (at least base_delay)" },
  { path = "retry.budget", type = "budget", default = 0.2,
    doc = "retries as a share of first attempts over 10 s; false for none" },
  { path = "breaker.failure_threshold", type = "count", default = 5,
    doc = "consecutive failures that open the breaker" },
  { path = "breaker.failure_rate", type = "rate", default = 0.5,
    doc = "failure share over window that opens the breaker" },
  { path = "breaker.min_calls", type = "count", default = 20,
    doc = "calls in window before failure_rate counts" },
  { path = "breaker.window", type = "seconds", default = 30, doc = "failure_rate's span (s)" },
  { path = "breaker.cooldown", type = "seconds", default = 60, doc = "open period" },
  { path = "breaker.half_open_probes", type = "count", default = 1,
    doc = "live requests testing a half-open endpoint" },
  { path = "breaker.max_cooldown", type = "cap", lower = "cooldown", default = 300,
    doc = "largest open period (at least cooldown)" },
  { path = "timeout.connect", type = "seconds", default = 5, doc = "seconds to connect" },
  { path = "timeout.first_byte", type = "seconds", default = 60, doc = "seconds to a first byte" },
  { path = "timeout.idle", type = "seconds", default = 30, doc = "seconds between stream events" },
  { path = "timeout.total", type = "seconds", default = 600, doc = "seconds an attempt may take" },
  { path = "tls.ca_file", type = "file", shown = "system CAs", doc = "PEM bundle to trust" },
  { path = "tls.insecure", type = "boolean", default = false, doc = "true turns verification off" },
  { path = "max_response_bytes", type = "bytes", default = limits.max_response_bytes_default,
    shown = format("%d MiB", floor(limits.max_response_bytes_default / MIB)),
    doc = "largest answer kept" },
  { path = "concurrency", type = "concurrency", default = 64,
    doc = "attempts in flight for the whole client" },
  { path = "budget.usd", type = "dollars",
    doc = "USD the client may spend (answers' cost); then new requests fail with kind \"budget\"" },
  { path = "user_agent", type = "text", default = "llmrelay/0.1", doc = "User-Agent header" },
  { path = "name", type = "word", default = "default",
    doc = "the pool's name: clients with the same name (and shared_dict or redis) share its state" },
  { path = "redis", type = "redis", shown = "none",
    doc = "redis://[user:password@]host:port[/db], rediss:// (TLS), or a table: a fleet shares limits and breakers" },
  { path = "shared_dict", type = "word", doc = "OpenResty: a lua_shared_dict all workers share" },
  { path = "transport", type = "enum", values = { "auto", "curl", "resty" }, default = "auto",
    doc = "curl, resty (cosockets), or auto: cosockets inside nginx" },
}

-- The default as documentation states it: a string quoted, nothing as "none".
function _M.default_text(f)
  if f.shown then return f.shown end
  if f.required then return "required" end
  local d = f.default
  if d == nil then return "none" end
  if type(d) == "string" then return '"' .. d .. '"' end
  return tostring(d)
end

-- The tables fields live in: each with its keys in order, and for each key the field or
-- the table below it ("endpoints[i]" makes the array node "endpoints").
local function build(fields)
  local root = { keys = {}, items = {}, children = {} }
  for _, f in ipairs(fields) do
    local node = root
    for part, sep in f.path:gmatch("([^.]+)(%.?)") do
      local key, each = part:match("^(.-)(%[i%])$")
      key = key or part
      if sep == "" then
        f.key = key
        node.keys[#node.keys + 1] = key
        node.items[#node.items + 1] = f
      else
        local child = node.children[key]
        if not child then
          child = { key = key, array = each ~= nil, keys = {}, items = {}, children = {} }
          node.children[key] = child
          node.keys[#node.keys + 1] = key
          node.items[#node.items + 1] = child
        end
        node = child
      end
    end
  end
  return root
end

_M.tree = build(_M.fields)

return _M
