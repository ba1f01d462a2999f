-- llmrelay.executor: the one face of an executor, and the libcurl executor
-- behind it. lua/llmrelay/init.lua picks an executor once (this one, or
-- llmrelay.resty.engine inside nginx) and from then on never asks which one
-- it has.
--
-- What an executor does: it moves bytes and time. It sends the attempts the
-- core chooses, feeds what arrives (bytes, EOF, errors, timer expiries) to
-- the core, and sleeps or wakes when the core says. Its methods:
--   x:submit(body, model, tokens, timeout, deadline, priority, streamed, waiter, ro, api) -> id | nil, err
--       starts a request; its result goes to `waiter` ({ inbox = {} }): the
--       finished core result is appended to waiter.inbox, and waiter.ready is
--       set when a stream has events to take. Seconds; deadline from now.
--       ro (llmrelay.reqopts, or nil): ro.headers ("Name: value" lines) go
--       with every attempt in place of the endpoint's of the same name;
--       ro.only (endpoint numbers, one a byte) restricts where it may go.
--       api: "chat" (nil), "embeddings", "responses", "completions": the
--       path it goes to on each endpoint (the normalized endpoint's urls).
--   x:wait(waiter, timeout)  waits until waiter.inbox holds a result or
--       waiter.ready is set, or `timeout` seconds passed (nil: no limit);
--       yields to llmrelay.run or nginx meanwhile, never spins.
--   x:step(timeout) -> true | nil, err   advances transfers and timers once
--       (for a foreign event loop, and for llmrelay.run's scheduler).
--   x:stream_take(id) -> events, request_id | nil   a stream's events so far
--       (JSON strings) and the x-request-id of the attempt they came from
--       (nil: none); from the first taken, a failure can only end the stream.
--   x:cancel(id)       ends a request early. Its waiter then gets the core's
--       result of kind "cancelled" (both executors); a caller that cancels
--       to stop reading does not wait for it.
--   x:pending()        requests submitted and not yet delivered (0 once closed).
--   x:status()         one table per endpoint, in config order (the core's).
--   x:on_events(fn)    fn() is called when the core may have events for
--       on_event; x:events() takes them (nil: none).
--   x:close()          frees connections; safe twice.
-- What an executor never decides: retry, failover, classification of an
-- answer, caps, deadlines, error kinds and messages, defaults, token
-- estimates and usage. Those are the core's (csrc/relay.c, csrc/answer.c).

local core = require "llmrelay.core"
local sched = require "llmrelay.sched"

local setmetatable, tostring, error = setmetatable, tostring, error
local running = coroutine.running
local now = core.now

local _M = {}

-- How long one step of the loop may sleep: short enough that a blocking
-- caller notices its own result promptly, long enough not to spin.
local STEP_WAIT = 0.5

local Curl = {}
Curl.__index = Curl

-- The libcurl executor (llmrelay.core's client) for a normalized config.
-- fleet: an llmrelay.fleet when the config names a Redis (leases and shared state), or nil.
function _M.curl(cfg, fleet)
  return setmetatable({ h = core.client(cfg), waiters = {}, notify = nil, fleet = fleet }, Curl)
end

-- Moves finished requests from the core to their waiters, and tells
-- streams that events arrived.
local function drain(self)
  local h, waiters = self.h, self.waiters
  local ready = h:stream_ready()
  if ready then
    for i = 1, #ready do
      local w = waiters[ready[i]]
      if w then
        w.ready = true
        if w.co then sched.wake(w.co, w) end
      end
    end
  end
  while true do
    local r = h:take()
    if not r then break end
    local w = waiters[r.id]
    if w then
      waiters[r.id] = nil
      local inbox = w.inbox
      inbox[#inbox + 1] = r
      if w.co then sched.wake(w.co, w) end
    end
  end
  if self.notify then self.notify() end
end

function Curl:submit(body, model, tokens, timeout, deadline, priority, streamed, waiter, ro, api)
  local id, err = self.h:submit(body, model, tokens, timeout, deadline, priority, streamed, ro and ro.only,
                                ro and ro.headers, api)
  if not id then return nil, err end
  self.waiters[id] = waiter
  return id
end

function Curl:step(timeout)
  local fleet = self.fleet
  if fleet then
    -- the fleet's exchange first (bounded by its Redis timeout), and no sleep past the next one
    local h, t = self.h, now()
    local active = h:pending() > 0
    fleet:tick(h, t, active)
    local due = fleet:next_at(h, t, active) - now()
    if due < 0 then due = 0 end
    if due ~= math.huge and (not timeout or due < timeout) then timeout = due end
  end
  local n, err = self.h:step(timeout)
  if not n then return nil, err end
  -- what this step learnt (a pause asked, a breaker opened) goes to the fleet now, not at the next step
  if fleet then fleet:tick(self.h, now(), self.h:pending() > 0, true) end
  drain(self)
  return true
end

-- Yields inside llmrelay.run (the scheduler steps this executor while its
-- coroutines wait), drives the loop itself outside.
function Curl:wait(waiter, timeout)
  local inbox = waiter.inbox
  if #inbox > 0 or waiter.ready then return end
  if sched.current() then
    waiter.co = running()
    sched.attach(self)
    sched.block(waiter, timeout)
    waiter.co = nil
    return
  end
  local t_end = timeout and now() + timeout
  repeat
    local wait = STEP_WAIT
    if t_end then
      wait = t_end - now()
      if wait > STEP_WAIT then wait = STEP_WAIT end
      if wait < 0 then wait = 0 end
    end
    local ok, err = self:step(wait)
    if not ok then error("llmrelay: event loop failure: " .. tostring(err), 0) end
  until #inbox > 0 or waiter.ready or (t_end and now() >= t_end)
end

function Curl:stream_take(id)
  return self.h:stream_take(id)
end

-- The core queues the cancelled request's result (kind "cancelled"): it
-- still reaches the waiter (a batch records it).
function Curl:cancel(id)
  return self.h:cancel(id)
end

function Curl:pending()
  local h = self.h
  return h and h:pending() or 0
end

function Curl:status()
  if self.fleet then self.fleet:refresh(self.h, now()) end
  return self.h:status()
end

function Curl:on_events(fn)
  self.notify = fn
  self.h:enable_events(fn ~= nil)
end

function Curl:events()
  return self.h:events()
end

function Curl:close()
  if self.h then
    self.h:close()
    self.h = nil
  end
end

return _M
