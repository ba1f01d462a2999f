-- llmrelay: a resilient client for OpenAI-compatible chat-completion APIs.
-- This file is the thin Lua face of the C core (llmrelay.core): it encodes
-- requests, waits for results and turns them into responses or error tables.
-- Every retry, failover and wait is decided in C (csrc/relay.c).

local core = require "llmrelay.core"
local cjson = require "cjson.safe"
local config = require "llmrelay.config"
local errors = require "llmrelay.errors"

local type, pairs, ipairs, pcall, error, setmetatable, tostring =
  type, pairs, ipairs, pcall, error, setmetatable, tostring
local encode, decode = cjson.encode, cjson.decode
local floor = math.floor
local sub, find, format = string.sub, string.find, string.format

local _M = { _VERSION = core.version, errors = errors }

local Client = {}
Client.__index = Client

-- How long one step of the loop may sleep: short enough that a blocking
-- caller notices its own result promptly, long enough not to spin.
local STEP_WAIT = 0.5
local MAX_MESSAGE = 400

-- The keys live only in this closure, so no dump of a client shows them.
local function scrubber(secrets)
  return function(s) return errors.scrub(s, secrets) end
end

function _M.new(user_cfg)
  local cfg = config.validate(user_cfg, 2)
  local names = {}
  for i, ep in ipairs(cfg.endpoints) do names[i] = ep.name end
  local self = setmetatable({
    _h = core.client(cfg),
    _names = names,
    _scrub = scrubber(config.secrets(cfg)),
    _on_event = cfg.on_event,
    _results = {},
  }, Client)
  if cfg.on_event then self._h:enable_events(true) end
  return self
end

---------------------------------------------------------------------------
-- The loop

local function check_open(self)
  if not self._h then error("llmrelay: this client is closed", 3) end
end

-- Turns the core's events into the documented shape and hands them to on_event.
-- A failing on_event is a programmer mistake: it is stashed and raised once the
-- current call has its result, so no request is abandoned half-way.
local function deliver_events(self)
  local evs = self._h:events()
  if not evs then return end
  local names, cb = self._names, self._on_event
  for _, ev in ipairs(evs) do
    ev.endpoint = names[ev.endpoint]
    if ev.to then ev.to = names[ev.to] end
    local ok, err = pcall(cb, ev)
    if not ok and not self._event_error then self._event_error = err end
  end
end

-- Moves finished requests from the core into self._results.
local function drain(self)
  local h, results = self._h, self._results
  while true do
    local r = h:take()
    if not r then break end
    results[r.id] = r
  end
  if self._on_event then deliver_events(self) end
end

-- Advances every transfer and timer, waiting at most `timeout` seconds. For
-- users who run their own event loop.
function Client:step(timeout)
  check_open(self)
  local n, err = self._h:step(timeout or 0)
  if not n then return nil, err end
  drain(self)
  return true
end

-- Waits for the result of request `id`, driving the loop meanwhile.
local function await(self, id)
  local results, h = self._results, self._h
  while true do
    local r = results[id]
    if r then
      results[id] = nil
      return r
    end
    local n, err = h:step(STEP_WAIT)
    if not n then
      h:cancel(id)
      return { id = id, ok = false, kind = "connect", message = "event loop failure: " .. tostring(err),
               attempts = 0 }
    end
    drain(self)
  end
end

---------------------------------------------------------------------------
-- Results

-- The most useful sentence in a failed answer's body: an OpenAI-style
-- error.message, or a short plain-text body; never a whole HTML page.
local function server_message(body)
  if not body or body == "" then return nil end
  local doc = decode(body)
  if type(doc) == "table" then
    local e = doc.error
    if type(e) == "table" and type(e.message) == "string" then return e.message end
    if type(e) == "string" then return e end
    if type(doc.message) == "string" then return doc.message end
    return nil
  end
  if find(body, "^%s*<") then return nil end
  return sub(body, 1, 200)
end

local function make_error(self, r)
  local msg = r.message
  local server = server_message(r.error_body)
  if server then msg = msg and (msg .. ": " .. server) or server end
  if not msg then msg = r.status and ("HTTP " .. r.status) or r.kind end
  msg = self._scrub(msg)
  if #msg > MAX_MESSAGE then msg = sub(msg, 1, MAX_MESSAGE) .. "..." end
  return errors.new {
    kind = r.kind, status = r.status, endpoint = r.endpoint and self._names[r.endpoint],
    attempts = r.attempts, message = msg, retry_after = r.retry_after,
  }
end

local function finish(self, r)
  local ev_err = self._event_error
  if ev_err then
    self._event_error = nil
    error(ev_err, 0)
  end
  if not r.ok then return nil, make_error(self, r) end
  local resp = decode(r.body)
  if type(resp) ~= "table" then
    return nil, errors.new { kind = "decode", status = r.status, endpoint = self._names[r.endpoint],
                             attempts = r.attempts, message = "the response body is not valid JSON" }
  end
  resp._llmrelay = { endpoint = self._names[r.endpoint], attempts = r.attempts, latency = r.latency }
  return resp
end

---------------------------------------------------------------------------
-- Requests

local OPT_KEYS = { timeout = true, deadline = true }

local function check_opts(opts, fn)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(fn .. ": opts must be a table (got " .. type(opts) .. ")", 3) end
  for k, v in pairs(opts) do
    if not OPT_KEYS[k] then error(fn .. ": unknown option '" .. tostring(k) .. "'", 3) end
    if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then
      error(fn .. ": opts." .. k .. " must be a positive number of seconds", 3)
    end
  end
  return opts
end

-- A rough token estimate for client-side tpm limits: 4 bytes a token for the
-- prompt, plus what the answer may take.
local function estimate_tokens(req, body_len)
  local out = req.max_completion_tokens or req.max_tokens
  return floor(body_len / 4) + (type(out) == "number" and out or 0)
end

local function submit(self, req, opts, fn)
  if type(req) ~= "table" then error(fn .. ": request must be a table (got " .. type(req) .. ")", 3) end
  if type(req.messages) ~= "table" then
    error(fn .. ": request.messages must be an array of messages (got " .. type(req.messages) .. ")", 3)
  end
  if req.model ~= nil and type(req.model) ~= "string" then
    error(fn .. ": request.model must be a string (got " .. type(req.model) .. ")", 3)
  end
  if req.stream then error(fn .. ": request.stream is set; use client:stream for streamed answers", 3) end
  opts = check_opts(opts, fn)
  local body, err = encode(req)
  if not body then error(fn .. ": request cannot be encoded as JSON: " .. tostring(err), 3) end
  local id, serr = self._h:submit(body, req.model, estimate_tokens(req, #body), opts.timeout, opts.deadline)
  if not id then return nil, serr end
  return id
end

-- client:chat_completion(req, opts) -> decoded response | nil, err
function Client:chat_completion(req, opts)
  check_open(self)
  local id, err = submit(self, req, opts, "chat_completion")
  if not id then
    return nil, errors.new { kind = "invalid_request", attempts = 0, message = tostring(err) }
  end
  return finish(self, await(self, id))
end

local CHAT_OPTS = { timeout = true, deadline = true, system = true }

-- client:chat(text_or_messages, opts) -> reply text, response | nil, err
-- opts: model, system, timeout, deadline, and any request field (temperature, max_tokens, ...).
function Client:chat(input, opts)
  check_open(self)
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
    if k == "timeout" or k == "deadline" then
      ropts = ropts or {}
      ropts[k] = v
    elseif not CHAT_OPTS[k] then
      req[k] = v
    end
  end
  local id, err = submit(self, req, ropts, "chat")
  if not id then
    return nil, errors.new { kind = "invalid_request", attempts = 0, message = tostring(err) }
  end
  local resp, rerr = finish(self, await(self, id))
  if not resp then return nil, rerr end
  local choice = type(resp.choices) == "table" and resp.choices[1]
  local text = type(choice) == "table" and type(choice.message) == "table" and choice.message.content
  if type(text) ~= "string" then
    return nil, errors.new { kind = "decode", status = 200, endpoint = resp._llmrelay.endpoint,
                             attempts = resp._llmrelay.attempts,
                             message = "the response has no choices[1].message.content text" }
  end
  return text, resp
end

---------------------------------------------------------------------------
-- Introspection

-- One table per endpoint, in config order. Never holds an api key.
function Client:status()
  check_open(self)
  local st, wall = self._h:status(), core.wall()
  for i, s in ipairs(st) do
    s.name = self._names[i]
    if s.throttled_for then s.throttled_until = wall + s.throttled_for end
  end
  return st
end

local STATE_VALUE = { closed = 0, half_open = 1, open = 2 }

local function label(name)
  return (name:gsub("[\\\"]", "\\%0"):gsub("\n", "\\n"))
end

-- Prometheus text exposition of status().
function Client:metrics()
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
  return table.concat(out)
end

-- Requests submitted and not yet delivered.
function Client:pending()
  check_open(self)
  return self._h:pending()
end

-- Frees the client's connections; any call after this is an error.
function Client:close()
  if self._h then
    self._h:close()
    self._h = nil
  end
end

Client.__close = Client.close
Client.__gc = Client.close

return _M
