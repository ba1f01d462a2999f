-- llmrelay.resty.engine: the OpenResty executor. It has the executor face
-- written down in lua/llmrelay/executor.lua (submit, wait, step,
-- stream_take, cancel, pending, status, on_events, events, close), so
-- lua/llmrelay/init.lua serves both executors alike; here every attempt is
-- sent by a light thread with cosockets, and waiting is a semaphore wait, so
-- no request ever blocks its nginx worker. Every decision (which endpoint,
-- retry or fail over, how long to wait) is asked of the relay (core.relay,
-- csrc/relay.c).
--
-- Each worker builds its own relay on first use (a client made in
-- init_by_lua is shared by the forked workers: the relay must not be).

local ngx = ngx
local core = require "llmrelay.core"
local http = require "llmrelay.resty.http"
local dialect = require "llmrelay.dialect"
local store_of = require("llmrelay.store").open
local semaphore = require "ngx.semaphore"
local set_model = core.set_model

local spawn, thread_wait = ngx.thread.spawn, ngx.thread.wait
local get_phase = ngx.get_phase
local min, huge = math.min, math.huge
local lower, match = string.lower, string.match
local pairs, ipairs, tostring, next = pairs, ipairs, tostring, next

local _M = {}
local Engine = {}
Engine.__index = Engine

-- What holds api keys (the config, the request headers) lives here, not in
-- the engine's table, so no dump of a client ever shows them.
local private = setmetatable({}, { __mode = "k" })

-- The longest a waiter sleeps before it looks at the relay again: requests
-- held back by another worker's state are not announced by any event here.
local MAX_SLEEP = 0.05
local MIN_SLEEP = 0.001
local POLL_BATCH = core.limits.poll_batch
local MAX_ERROR_BODY = core.limits.error_body

-- Phases where cosockets and ngx.sleep work.
local YIELDABLE = { rewrite = true, access = true, content = true, timer = true, ssl_cert = true,
                    ssl_session_fetch = true }

-- The core's monotonic clock, the one every time handed to the relay (and
-- to the shared store, which every worker of the host reads alike) is on.
local now = core.now

function _M.phase_error()
  local phase = get_phase()
  if YIELDABLE[phase] then return nil end
  return "llmrelay: cannot send requests in nginx's " .. phase .. " phase (cosockets are not available there);"
    .. " call it from rewrite_by_lua, access_by_lua, content_by_lua or an ngx.timer"
end

-- cfg: the normalized config.
function _M.new(cfg, fleet)
  local eps = {}
  for i, ep in ipairs(cfg.endpoints) do
    local target = http.parse_url(ep.url)
    local headers = { "Content-Type: application/json", "Accept: application/json, text/event-stream",
                      "User-Agent: " .. cfg.user_agent }
    if ep.api_key then headers[#headers + 1] = dialect.auth_header(ep.auth, ep.api_key) end
    for _, h in ipairs(ep.headers or {}) do headers[#headers + 1] = h[1] .. ": " .. h[2] end
    -- each api's URL (endpoints[i].url is chat's, .urls the others'); a path with {model} gets its
    -- head per model (prefix_for), the same URL the libcurl executor builds
    local by_api = {}
    for _, api in ipairs(dialect.APIS) do
      local url = ep.urls and ep.urls[api] or ep.url
      local t = http.parse_url(url)
      local templated = url:find("{model}", 1, true) ~= nil
      by_api[api] = { target = t, prefix = not templated and http.head_prefix(t, headers) or nil,
                      templated = templated, by_model = templated and {} or nil, n_models = 0 }
    end
    eps[i] = { by_api = by_api, headers = headers,
               pool = "llmrelay:" .. target.scheme .. ":" .. target.host .. ":" .. target.port
                 .. (cfg.tls.insecure and ":noverify" or "") }
  end
  if cfg.tls.ca_file then
    -- cosockets verify against lua_ssl_trusted_certificate (nginx.conf); the file cannot be set per socket
    ngx.log(ngx.INFO, "llmrelay: tls.ca_file is ignored under OpenResty; set lua_ssl_trusted_certificate")
  end
  local self = setmetatable({
    kind = "resty", waiters = {}, calls = {}, pid = nil, rl = nil,
    buf = {}, next_wake = huge, notify = nil, fleet = fleet,
  }, Engine)
  private[self] = { cfg = cfg, eps = eps }
  -- the shared store's backend is checked now (a client made in init_by_lua sees the dicts)
  local store, err = store_of(cfg)
  if not store and err then error("llmrelay.new: " .. err, 3) end
  return self
end

-- The worker's relay (and shared store), made on first use in each worker.
local function relay(self)
  local pid = ngx.worker.pid()
  if self.pid ~= pid then
    self.pid = pid
    self.calls = {}
    local cfg = private[self].cfg
    self.rl = core.relay(cfg, now())
    if self.notify then self.rl:enable_events(true) end
    local store, err = store_of(cfg)
    if err then error("llmrelay: " .. err) end
    self.store = store
  end
  return self.rl
end

local function post(w)
  if w and w.sema then w.sema:post(1) end
end

-- A finished request in the shape of the core client's take().
local function result_of(self, id, call)
  local r = self.rl:result(id)
  r.id = id
  if r.ok then
    r.body = call.resp or ""
  else
    r.error_body = call.err_body
  end
  if call.stream then
    r.stream = true
    if call.ev and #call.ev > 0 then
      r.events = call.ev
      call.ev = nil
    end
  end
  return r
end

-- Hands the relay's decisions out: attempts to send go to the light-thread
-- queue of the waiter that owns the request; finished requests to its inbox.
function Engine:drive()
  local rl = relay(self)
  local t = now()
  if self.store then self.store:import(rl, t) end
  if self.fleet and YIELDABLE[ngx.get_phase()] then
    -- the fleet's exchange (a cosocket: this coroutine yields; another one driving meanwhile skips it)
    self.fleet:tick(rl, t, rl:active() > 0)
    t = now()
  end
  local buf, calls, waiters = self.buf, self.calls, self.waiters
  while true do
    local n, wake = rl:poll(t, buf)
    self.next_wake = wake
    for k = 0, n - 1 do
      local id, ep, attempt, tmo = buf[4 * k + 1], buf[4 * k + 2], buf[4 * k + 3], buf[4 * k + 4]
      local call = calls[id]
      local w = waiters[id]
      if ep > 0 and not w then -- nobody waits for it any more
        calls[id] = nil
        rl:cancel(id, t)
      elseif ep > 0 then
        call.ep, call.attempt, call.tmo = ep, attempt, tmo
        local todo = w.todo
        if not todo then
          todo = {}
          w.todo = todo
        end
        todo[#todo + 1] = call
        post(w)
      else
        calls[id] = nil
        local r = result_of(self, id, call)
        if w then
          waiters[id] = nil
          local inbox = w.inbox
          inbox[#inbox + 1] = r
          post(w)
        end
      end
    end
    if n < POLL_BATCH then break end
  end
  if self.notify then self.notify() end
end

-- submit(body, model, tokens, timeout, deadline (seconds from now), priority, stream, waiter, ro) -> id | nil, err
-- The relay decides at once: the first attempt is queued for the waiter.
-- ro: the request's own headers and endpoints (llmrelay.reqopts), or nil.
function Engine:submit(body, model, tokens, timeout, deadline, priority, streamed, waiter, ro, api)
  local perr = _M.phase_error()
  if perr then return nil, perr end
  local rl = relay(self)
  local id, err = rl:submit(model, tokens, timeout, deadline and now() + deadline, priority, ro and ro.only, api)
  if not id then return nil, err end
  self.calls[id] = { id = id, body = body, model = model, tokens = tokens or 0, stream = streamed and true or false,
                     headers = ro and ro.headers, api = api or "chat" }
  self.waiters[id] = waiter
  self:drive()
  return id
end

-- The request head up to Content-Length for a call with its own header
-- lines: endpoint ep's lines less those the call sets, then the call's
-- (made once per endpoint the call tries).
local function call_prefix(ep, ap, i, call, wire)
  local key = call.api .. " " .. i .. (ap.templated and " " .. (wire or "") or "")
  local done = call.prefixes and call.prefixes[key]
  if done then return done end
  local own, lines = {}, {}
  for k = 1, #call.headers do own[lower(match(call.headers[k], "^[^:]+"))] = true end
  for k = 1, #ep.headers do
    local line = ep.headers[k]
    if not own[lower(match(line, "^[^:]+"))] then lines[#lines + 1] = line end
  end
  for k = 1, #call.headers do lines[#lines + 1] = call.headers[k] end
  local target = ap.target
  if ap.templated then target = { host_header = target.host_header, path = dialect.expand(target.path, wire or "") } end
  local prefix = http.head_prefix(target, lines)
  call.prefixes = call.prefixes or {}
  call.prefixes[key] = prefix
  return prefix
end

local function keep_error_text(call, s)
  if s and s ~= "" then call.err_body = #s > MAX_ERROR_BODY and s:sub(1, MAX_ERROR_BODY) or s end
end

local function stream_ok(status, ctype)
  return status >= 200 and status < 300 and ctype ~= nil and ctype:find("text/event-stream", 1, true) ~= nil
end

-- A stream attempt's answer head: streamed or not, and the x-request-id its
-- events go out with (stream_take), known before the first of them.
local function stream_head(call)
  return function(status, ctype, request_id)
    call.request_id = request_id
    return stream_ok(status, ctype)
  end
end

-- The request head of endpoint ep for this model, when its path has {model}:
-- kept for at most MAX_PREFIXES models, made afresh for any other.
local MAX_PREFIXES = 64
local function prefix_for(ap, headers, model)
  local m = model or ""
  local prefix = ap.by_model[m]
  if prefix then return prefix end
  local t = ap.target
  local target = { host_header = t.host_header, path = dialect.expand(t.path, m) }
  prefix = http.head_prefix(target, headers)
  if ap.n_models < MAX_PREFIXES then
    ap.by_model[m], ap.n_models = prefix, ap.n_models + 1
  end
  return prefix
end

-- One attempt, in a light thread of the request that owns the call.
local function attempt(self, call)
  local rl, id, i = self.rl, call.id, call.ep
  local p = private[self]
  local ep, cfg = p.eps[i], p.cfg
  local ap = ep.by_api[call.api] -- the api's URL on this endpoint
  local store, probe = self.store, false
  local t = now()
  if store then
    local ok, at = store:admit(rl, i, id, call.tokens, t, call.tmo)
    if not ok then
      rl:unsend(id, t, at)
      call.thread_done = true
      self:drive()
      return
    end
    probe = at -- admit returns the probe flag on success
    call.probe = probe
  end
  local decoder
  if call.stream then
    decoder = call.decoder
    if not decoder then
      decoder = core.stream_decoder(cfg.max_response_bytes, call.api)
      call.decoder = decoder
    else
      decoder:reset()
    end
    call.ev = {}
  end
  -- the endpoint's name for the request's model: in the body (rewritten in C) and a {model} path
  local wire, body = rl:wire_model(id) or call.model, call.body
  if wire and wire ~= call.model then
    local bodies = call.bodies or {}
    call.bodies = bodies
    body = bodies[wire] or set_model(call.body, wire)
    bodies[wire] = body
  end
  local fault, fault_text, fault_kind, fault_msg
  local res = http.post {
    target = ap.target,
    prefix = call.headers and call_prefix(ep, ap, i, call, wire) or ap.prefix or prefix_for(ap, ep.headers, wire),
    body = body,
    connect_timeout = cfg.timeout.connect, first_byte_timeout = cfg.timeout.first_byte,
    idle_timeout = cfg.timeout.idle, deadline = t + call.tmo, total_timeout = call.tmo,
    max_bytes = cfg.max_response_bytes,
    verify = not cfg.tls.insecure, pool = ep.pool,
    on_connected = function() rl:reached(i) end,
    stream_ok = call.stream and stream_head(call) or nil,
    on_data = function(piece)
      if call.cancelled then return "cancelled" end
      local evs, f, ft, fk, fm = decoder:feed(piece)
      local n = #evs
      if n > 0 then
        local q = call.ev
        for k = 1, n do q[#q + 1] = evs[k] end
        local w = self.waiters[id]
        if w then
          w.ready = true
          post(w)
        end
      end
      if f then
        fault, fault_text, fault_kind, fault_msg = f, ft, fk, fm
        return f
      end
    end,
  }
  t = now()
  if call.cancelled then
    -- the relay already forgot it (cancel); only the shared count is left
    if store and not call.thread_done then store:release(rl, i, "neutral", probe, 0, t) end
    call.thread_done = true
    return
  end
  local status = res.status or 0
  -- the caller already has events of this attempt: a failure can only end it
  local committed, partial = call.stream and (call.delivered or 0) > 0, false
  -- the outcome is shaped in the core (csrc/outcome.c), as the libcurl executor's is
  local kind, msg, body_ok, usage, keep, ctx_exceeded = core.attempt_outcome(status, res.err_kind, res.err,
    res.streamed and decoder or nil, res.body, cfg.max_response_bytes)
  keep_error_text(call, keep)
  if body_ok and not res.streamed then call.resp = res.body end
  if call.stream then partial = #call.ev > 0 end
  local verdict = rl:report(id, t, status, kind, body_ok, res.headers, msg, not res.sent, usage, committed, partial,
                            ctx_exceeded)
  if store then store:release(rl, i, verdict, probe, status, t) end
  call.thread_done = true
  self:drive()
  -- a retry starts afresh: what this attempt sent never reached the caller
  if self.calls[id] and call.ev then call.ev = {} end
end

-- Starts the light threads for the waiter's queued attempts; collects the
-- threads that ended (an unwaited light thread lives until its request ends).
local function run_todo(self, w)
  local threads = w.threads
  if threads then
    for th, call in pairs(threads) do
      if call.thread_done then
        threads[th] = nil
        pcall(thread_wait, th) -- a killed thread has nothing to collect
      end
    end
  end
  local todo = w.todo
  if not todo or #todo == 0 then return end
  w.todo = nil
  -- one plain attempt and nothing else of this waiter's in flight: send it
  -- from this coroutine, no light thread (a stream always gets one, so its
  -- events reach the caller while it is read)
  if #todo == 1 and not todo[1].stream and (not threads or next(threads) == nil) then
    local call = todo[1]
    call.thread_done = false
    attempt(self, call)
    return
  end
  if not threads then
    threads = {}
    w.threads = threads
  end
  for k = 1, #todo do
    local call = todo[k]
    call.thread_done = false
    local th, err = spawn(attempt, self, call)
    if th then
      threads[th] = call
      call.thread = th
    else
      local t = now()
      self.rl:report(call.id, t, 0, "connect", false, nil, "cannot start a light thread: " .. tostring(err), true)
      self:drive()
    end
  end
end

-- Waits until the waiter holds a result, or (streams) events, or `timeout`
-- seconds passed (nil: no limit). Yields to nginx meanwhile.
function Engine:wait(w, timeout)
  local perr = _M.phase_error()
  if perr then error(perr, 3) end
  local t_end = timeout and now() + timeout
  while true do
    run_todo(self, w)
    if #w.inbox > 0 or w.ready then return end
    local t = now()
    if t_end and t >= t_end then return end
    local sleep = min(self.next_wake - t, MAX_SLEEP)
    if t_end then sleep = min(sleep, t_end - t) end
    -- always yield: the light threads that send the attempts run only when
    -- this coroutine returns to nginx's event loop
    if sleep < MIN_SLEEP then sleep = MIN_SLEEP end
    do
      local sema = w.sema
      if not sema then -- made only when it must wait: a plain attempt sent inline needs none
        sema = semaphore.new(0)
        w.sema = sema
      end
      sema:wait(sleep)
    end
    if not w.todo and #w.inbox == 0 and not w.ready then self:drive() end
  end
end

-- The client's loop step: decide, sleep a little.
function Engine:step(timeout)
  self:drive()
  if timeout and timeout > 0 then ngx.sleep(min(timeout, MAX_SLEEP)) end
  return true
end

-- Hands over the stream's waiting events and the answering attempt's
-- x-request-id (or nil); from here on a failure is final.
function Engine:stream_take(id)
  local call = self.calls[id]
  if not call or not call.stream then return nil end
  local ev = call.ev or {}
  call.ev = {}
  call.delivered = (call.delivered or 0) + #ev
  return ev, call.request_id
end

function Engine:cancel(id)
  local w = self.waiters[id]
  self.waiters[id] = nil
  local call = self.calls[id]
  if not call then return false end
  self.calls[id] = nil
  call.cancelled = true
  local was, r = self.rl:cancel(id, now())
  if r and w then -- its waiter hears how it ended, as from the libcurl executor
    r.id = id
    w.inbox[#w.inbox + 1] = r
    post(w)
  end
  if was == "sending" and call.thread and not call.thread_done then
    -- only the coroutine that spawned it may kill it; elsewhere it stops at
    -- its next read, and releases its shared slot itself
    local ok, killed = pcall(ngx.thread.kill, call.thread)
    if ok and killed then
      call.thread_done = true
      if self.store and call.ep then self.store:release(self.rl, call.ep, "neutral", call.probe, 0, now()) end
    end
  end
  return true
end

function Engine:pending()
  if not self.rl then return 0 end
  return self.rl:active()
end

function Engine:status()
  local rl = relay(self)
  local t = now()
  if self.store then self.store:import(rl, t, true) end
  if self.fleet and YIELDABLE[ngx.get_phase()] then
    self.fleet:refresh(rl, t)
    t = now()
  end
  local st = rl:status(t)
  if self.store then
    for i, s in ipairs(st) do
      local v = self.store:view(i)
      s.shared_in_flight = v.in_flight
      s.shared_failures = v.fails
    end
  end
  return st
end

function Engine:on_events(fn)
  self.notify = fn
  if self.rl then self.rl:enable_events(fn ~= nil) end
end

function Engine:events()
  if not self.rl then return nil end
  return self.rl:events()
end

function Engine:close()
  if self.rl then self.rl:close() end
  self.rl, self.pid = nil, nil
end

return _M
