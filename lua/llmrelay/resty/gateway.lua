-- llmrelay.resty.gateway: an OpenAI-compatible endpoint in front of a pool.
--
--   init_by_lua_block    { gateway = require("llmrelay.resty.gateway").new(client, opts) }
--   content_by_lua_block { gateway:serve() }
-- new() checks opts at nginx's start (a mistake stops nginx, with the message
-- in its log); serve(client, opts) does the same work per request instead,
-- and answers 500 naming the option when opts are wrong.
--
-- Routes (matched on the end of the URI, so any location prefix works):
--   POST .../chat/completions   JSON, or SSE passed on chunk by chunk ("stream": true)
--   POST .../embeddings         JSON
--   POST .../responses          JSON, or named SSE events (event: + data:) when streamed
--   POST .../completions        JSON, or SSE as chat ("stream": true)
--   each sent to the same path on an endpoint that serves it (the client's api)
--   GET  .../models             the union of the pool's configured models
--   GET  /health                status JSON (200 while some endpoint can serve, else 503):
--                               status, worker, endpoints (an array), redis (a fleet's, if any),
--                               budget ({ usd, spent }, if the pool has one)
--   GET  /metrics               Prometheus text; with the client's shared_dict its
--                               counters are every worker's (llmrelay.resty.metrics)
-- opts:
--   keys         accepted gateway keys (Authorization: Bearer <key>, or api-key /
--                x-api-key). Compared in constant time.
--   keys_env     a variable holding comma-separated keys (needs `env NAME;` in nginx.conf)
--   anonymous    true: serve every caller without a key (a warning goes to the
--                error log). Without keys it must be said: no keys and no
--                anonymous = true is refused; keys and anonymous = true too.
--   open_status  true: /health and /metrics need no key (for probes and scrapers)
--   health_path, metrics_path   other paths for those two
--   models       extra model ids for /models (endpoints that serve every model list none)
--   deadline     seconds a request may take in all, waits and retries included
--                (nil: none). A request that could only start after it (every
--                breaker open, every endpoint throttled) is answered at once
--                with 503/429 and Retry-After. Without it, a request waits up
--                to retry.max_retry_after for a usable endpoint.
-- The request body goes upstream unchanged; the upstream keys are the
-- pool's and never reach the caller; neither do upstream headers, but for
-- x-request-id (passed on whenever the answer has one, streamed or not). A failure that is
-- the request's own (400 such as context_length_exceeded, 404 model not
-- found, 413, 422) is answered with the upstream's status and error body,
-- scrubbed of keys, so SDKs' `e.code` checks work through the gateway.
-- Once the pool's budget (budget.usd) is spent, a request is answered 402
-- with code "budget_exceeded" (type "insufficient_quota"), nothing sent:
-- SDKs do not retry a 402, and waiting would not help.

local ngx = ngx
local cjson = require "cjson.safe"
local stream = require "llmrelay.stream"
local errors = require "llmrelay.errors"
local host_metrics = require "llmrelay.resty.metrics"

local bit = require "bit"
local bxor, bor = bit.bxor, bit.bor
local byte, sub, match, gsub, find = string.byte, string.sub, string.match, string.gsub, string.find
local concat = table.concat
local ceil = math.ceil
local type, ipairs, tostring, pairs, getmetatable = type, ipairs, tostring, pairs, getmetatable

local _M = {}

local STATUS_OF = {
  rate_limited = 429, circuit_open = 503, timeout = 504, deadline = 504, connect = 502,
  server_error = 502, http = 502, decode = 502, stream_interrupted = 502, cancelled = 499,
  invalid_request = 400, budget = 402,
}

local function send_raw(status, json, headers)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  if headers then
    for k, v in pairs(headers) do ngx.header[k] = v end
  end
  ngx.print(json)
end

local function send_json(status, doc, headers)
  send_raw(status, cjson.encode(doc), headers)
end

-- OpenAI's error types; llmrelay's kind goes in `code` (but for CODE_OF's).
local TYPE_OF = { invalid_request = "invalid_request_error", rate_limited = "rate_limit_error",
                  budget = "insufficient_quota" }
local CODE_OF = { budget = "budget_exceeded" }

local function error_doc(message, kind, code)
  return { error = { message = message, type = TYPE_OF[kind] or kind, code = code or kind, param = cjson.null } }
end

-- What the upstream said, where it said it (type, code, param), else llmrelay's words.
local function upstream_doc(err, fallback_type)
  local doc = error_doc(err.message or err.kind, err.type or fallback_type, err.code or err.kind)
  if err.param then doc.error.param = err.param end
  return doc
end

local function fail(status, message, kind, headers)
  send_json(status, error_doc(message, kind), headers)
end

-- 4xx answers that are not the request's own: the pool's key or account
-- (401 402 403 407), its pace (429), a timeout or conflict worth a retry.
local NOT_OWN = { [401] = true, [402] = true, [403] = true, [407] = true, [408] = true, [409] = true,
                  [425] = true, [429] = true }

-- The upstream refused the request itself: any endpoint would say the same.
local function own_failure(err)
  local s = err.status
  return (err.kind == "invalid_request" or err.kind == "http") and s ~= nil and s >= 400 and s < 500
    and not NOT_OWN[s]
end

-- The HTTP status, JSON text and headers (which endpoint, how many attempts,
-- the upstream's x-request-id) for an llmrelay error. error_body:
-- the upstream's (scrubbed) error body, passed on as it came when the
-- failure is the request's own and it is a JSON object.
local function error_response(err, error_body)
  local status = STATUS_OF[err.kind] or 502
  local headers = { ["X-LLMRelay-Endpoint"] = err.endpoint, ["X-LLMRelay-Attempts"] = tostring(err.attempts or 0),
                    ["x-request-id"] = err.request_id }
  if own_failure(err) then
    if error_body and type(cjson.decode(error_body)) == "table" then return err.status, error_body, headers end
    return err.status, cjson.encode(upstream_doc(err, TYPE_OF[err.kind] or "api_error")), headers
  end
  if status == 429 or status == 503 then
    if err.retry_after then headers["Retry-After"] = tostring(ceil(err.retry_after)) end
  end
  return status, cjson.encode(error_doc(err.message or err.kind, TYPE_OF[err.kind] or "api_error",
                                        CODE_OF[err.kind] or err.kind)), headers
end

-- The answer to a request the client refused before sending it (_submit's nil, err).
local function refused(client, err)
  if errors.is(err) then return send_raw(error_response(err)) end
  return fail(400, client:_scrub_text(tostring(err)), "invalid_request")
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

local ANONYMOUS_WARNING = "gateway: opts.anonymous = true: every caller is served without a gateway key"

local function no_keys(why)
  return "no gateway keys" .. (why and (" (" .. why .. ")") or "")
    .. ": set opts.keys or opts.keys_env, or opts.anonymous = true to serve every caller without a key"
end

-- The digests of the accepted keys -> { required = bool, [i] = digest } |
-- nil, what is wrong with opts (naming the option).
local function key_digests(opts)
  local anonymous = opts.anonymous
  if anonymous ~= nil and type(anonymous) ~= "boolean" then return nil, "opts.anonymous must be a boolean" end
  local list, unset = {}, nil
  if type(opts.keys) == "table" then
    for _, k in ipairs(opts.keys) do
      if type(k) ~= "string" or k == "" then return nil, "opts.keys must hold non-empty strings" end
      list[#list + 1] = k
    end
  elseif opts.keys ~= nil then
    return nil, "opts.keys must be an array of strings"
  end
  local env = opts.keys_env
  if env ~= nil then
    if type(env) ~= "string" or env == "" then return nil, "opts.keys_env must name an environment variable" end
    local v = os.getenv(env)
    if not v or v == "" then
      unset = env .. " is not set; nginx passes it only with `env " .. env .. ";` in nginx.conf"
    else
      local n = #list
      for k in v:gmatch("[^,%s]+") do list[#list + 1] = k end
      if #list == n then unset = env .. " holds no key" end
    end
  end
  if #list > 0 and anonymous then
    return nil, "opts.anonymous = true but gateway keys are given (opts.keys, opts.keys_env): choose one"
  end
  if #list == 0 and not anonymous then return nil, no_keys(unset) end
  local d = { required = #list > 0 }
  for i, k in ipairs(list) do d[i] = digest(k) end
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


local function complete(client, body, model, deadline, api)
  local waiter = { inbox = {} }
  local id, err = client:_submit(body, model, nil, deadline, waiter, nil, false, nil, api)
  if not id then return refused(client, err) end
  while not waiter.inbox[1] do client:_wait(waiter) end
  local res = client:_result(waiter.inbox[1])
  if res.ok then
    ngx.status = 200
    ngx.header["Content-Type"] = "application/json"
    ngx.header["X-LLMRelay-Endpoint"] = res.endpoint
    ngx.header["X-LLMRelay-Attempts"] = tostring(res.attempts)
    if res.request_id then ngx.header["x-request-id"] = res.request_id end
    ngx.print(res.body)
    return
  end
  send_raw(error_response(res.error, res.error_body))
end

-- One event, one data: line. The decoder joined a multi-line data: field with
-- "\n" (the SSE rules), and every event here is a checked JSON object, where
-- a raw newline can only be whitespace between tokens: without it, the same
-- JSON fits on one line (sent as it came, its next lines would lose "data:").
local function sse(data)
  if find(data, "\n", 1, true) then data = gsub(data, "\n", "") end
  return "data: " .. data .. "\n\n"
end

-- A Responses event goes out named (event: its type), as OpenAI sends them:
-- the SDKs' Responses streams dispatch on the name. The core hands the data
-- only; every Responses event carries its name in "type".
local function named_sse(data)
  local ev = cjson.decode(data)
  local name = type(ev) == "table" and ev.type
  if type(name) ~= "string" or find(name, "[%c]") then return sse(data) end
  return "event: " .. name .. "\n" .. sse(data)
end

-- What a stream that failed after its first event ends with: an error event
-- that SDKs raise (data.error, as for chat); a Responses stream's is named
-- "error" and has the Responses error event's own fields beside it.
local function error_event(res, api)
  local doc = upstream_doc(res.error, "api_error")
  if api ~= "responses" then return sse(cjson.encode(doc)) end
  local e = doc.error
  doc.type, doc.code, doc.message, doc.param = "error", e.code, e.message, e.param
  return "event: error\n" .. sse(cjson.encode(doc))
end

-- A server that ignored "stream": its whole answer as the stream's one
-- event (chat: a chunk; Responses: response.completed; completions: the
-- text_completion object, which is already a streamed chunk's shape).
local function whole_answer(body, api)
  local resp = cjson.decode(body)
  if type(resp) ~= "table" then return nil end
  if api == "responses" then
    return named_sse(cjson.encode { type = "response.completed", response = resp })
  elseif api == "completions" then
    return sse(cjson.encode(resp))
  end
  return sse(cjson.encode(stream.as_chunk(resp)))
end

-- Streamed: nothing is sent until the first event, so a failure before it
-- (every endpoint down) is still a proper HTTP error; after it a failure
-- becomes an error event, which SDKs raise, never a silent end. Chat and
-- completions streams end with [DONE]; a Responses stream ends with its
-- terminal event (response.completed), as OpenAI's do.
local function streamed(client, body, model, deadline, api)
  local waiter = { inbox = {} }
  local id, err = client:_submit(body, model, nil, deadline, waiter, nil, true, nil, api)
  if not id then return refused(client, err) end
  local started = false
  local one = api == "responses" and named_sse or sse
  -- r: the finished result when nothing was relayed before it, else nil (the
  -- first events are going out: the request id is the one they came with)
  local function start(r)
    ngx.status = 200
    ngx.header["Content-Type"] = "text/event-stream"
    ngx.header["Cache-Control"] = "no-cache"
    ngx.header["X-Accel-Buffering"] = "no"
    if r and r.endpoint then ngx.header["X-LLMRelay-Endpoint"] = client:_endpoint_name(r.endpoint) end
    local request_id = (r and r.request_id) or waiter.request_id
    if request_id then ngx.header["x-request-id"] = client:_scrub_text(request_id) end
    ngx.send_headers()
    started = true
  end
  local function emit(events)
    if #events == 0 then return true end
    if not started then start() end
    local out = {}
    for i = 1, #events do out[i] = one(events[i]) end
    ngx.print(out)
    local ok = ngx.flush(true)
    return ok
  end
  local evs, r = stream.await(client, id, waiter)
  while evs do
    if not emit(evs) then -- the caller went away
      client:_cancel(id)
      return
    end
    evs, r = stream.await(client, id, waiter)
  end
  -- the whole stream may end before a first take: its events come with the
  -- result, whose request id and endpoint go out with them
  if r.events and #r.events > 0 and not started then start(r) end
  if r.events then emit(r.events) end
  if r.ok then
    if not started then start(r) end
    if r.body and r.body ~= "" then -- a server that ignored "stream": one event
      local whole = whole_answer(r.body, api)
      if whole then ngx.print(whole) end
    end
    if api ~= "responses" then ngx.print(sse("[DONE]")) end
    ngx.flush(true)
    return
  end
  local res = client:_result(r)
  if not started then
    return send_raw(error_response(res.error, res.error_body))
  end
  ngx.print(error_event(res, api))
  ngx.flush(true)
end

-- Each route's api (the client's name for it) and the field its body must
-- have, of the type it must be: a cheap first check (the client checks the
-- whole body before sending it).
local APIS = {
  chat = { field = "messages", types = { table = true }, problem = "'messages' must be an array of messages" },
  embeddings = { field = "input", types = { string = true, table = true },
                 problem = "'input' must be a string or an array" },
  responses = { field = "input", types = { string = true, table = true },
                problem = "'input' must be a string or an array of input items" },
  completions = { field = "prompt", types = { string = true, table = true },
                  problem = "'prompt' must be a string or an array" },
}

local function call(client, opts, api)
  local body = read_body()
  if not body or body == "" then return fail(400, "the request has no body", "invalid_request_error") end
  local req = cjson.decode(body)
  if type(req) ~= "table" then return fail(400, "the request body is not a JSON object", "invalid_request_error") end
  local spec = APIS[api]
  if not spec.types[type(req[spec.field])] then return fail(400, spec.problem, "invalid_request_error") end
  local model = req.model
  if model ~= nil and type(model) ~= "string" then
    return fail(400, "'model' must be a string", "invalid_request_error")
  end
  -- the client's default api is chat: nil keeps chat's calls exactly as they were
  local as = api ~= "chat" and api or nil
  if req.stream == true and api ~= "embeddings" then return streamed(client, body, model, opts.deadline, as) end
  return complete(client, body, model, opts.deadline, as)
end

---------------------------------------------------------------------------
-- Models, health, metrics

-- Built by hand: cjson encodes an empty table as an object, and "data" is
-- an array even when no model is configured.
local function models(client, opts)
  local seen, data = {}, {}
  local function add(m)
    if type(m) == "string" and not seen[m] then
      seen[m] = true
      data[#data + 1] = cjson.encode { id = m, object = "model", created = 0, owned_by = "llmrelay" }
    end
  end
  for _, m in ipairs(client:_models()) do add(m) end
  for _, m in ipairs(opts.models or {}) do add(m) end
  send_raw(200, '{"object":"list","data":[' .. concat(data, ",") .. "]}")
end

local function health(client)
  local st = client:status()
  -- a fleet's Redis and the budget go beside the endpoints: "endpoints" stays a JSON array
  local redis, budget = st.redis, st.budget
  st.redis, st.budget = nil, nil
  local usable = 0
  local t = ngx.now()
  for _, s in ipairs(st) do
    if s.state ~= "open" and not (s.throttled_until and s.throttled_until > t) then usable = usable + 1 end
  end
  local status = usable == #st and "ok" or (usable > 0 and "degraded" or "unavailable")
  send_json(usable > 0 and 200 or 503, { status = status, worker = ngx.worker.pid(), endpoints = st, redis = redis,
                                         budget = budget })
end

local function metrics(client)
  ngx.status = 200
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(host_metrics.text(client))
end

---------------------------------------------------------------------------

local function ends_with(s, suffix)
  return sub(s, -#suffix) == suffix
end

-- The api a POST route names (chat's suffix is tried before completions').
local ROUTES = { { "/chat/completions", "chat" }, { "/embeddings", "embeddings" }, { "/responses", "responses" },
                 { "/completions", "completions" } }

local function route(uri)
  for i = 1, #ROUTES do
    local r = ROUTES[i]
    if ends_with(uri, r[1]) then return r[2] end
  end
  return nil
end

local function check(client, opts, fn)
  local mt = type(client) == "table" and getmetatable(client)
  if not (mt and mt._closed) or client:_closed() then error(fn .. ": expected an llmrelay client", 3) end
  if opts ~= nil and type(opts) ~= "table" then error(fn .. ": opts must be a table", 3) end
  if opts and opts.deadline ~= nil and (type(opts.deadline) ~= "number" or not (opts.deadline > 0)) then
    error(fn .. ": opts.deadline must be a positive number of seconds", 3)
  end
  if client:_transport_name() ~= "resty" then error(fn .. ": the client must use the OpenResty transport", 3) end
end

local function handle(client, opts, keys)
  local uri, method = ngx.var.uri, ngx.req.get_method()
  local health_path, metrics_path = opts.health_path or "/health", opts.metrics_path or "/metrics"
  local is_status = uri == health_path or uri == metrics_path
  if keys.required and not (is_status and opts.open_status) and not accepted(presented_key(), keys) then
    return fail(401, "invalid or missing API key for this gateway", "invalid_request_error",
                { ["WWW-Authenticate"] = "Bearer" })
  end
  local api = route(uri)
  if api then
    if method ~= "POST" then return fail(405, "use POST", "invalid_request_error", { Allow = "POST" }) end
    call(client, opts, api)
    return host_metrics.served(client)
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

local Gateway = {}
Gateway.__index = Gateway

-- Built once (init_by_lua): opts are checked and the keys digested at
-- nginx's start, so a wrong opts table stops nginx with the reason.
function _M.new(client, opts)
  check(client, opts, "gateway.new")
  opts = opts or {}
  local keys, why = key_digests(opts)
  if not keys then error("gateway.new: " .. why, 2) end
  if not keys.required then ngx.log(ngx.WARN, ANONYMOUS_WARNING) end
  return setmetatable({ client = client, opts = opts, keys = keys }, Gateway)
end

function Gateway:serve()
  return handle(self.client, self.opts, self.keys)
end

-- serve(client, opts): the key digests are cached per opts table (build it
-- once, in init_by_lua, or they are digested in every request); an opts
-- table that new() would refuse is answered 500, naming the option.
local key_cache = setmetatable({}, { __mode = "k" })
local NO_OPTS = {}
local logged = {} -- per worker: each message once

local function log_once(level, msg)
  if logged[msg] then return end
  logged[msg] = true
  ngx.log(level, msg)
end

function _M.serve(client, opts)
  check(client, opts, "gateway.serve")
  opts = opts or NO_OPTS
  local keys = key_cache[opts]
  if not keys then
    local why
    keys, why = key_digests(opts)
    keys = keys or { refused = "gateway.serve: " .. why }
    key_cache[opts] = keys
  end
  if keys.refused then
    log_once(ngx.ERR, keys.refused)
    return send_json(500, error_doc(keys.refused, "server_error", "gateway_config"))
  end
  if not keys.required then log_once(ngx.WARN, ANONYMOUS_WARNING) end
  return handle(client, opts, keys)
end

return _M
