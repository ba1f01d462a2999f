-- llmrelay.resty.gateway: an OpenAI-compatible endpoint in front of a pool.
--
--   content_by_lua_block { require("llmrelay.resty.gateway").serve(client, opts) }
--
-- Routes (matched on the end of the URI, so any location prefix works):
--   POST .../chat/completions   JSON, or SSE passed on chunk by chunk ("stream": true)
--   GET  .../models             the union of the pool's configured models
--   GET  /health                status JSON (200 while some endpoint can serve, else 503)
--   GET  /metrics               Prometheus text
-- opts:
--   keys         accepted gateway keys (Authorization: Bearer <key>, or api-key /
--                x-api-key); nil: no client auth. Compared in constant time.
--   keys_env     a variable holding comma-separated keys (needs `env NAME;` in nginx.conf)
--   open_status  true: /health and /metrics need no key (for probes and scrapers)
--   health_path, metrics_path   other paths for those two
--   models       extra model ids for /models (endpoints that serve every model list none)
--   deadline     seconds a request may take in all, waits and retries included
--                (nil: none). A request that could only start after it (every
--                breaker open, every endpoint throttled) is answered at once
--                with 503/429 and Retry-After. Without it, a request waits up
--                to retry.max_retry_after for a usable endpoint.
-- The request body goes upstream unchanged; the upstream keys are the
-- pool's and never reach the caller; neither do upstream headers.

local ngx = ngx
local cjson = require "cjson.safe"
local stream = require "llmrelay.stream"

local bit = require "bit"
local bxor, bor = bit.bxor, bit.bor
local byte, sub, match, gsub = string.byte, string.sub, string.match, string.gsub
local remove = table.remove
local ceil = math.ceil
local type, ipairs, tostring, pairs = type, ipairs, tostring, pairs

local _M = {}

local STATUS_OF = {
  rate_limited = 429, circuit_open = 503, timeout = 504, deadline = 504, connect = 502,
  server_error = 502, http = 502, decode = 502, stream_interrupted = 502, cancelled = 499,
  invalid_request = 400,
}

local function send_json(status, doc, headers)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  if headers then
    for k, v in pairs(headers) do ngx.header[k] = v end
  end
  ngx.print(cjson.encode(doc))
end

-- OpenAI's error types; llmrelay's kind goes in `code`.
local TYPE_OF = { invalid_request = "invalid_request_error", rate_limited = "rate_limit_error" }

local function error_doc(message, kind, code)
  return { error = { message = message, type = TYPE_OF[kind] or kind, code = code or kind, param = cjson.null } }
end

local function fail(status, message, kind, headers)
  send_json(status, error_doc(message, kind), headers)
end

-- The HTTP status and body for an llmrelay error.
local function error_response(err)
  local status = STATUS_OF[err.kind] or 502
  if err.kind == "invalid_request" and err.status and err.status >= 400 and err.status < 500 then status = err.status end
  local headers
  if status == 429 or status == 503 then
    if err.retry_after then headers = { ["Retry-After"] = tostring(ceil(err.retry_after)) } end
  end
  return status, error_doc(err.message or err.kind, TYPE_OF[err.kind] or "api_error", err.kind), headers
end

---------------------------------------------------------------------------
-- Client auth

local function digest(s)
  return ngx.sha1_bin(s)
end

-- Equal in time that does not depend on where they differ: the SHA-1 digests
-- (fixed length) are compared byte by byte, every byte, every key.
local function accepted(presented, keys)
  if not presented then return false end
  local d = digest(presented)
  local hit = false
  for i = 1, #keys do
    local k = keys[i]
    local diff = 0
    for j = 1, 20 do diff = bor(diff, bxor(byte(d, j), byte(k, j))) end
    if diff == 0 then hit = true end
  end
  return hit
end

local function presented_key()
  local h = ngx.var.http_authorization
  if h then
    local k = match(h, "^%s*[Bb]earer%s+(.-)%s*$")
    if k and k ~= "" then return k end
  end
  return ngx.var.http_api_key or ngx.var.http_x_api_key
end

-- Digests of the accepted keys, cached per opts table: build opts once (in
-- init_by_lua), not in every request, or they are digested every time.
local key_cache = setmetatable({}, { __mode = "k" })

local function accepted_digests(opts)
  local d = key_cache[opts]
  if d then return d end
  local list = {}
  if type(opts.keys) == "table" then
    for _, k in ipairs(opts.keys) do
      if type(k) ~= "string" or k == "" then error("gateway: opts.keys must hold non-empty strings", 3) end
      list[#list + 1] = k
    end
  elseif opts.keys ~= nil then
    error("gateway: opts.keys must be an array of strings", 3)
  end
  if opts.keys_env then
    local v = os.getenv(opts.keys_env)
    if not v or v == "" then error("gateway: " .. opts.keys_env .. " is not set (add `env " .. opts.keys_env .. ";` to nginx.conf)", 3) end
    for k in v:gmatch("[^,%s]+") do list[#list + 1] = k end
  end
  d = { required = #list > 0 }
  for i, k in ipairs(list) do d[i] = digest(k) end
  key_cache[opts] = d
  return d
end

---------------------------------------------------------------------------
-- Chat completions

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  -- nginx wrote it to a file (larger than client_body_buffer_size): reading it
  -- back is blocking file I/O; set client_body_buffer_size = client_max_body_size
  local file = ngx.req.get_body_file()
  if not file then return nil end
  local f = io.open(file, "rb")
  if not f then return nil end
  body = f:read("*a")
  f:close()
  return body
end


local function complete(client, body, model, deadline)
  local waiter = { inbox = {} }
  local id, err = client:_submit(body, model, nil, deadline, waiter, nil, false)
  if not id then return fail(503, tostring(err), "unavailable") end
  while not waiter.inbox[1] do client:_wait(waiter) end
  local res = client:_result(waiter.inbox[1])
  if res.ok then
    ngx.status = 200
    ngx.header["Content-Type"] = "application/json"
    ngx.header["X-LLMRelay-Endpoint"] = res.endpoint
    ngx.header["X-LLMRelay-Attempts"] = tostring(res.attempts)
    ngx.print(res.body)
    return
  end
  local status, doc, headers = error_response(res.error)
  headers = headers or {}
  if res.error.endpoint then headers["X-LLMRelay-Endpoint"] = res.error.endpoint end
  headers["X-LLMRelay-Attempts"] = tostring(res.error.attempts or 0)
  send_json(status, doc, headers)
end

local function sse(data)
  return "data: " .. data .. "\n\n"
end

-- Streamed: nothing is sent until the first event, so a failure before it
-- (every endpoint down) is still a proper HTTP error; after it a failure
-- becomes an error event, which SDKs raise, never a silent end.
local function streamed(client, body, model, deadline)
  local waiter = { inbox = {} }
  local id, err = client:_submit(body, model, nil, deadline, waiter, nil, true)
  if not id then return fail(503, tostring(err), "unavailable") end
  local started = false
  local function start(r)
    ngx.status = 200
    ngx.header["Content-Type"] = "text/event-stream"
    ngx.header["Cache-Control"] = "no-cache"
    ngx.header["X-Accel-Buffering"] = "no"
    if r and r.endpoint then ngx.header["X-LLMRelay-Endpoint"] = client._names[r.endpoint] end
    ngx.send_headers()
    started = true
  end
  local function emit(events)
    if #events == 0 then return true end
    if not started then start() end
    local out = {}
    for i = 1, #events do out[i] = sse(events[i]) end
    ngx.print(out)
    local ok = ngx.flush(true)
    return ok
  end
  while true do
    if waiter.ready then
      waiter.ready = false
      local evs = client._h:stream_take(id)
      if evs and not emit(evs) then -- the caller went away
        client._waiters[id] = nil
        client:_cancel(id)
        return
      end
    end
    local r = remove(waiter.inbox, 1)
    if r then
      if r.events then emit(r.events) end
      if r.ok then
        if not started then start(r) end
        if r.body and r.body ~= "" then -- a server that ignored "stream": one chunk
          local resp = cjson.decode(r.body)
          if type(resp) == "table" then ngx.print(sse(cjson.encode(stream.as_chunk(resp)))) end
        end
        ngx.print(sse("[DONE]"))
        ngx.flush(true)
        return
      end
      local res = client:_result(r)
      if not started then
        local status, doc, headers = error_response(res.error)
        return send_json(status, doc, headers)
      end
      ngx.print(sse(cjson.encode(error_doc(res.error.message or res.error.kind, "api_error", res.error.kind))))
      ngx.flush(true)
      return
    end
    if not waiter.ready then client:_wait(waiter) end
  end
end

local function chat(client, opts)
  local body = read_body()
  if not body or body == "" then return fail(400, "the request has no body", "invalid_request_error") end
  local req = cjson.decode(body)
  if type(req) ~= "table" then return fail(400, "the request body is not a JSON object", "invalid_request_error") end
  if type(req.messages) ~= "table" then
    return fail(400, "'messages' must be an array of messages", "invalid_request_error")
  end
  local model = req.model
  if model ~= nil and type(model) ~= "string" then
    return fail(400, "'model' must be a string", "invalid_request_error")
  end
  if req.stream == true then return streamed(client, body, model, opts.deadline) end
  return complete(client, body, model, opts.deadline)
end

---------------------------------------------------------------------------
-- Models, health, metrics

local function models(client, opts)
  local seen, data = {}, {}
  local function add(m)
    if type(m) == "string" and not seen[m] then
      seen[m] = true
      data[#data + 1] = { id = m, object = "model", created = 0, owned_by = "llmrelay" }
    end
  end
  for _, m in ipairs(client._models) do add(m) end
  for _, m in ipairs(opts.models or {}) do add(m) end
  send_json(200, { object = "list", data = data })
end

local function health(client)
  local st = client:status()
  local usable = 0
  local t = ngx.now()
  for _, s in ipairs(st) do
    if s.state ~= "open" and not (s.throttled_until and s.throttled_until > t) then usable = usable + 1 end
  end
  local status = usable == #st and "ok" or (usable > 0 and "degraded" or "unavailable")
  send_json(usable > 0 and 200 or 503, { status = status, worker = ngx.worker.pid(), endpoints = st })
end

local function metrics(client)
  ngx.status = 200
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(client:metrics())
end

---------------------------------------------------------------------------

local function ends_with(s, suffix)
  return sub(s, -#suffix) == suffix
end

function _M.serve(client, opts)
  if type(client) ~= "table" or not client._h then error("gateway.serve: expected an llmrelay client", 2) end
  if opts and opts.deadline ~= nil and (type(opts.deadline) ~= "number" or not (opts.deadline > 0)) then
    error("gateway.serve: opts.deadline must be a positive number of seconds", 2)
  end
  if not client._resty then error("gateway.serve: the client must use the OpenResty transport", 2) end
  opts = opts or {}
  local uri, method = ngx.var.uri, ngx.req.get_method()
  local health_path, metrics_path = opts.health_path or "/health", opts.metrics_path or "/metrics"
  local is_status = uri == health_path or uri == metrics_path
  local keys = accepted_digests(opts)
  if keys.required and not (is_status and opts.open_status) and not accepted(presented_key(), keys) then
    return fail(401, "invalid or missing API key for this gateway", "invalid_request_error",
                { ["WWW-Authenticate"] = "Bearer" })
  end
  if ends_with(uri, "/chat/completions") then
    if method ~= "POST" then return fail(405, "use POST", "invalid_request_error", { Allow = "POST" }) end
    return chat(client, opts)
  elseif ends_with(uri, "/models") then
    if method ~= "GET" then return fail(405, "use GET", "invalid_request_error", { Allow = "GET" }) end
    return models(client, opts)
  elseif uri == health_path then
    return health(client)
  elseif uri == metrics_path then
    return metrics(client)
  end
  return fail(404, "no route for " .. method .. " " .. gsub(uri, "[%c]", "?"), "invalid_request_error")
end

_M._accepted = accepted

return _M
