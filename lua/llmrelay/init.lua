-- llmrelay: a resilient client for OpenAI-compatible chat-completion APIs.
-- This file is the thin Lua face of the C core (llmrelay.core): it encodes
-- requests, waits for results and turns them into responses or error tables.
-- Every retry, failover and wait is decided in C (csrc/relay.c).

local core = require "llmrelay.core"
local cjson = require "cjson.safe"
local config = require "llmrelay.config"
local errors = require "llmrelay.errors"
local sched = require "llmrelay.sched"
local batch = require "llmrelay.batch"
local stream = require "llmrelay.stream"
local executor = require "llmrelay.executor"
local cost = require "llmrelay.cost"
local reqopts = require "llmrelay.reqopts"
local budget = require "llmrelay.budget"
local apis = require "llmrelay.apis"

local type, pairs, ipairs, pcall, error, setmetatable, tostring, tonumber =
  type, pairs, ipairs, pcall, error, setmetatable, tostring, tonumber
local encode, decode = cjson.encode, cjson.decode
local floor = math.floor
local format = string.format

local _M = {
  _VERSION = core.version, errors = errors,
  run = sched.run, spawn = sched.spawn, sleep = sched.sleep,
}

-- a request's token estimate for client-side tpm limits is the core's (core.estimate_tokens)
local estimate_tokens = core.estimate_tokens

local Client = {}
Client.__index = Client

local MAX_MESSAGE = 400
local PRIORITY_MIN, PRIORITY_MAX = core.limits.priority_min, core.limits.priority_max

local deliver_events -- below

-- Inside nginx (OpenResty), requests go out through cosockets (llmrelay.resty.engine)
-- unless transport = "curl" asks for libcurl, which would block the worker.
local function in_openresty()
  return type(ngx) == "table" and type(ngx.socket) == "table" and type(ngx.get_phase) == "function"
end

function _M.new(user_cfg)
  local cfg = config.validate(user_cfg, 2)
  local names, index = {}, {}
  for i, ep in ipairs(cfg.endpoints) do names[i], index[ep.name] = ep.name, i end
  local resty = cfg.transport == "resty" or (cfg.transport == "auto" and in_openresty())
  if resty and not in_openresty() then error("llmrelay.new: transport = \"resty\" needs OpenResty (ngx)", 2) end
  if cfg.shared_dict and not resty then
    error("llmrelay.new: shared_dict needs OpenResty (a lua_shared_dict); remove it outside nginx", 2)
  end
  local models = {} -- the configured models, for a gateway's /models (the cfg holds keys: not kept here)
  for _, ep in ipairs(cfg.endpoints) do
    for _, m in ipairs(ep.models or {}) do models[#models + 1] = m end
  end
  -- the one place an executor is chosen: from here on both have one face (llmrelay.executor)
  -- a fleet (config redis): every executor exchanges leases and state with it the same way
  local spend = budget.new(cfg) -- nil without budget.usd
  local fleet = cfg.redis and require("llmrelay.fleet").new(cfg, spend)
  local x = resty and require("llmrelay.resty.engine").new(cfg, fleet) or executor.curl(cfg, fleet)
  local self = setmetatable({
    _x = x,
    _fleet = fleet,
    _transport = resty and "resty" or "curl",
    _model_list = models,
    _names = names,
    _index = index, -- endpoint name -> number, for opts.endpoints
    _scrub = errors.scrubber(config.secrets(cfg)), -- the keys live in C memory: no dump shows them
    _on_event = cfg.on_event,
    _conc = cfg.concurrency,
    _ledger = cost.ledger(cfg.endpoints, spend), -- what answers cost, per endpoint and model
    _budget = spend,
    _dict = cfg.shared_dict and { cfg.shared_dict, cfg.name }, -- a gateway's host-wide /metrics
  }, Client)
  if cfg.on_event then x:on_events(function() deliver_events(self) end) end
  return self
end

---------------------------------------------------------------------------
-- The loop, and the interface the library's own modules use
--
-- Every submitted request has a waiter: { inbox = {} }. The executor puts
-- each finished request into its waiter's inbox and wakes whoever waits;
-- one waiter may collect many requests (a batch). stream.lua, batch.lua,
-- cli.lua and resty/gateway.lua use the client only through the methods
-- below whose names start with "_" (never its fields); they are not public
-- API and may change with the library.

-- `method` names the call in the message: client.chat("x") (a dot for a colon)
-- hands the method a string, not a client.
local function check_client(self, method, level)
  if getmetatable(self) ~= Client then
    error("llmrelay: client:" .. method .. " called with '.' instead of ':' (write client:"
          .. method .. "(...))", (level or 2) + 1)
  end
end

local function check_open(self, method)
  check_client(self, method, 3)
  if not self._x then error("llmrelay: this client is closed", 3) end
end

-- Turns the core's events into the documented shape and hands them to on_event.
-- A failing on_event is a programmer mistake: it is stashed and raised once the
-- current call has its result, so no request is abandoned half-way.
deliver_events = function(self)
  local evs = self._x:events()
  if not evs then return end
  local names, cb = self._names, self._on_event
  for _, ev in ipairs(evs) do
    ev.endpoint = names[ev.endpoint]
    if ev.to and ev.type ~= "fallback" then ev.to = names[ev.to] end -- a fallback's from and to: model names
    local ok, err = pcall(cb, ev)
    -- boxed: error(nil) or error(false) must not read as "no error"
    if not ok and not self._callback_error then self._callback_error = { err } end
  end
end

-- Advances transfers and timers for at most `timeout` seconds.
function Client:_pump(timeout)
  return self._x:step(timeout)
end

function Client:step(timeout)
  check_open(self, "step")
  return self:_pump(timeout or 0)
end

function Client:_waiter()
  return { inbox = {} }
end

function Client:_concurrency()
  return self._conc
end

-- Starts a request whose result goes to `waiter`. -> id | nil, err: a message
-- (the request is invalid), or an errors table of kind "budget" (budget.usd spent).
-- ro: the request's own headers and endpoints (llmrelay.reqopts), or nil. api: "chat" (nil),
-- "embeddings", "responses" or "completions" (llmrelay.apis): its path on the endpoint serving it.
function Client:_submit(body, model, timeout, deadline, waiter, priority, streamed, ro, api)
  -- every path (requests, batches, CLI lines, gateway bodies) comes here: a
  -- body no server could answer well, or any body once the budget is spent,
  -- is refused before anything is sent
  local ok, problem = core.check_request(body, api)
  if not ok then return nil, problem end
  local refused = self._budget and self._budget:refusal()
  if refused then return nil, refused end
  local id, err = self._x:submit(body, model, estimate_tokens(body, api), timeout, deadline, priority, streamed, waiter,
                                 ro, api)
  if id then self._ledger:remember(id, model) end
  return id, err
end

-- Ends a request early (see the executor's cancel for what its waiter may
-- still receive); `pump`: hand the cancelled call back to the core at once.
function Client:_cancel(id, pump)
  local x = self._x
  if not x then return false end
  local was = x:cancel(id)
  self._ledger:forget(id)
  if pump then x:step(0) end
  return was
end

-- A stream's events so far (JSON strings) and its x-request-id (unscrubbed), or nil.
function Client:_stream_take(id)
  return self._x:stream_take(id)
end

-- Waits until the waiter holds a result (or, for a stream, events are
-- ready), or `timeout` seconds passed (nil: no limit). Yields inside
-- llmrelay.run or nginx, drives the loop itself elsewhere.
function Client:_wait(waiter, timeout)
  return self._x:wait(waiter, timeout)
end

function Client:_closed()
  return self._x == nil
end

-- "curl" or "resty": which transport sends the requests (for the gateway,
-- which serves only inside nginx).
function Client:_transport_name()
  return self._transport
end

-- The name of endpoint i (config order).
function Client:_endpoint_name(i)
  return self._names[i]
end

-- Text with every configured key replaced (for messages built outside).
function Client:_scrub_text(text)
  return self._scrub:text(text)
end

-- The lua_shared_dict's name and the pool's name, or nil (llmrelay.resty.metrics).
function Client:_shared_dict() return (self._dict or {})[1], (self._dict or {})[2] end

-- The configured model ids (a gateway's /models).
function Client:_models()
  return self._model_list
end

-- The result of one request, waiting for it.
local function await(self, waiter)
  self:_wait(waiter)
  return waiter.inbox[1]
end

---------------------------------------------------------------------------
-- Results

-- ro: the request's llmrelay.reqopts (its credential headers are scrubbed too), or nil.
local function make_error(self, r, ro)
  return errors.from_result(r, reqopts.scrubber(self._scrub, ro), r.endpoint and self._names[r.endpoint], MAX_MESSAGE)
end

-- Charges a finished core result (r.endpoint still an index) for the usage in
-- text (JSON with a top-level usage), once: sets r.model and, priced, r.cost.
function Client:_charge(r, text)
  return self._ledger:charge(r, text)
end

-- A core result (the table is reused) in the batch engine's shape: the body
-- stays raw JSON; r.cost and r.model as _charge sets them. ro: as _submit's.
function Client:_result(r, ro)
  self._ledger:charge(r, r.ok and r.body or nil) -- a failure: only forgets the request's model
  if r.ok then
    r.endpoint = self._names[r.endpoint]
    r.id = nil
    if r.request_id then r.request_id = reqopts.scrubber(self._scrub, ro):text(r.request_id) end
    return r
  end
  return { ok = false, error = make_error(self, r, ro), status = r.status,
           error_body = r.error_body and (reqopts.scrubber(self._scrub, ro):json(r.error_body)), attempts = r.attempts }
end

-- A failing user callback (on_event, on_result) is raised once the call that
-- ran it has every result in hand.
local function raise_callback_error(self)
  local box = self._callback_error
  if box then
    self._callback_error = nil
    error(box[1], 0)
  end
end

local function decoded(self, res)
  if not res.ok then return nil, res.error end
  local resp = decode(res.body)
  if type(resp) ~= "table" then
    return nil, errors.new { kind = "decode", status = res.status, endpoint = res.endpoint,
                             attempts = res.attempts, message = "the response body is not valid JSON",
                             request_id = res.request_id }
  end
  resp._llmrelay = { endpoint = res.endpoint, model = res.model, attempts = res.attempts, latency = res.latency,
                     cost = res.cost, request_id = res.request_id }
  return resp
end

---------------------------------------------------------------------------
-- Requests

local function check_seconds(v, fn, name, max, level)
  if v ~= nil and (type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge) then
    error(fn .. ": " .. name .. " must be a positive number of seconds", level + 1)
  end
  if v ~= nil and v > max then
    error(fn .. ": " .. name .. " must be at most " .. max .. " seconds", level + 1)
  end
end

-- The options in seconds and their upper bounds: a timeout becomes integer
-- milliseconds in C, like timeout.total (config's range).
local OPT_KEYS = { timeout = config.MAX_SECONDS, deadline = math.huge }

-- opts.headers and opts.endpoints (every request of a batch) -> llmrelay.reqopts
local REQ_OPTS = { headers = true, endpoints = true }

-- -> opts, the request's own headers and endpoints (llmrelay.reqopts) or nil
local function check_opts(self, opts, fn, extra)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(fn .. ": opts must be a table (got " .. type(opts) .. ")", 3) end
  for k, v in pairs(opts) do
    if k == "priority" then
      if type(v) ~= "number" or v ~= floor(v) or v < PRIORITY_MIN or v > PRIORITY_MAX then
        error(fn .. ": opts.priority must be a whole number from " .. PRIORITY_MIN .. " to " .. PRIORITY_MAX, 3)
      end
    elseif OPT_KEYS[k] then
      check_seconds(v, fn, "opts." .. k, OPT_KEYS[k], 3)
    elseif not (extra and extra[k]) and not REQ_OPTS[k] then
      error(fn .. ": unknown option '" .. tostring(k) .. "'", 3)
    end
  end
  return opts, reqopts.check(opts, fn, self._index, 3)
end

-- Encodes a request; a malformed one is a programmer mistake in chat_completion
-- (raised) but data in a batch (returned as the message).
local function encode_request(req, where, api)
  if type(req) ~= "table" then return nil, where .. " must be a table (got " .. type(req) .. ")" end
  local bad = apis.check_fields(req, where, api) -- messages, input or prompt
  if bad then return nil, bad end
  if req.model ~= nil and type(req.model) ~= "string" then
    return nil, where .. ".model must be a string (got " .. type(req.model) .. ")"
  end
  if req.stream then return nil, where .. ".stream is set; use client:stream for streamed answers" end
  local body, err = encode(req)
  if not body then return nil, where .. " cannot be encoded as JSON: " .. tostring(err) end
  return body
end

local function one(self, req, opts, fn, api)
  check_open(self, fn)
  local ro
  opts, ro = check_opts(self, opts, fn)
  local body, msg = encode_request(req, "request", api)
  if not body then error(fn .. ": " .. msg, 3) end
  local waiter = { inbox = {} }
  local id, err = self:_submit(body, req.model, opts.timeout, opts.deadline, waiter, opts.priority, nil, ro, api)
  if not id then return nil, errors.submit_error(err) end
  local res = self:_result(await(self, waiter), ro)
  raise_callback_error(self)
  return decoded(self, res)
end

-- client:chat_completion(req, opts) -> decoded response | nil, err
function Client:chat_completion(req, opts)
  return one(self, req, opts, "chat_completion")
end
apis.install(Client, one) -- embeddings, responses, completions, request (llmrelay.apis)

local STREAM_OPTS = { on_delta = true, api = true }

-- A streamed request's body: the caller's fields plus "stream": true and,
-- unless the caller chose stream_options, include_usage (the final chunk
-- then carries the usage, counted like a non-streamed answer's).
local function encode_stream(req, api)
  if type(req) ~= "table" then return nil, "request must be a table (got " .. type(req) .. ")" end
  if req.stream ~= nil and req.stream ~= true then return nil, "request.stream must be true or nil" end
  local copy = {}
  for k, v in pairs(req) do copy[k] = v end
  copy.stream = nil
  local body, msg = encode_request(copy, "request", api)
  if not body then return nil, msg end
  copy.stream = true -- Responses report usage in response.completed, and take no stream_options
  if copy.stream_options == nil and api ~= "responses" then copy.stream_options = { include_usage = true } end
  return encode(copy)
end

-- client:stream(req, opts) -> a stream (see lua/llmrelay/stream.lua):
--   for chunk, err in client:stream(req) do ... end
-- opts: timeout, deadline, priority, headers, endpoints, on_delta = function(text), api = "responses" | "completions".
function Client:stream(req, opts)
  check_open(self, "stream")
  local ro
  opts, ro = check_opts(self, opts, "stream", STREAM_OPTS)
  if opts.on_delta ~= nil and type(opts.on_delta) ~= "function" then
    error("stream: opts.on_delta must be a function", 2)
  end
  local api = apis.stream_api(opts.api)
  local body, msg = encode_stream(req, api)
  if not body then error("stream: " .. msg, 2) end
  local waiter = { inbox = {} }
  local id, err = self:_submit(body, req.model, opts.timeout, opts.deadline, waiter, opts.priority, true, ro, api)
  local st = stream.new(self, id, waiter, opts.on_delta, function(c, r) return make_error(c, r, ro) end,
                        reqopts.scrubber(self._scrub, ro), api)
  if not id then
    st._finished = true
    st._err = errors.submit_error(err)
  end
  return st, nil, nil, st
end

-- chat(..., { stream = true }): the whole text, read as a stream.
local function chat_streamed(self, req, ropts, on_delta)
  local o = { on_delta = on_delta }
  for k, v in pairs(ropts or {}) do o[k] = v end
  local st = self:stream(req, o)
  while true do
    local chunk, err = st:next()
    if chunk == nil then
      raise_callback_error(self)
      if err then return nil, err end
      break
    end
  end
  return st:text(), { usage = st.usage, _llmrelay = st._llmrelay }
end

local CHAT_OPTS = { timeout = true, deadline = true, priority = true, system = true, stream = true, on_delta = true,
                    headers = true, endpoints = true }

-- client:chat(text_or_messages, opts) -> reply text, response | nil, err
-- opts: model, system, timeout, deadline, headers, endpoints, and any request field (temperature, max_tokens, ...).
function Client:chat(input, opts)
  check_open(self, "chat")
  if opts ~= nil and type(opts) ~= "table" then
    error("chat: opts must be a table (got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local messages
  if type(input) == "string" then
    messages = {}
    if opts.system ~= nil then
      if type(opts.system) ~= "string" then error("chat: opts.system must be a string", 2) end
      messages[1] = { role = "system", content = opts.system }
    end
    messages[#messages + 1] = { role = "user", content = input }
  elseif type(input) == "table" then
    messages = input
  else
    error("chat: expected a string or an array of messages (got " .. type(input) .. ")", 2)
  end
  local req, ropts = { messages = messages }, nil
  for k, v in pairs(opts) do
    if k == "timeout" or k == "deadline" or k == "priority" or REQ_OPTS[k] then
      ropts = ropts or {}
      ropts[k] = v
    elseif not CHAT_OPTS[k] then
      req[k] = v
    end
  end
  if opts.on_delta ~= nil and type(opts.on_delta) ~= "function" then
    error("chat: opts.on_delta must be a function", 2)
  end
  if opts.stream ~= nil and type(opts.stream) ~= "boolean" then error("chat: opts.stream must be a boolean", 2) end
  if opts.stream or opts.on_delta then return chat_streamed(self, req, ropts, opts.on_delta) end
  local resp, err = one(self, req, ropts, "chat")
  if not resp then return nil, err end
  local choice = type(resp.choices) == "table" and resp.choices[1]
  local text = type(choice) == "table" and type(choice.message) == "table" and choice.message.content
  if type(text) ~= "string" then
    return nil, errors.new { kind = "decode", status = 200, endpoint = resp._llmrelay.endpoint,
                             attempts = resp._llmrelay.attempts,
                             message = "the response has no choices[1].message.content text" }
  end
  return text, resp
end

local BATCH_OPTS = { concurrency = true, on_result = true, on_progress = true }

-- client:batch(requests, opts) -> results, summary
-- results[i] = { ok = true, response = <decoded> } | { ok = false, error = err }, in request order.
-- opts: concurrency, on_result, on_progress, and timeout, deadline, priority, headers, endpoints for each request.
function Client:batch(requests, opts)
  check_open(self, "batch")
  if type(requests) ~= "table" then error("batch: requests must be an array (got " .. type(requests) .. ")", 2) end
  local ro
  opts, ro = check_opts(self, opts, "batch", BATCH_OPTS)
  local conc = opts.concurrency
  if conc ~= nil and (type(conc) ~= "number" or conc < 1 or conc ~= floor(conc)) then
    error("batch: opts.concurrency must be a positive integer", 2)
  end
  for _, k in ipairs { "on_result", "on_progress" } do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then error("batch: opts." .. k .. " must be a function", 2) end
  end
  local on_result, on_progress = opts.on_result, opts.on_progress
  local n, i, results = #requests, 0, {}
  local function source()
    if i >= n then return nil end
    i = i + 1
    local req = requests[i]
    local body, msg = encode_request(req, "requests[" .. i .. "]")
    if not body then
      return { key = i, error = errors.new { kind = "invalid_request", attempts = 0, message = msg } }
    end
    return { key = i, body = body, model = req.model, timeout = opts.timeout, deadline = opts.deadline,
             priority = opts.priority, ro = ro }
  end
  -- batch.run guards the callbacks: it raises the first error (error(nil) too)
  -- once every request has ended
  local function sink(key, res)
    local resp, err = decoded(self, res)
    local out = resp and { ok = true, response = resp } or { ok = false, error = err }
    results[key] = out
    if on_result then on_result(key, out) end
  end
  local summary = batch.run(self, source, sink, {
    concurrency = conc or self._conc, total = n, on_progress = on_progress,
  })
  raise_callback_error(self)
  return results, summary
end

---------------------------------------------------------------------------
-- Introspection

-- One table per endpoint, in config order. Never holds an api key.
function Client:status()
  check_open(self, "status")
  local st, wall = self._x:status(), core.wall()
  for i, s in ipairs(st) do
    s.name = self._names[i]
    if s.throttled_for then s.throttled_until = wall + s.throttled_for end
  end
  self._ledger:fill_status(st)
  if self._fleet then st.redis = self._fleet:status() end
  if self._budget then st.budget = self._budget:status() end
  return st
end

local STATE_VALUE = { closed = 0, half_open = 1, open = 2 }

local function label(name)
  return (name:gsub("[\\\"]", "\\%0"):gsub("\n", "\\n"))
end

-- Prometheus text exposition of status().
function Client:metrics()
  check_open(self, "metrics")
  local st = self:status()
  local out = {}
  local function family(name, kind, help, field, map)
    out[#out + 1] = format("# HELP llmrelay_%s %s\n# TYPE llmrelay_%s %s\n", name, help, name, kind)
    for _, s in ipairs(st) do
      local v = s[field]
      if map then v = map[v] end
      if v then
        out[#out + 1] = format("llmrelay_%s{endpoint=\"%s\"} %.17g\n", name, label(s.name), v)
      end
    end
  end
  family("requests_total", "counter", "Attempts sent to the endpoint.", "requests")
  family("successes_total", "counter", "Attempts that succeeded.", "successes")
  family("failures_total", "counter", "Attempts that failed (health failures).", "failures")
  family("throttles_total", "counter", "Times a server asked the endpoint to pause (429, or 5xx with Retry-After).", "throttles")
  family("in_flight", "gauge", "Attempts in flight now.", "in_flight")
  family("latency_ewma_seconds", "gauge", "Moving average latency of successful attempts.", "latency_ewma")
  family("success_rate", "gauge", "Moving average success rate.", "success_rate")
  family("breaker_state", "gauge", "Circuit breaker: 0 closed, 1 half-open, 2 open.", "state", STATE_VALUE)
  family("learnt_rate", "gauge", "Requests per second the endpoint is paced to, learnt from 429s that publish no limits.", "learnt_rate")
  family("learnt_burst", "gauge", "Requests the endpoint's server takes at once, learnt from 429s that publish no limits.", "learnt_burst")
  self._ledger:metrics(out, self._names, label)
  if st.budget then self._budget:metrics(out, st.budget) end
  local r = st.redis
  if r then
    local function one(name, kind, help, v)
      out[#out + 1] = format("# HELP llmrelay_%s %s\n# TYPE llmrelay_%s %s\nllmrelay_%s %.17g\n", name, help, name,
                             kind, name, v)
    end
    one("redis_up", "gauge", "1 while the fleet's Redis answers, 0 while the client runs on local state.", r.up and 1 or 0)
    one("redis_round_trips_total", "counter", "Exchanges with the fleet's Redis.", r.round_trips)
    one("redis_fallbacks_total", "counter", "Leases decided on local state because Redis did not answer.", r.fallbacks)
    one("redis_errors_total", "counter", "Failed exchanges with the fleet's Redis (down, slow, refused).", r.errors)
    one("redis_members", "gauge", "Fleet members seen by Redis in the last seconds.", r.members)
  end
  return table.concat(out)
end

-- Requests submitted and not yet delivered.
function Client:pending()
  check_open(self, "pending")
  return self._x:pending()
end

local function close(self)
  if self._x then
    self._x:close()
    self._x = nil
  end
  if self._fleet then self._fleet:close() end
end

-- Frees the client's connections; any call after this is an error.
function Client:close()
  check_client(self, "close")
  -- the fleet is told the spend it was not told yet (budget.usd); not by __gc: no I/O there
  if self._x and self._fleet then self._fleet:flush() end
  close(self)
end

Client.__close = Client.close
Client.__gc = close

return _M
