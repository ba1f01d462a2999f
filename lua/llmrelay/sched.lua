-- A tiny coroutine scheduler for plain Lua: llmrelay.run, spawn, sleep.
-- Inside it, a request yields instead of blocking, so thousands of requests
-- from thousands of coroutines share one libcurl multi handle on one thread.
-- When no coroutine can run, the scheduler drives the executors' transfers
-- (executor:step, see lua/llmrelay/executor.lua) or sleeps until the next timer.

local core = require "llmrelay.core"

local coroutine, setmetatable, error, select, tostring, pairs, pcall, type =
  coroutine, setmetatable, error, select, tostring, pairs, pcall, type
local unpack = table.unpack or unpack
local traceback = debug.traceback
local now, sleep_thread = core.now, core.sleep

local _M = {}

-- How long one step of the executors may wait when nothing else is due; the
-- step returns as soon as a transfer finishes.
local MAX_PUMP = 0.5
-- With several active executors each is stepped in turn, briefly.
local SHARED_PUMP = 0.002

local WAIT = {} -- what a coroutine yields to say "wake me through wake()"

local current -- the scheduler of the running llmrelay.run, if any

local Sched = {}
Sched.__index = Sched

---------------------------------------------------------------------------
-- timers: a binary min-heap of { t, co, token }

local function heap_push(h, e)
  local i = #h + 1
  h[i] = e
  while i > 1 do
    local p = (i - i % 2) / 2
    if h[p].t <= e.t then break end
    h[i], h[p] = h[p], e
    i = p
  end
end

local function heap_pop(h)
  local top, n = h[1], #h
  local last = h[n]
  h[n] = nil
  n = n - 1
  if n > 0 then
    local i = 1
    h[1] = last
    while true do
      local l, r, m = 2 * i, 2 * i + 1, i
      if l <= n and h[l].t < h[m].t then m = l end
      if r <= n and h[r].t < h[m].t then m = r end
      if m == i then break end
      h[i], h[m] = h[m], h[i]
      i = m
    end
  end
  return top
end

---------------------------------------------------------------------------

local function new_sched()
  return setmetatable({
    queue = {}, qhead = 1, qtail = 0, -- runnable coroutines, FIFO
    queued = {},                       -- [co] = true while in the queue
    args = {},                         -- [co] = arguments of its first resume
    live = 0,                          -- coroutines started and not finished
    owned = {},                        -- [co] = true for this scheduler's coroutines
    waiting = {},                      -- [co] = the token it waits on
    timers = {},
    executors = setmetatable({}, { __mode = "k" }),
    errors = {},
  }, Sched)
end

local function enqueue(s, co)
  if s.queued[co] then return end
  s.queued[co] = true
  s.qtail = s.qtail + 1
  s.queue[s.qtail] = co
end

local function dequeue(s)
  if s.qhead > s.qtail then return nil end
  local co = s.queue[s.qhead]
  s.queue[s.qhead] = nil
  s.qhead = s.qhead + 1
  s.queued[co] = nil
  return co
end

-- The scheduler the running coroutine belongs to, or nil (main thread, or a
-- coroutine of the user's own making: there a request blocks instead).
function _M.current()
  local s = current
  if not s then return nil end
  local co = coroutine.running()
  if co and s.owned[co] then return s end
  return nil
end

local function pack(...)
  return { n = select("#", ...), ... }
end

local function spawn_in(s, fn, ...)
  local co = coroutine.create(fn)
  s.owned[co] = true
  s.live = s.live + 1
  s.args[co] = pack(...)
  enqueue(s, co)
  return co
end

-- llmrelay.spawn(fn, ...): starts fn(...) as a coroutine of the running scheduler.
function _M.spawn(fn, ...)
  if type(fn) ~= "function" then error("llmrelay.spawn: expected a function (got " .. type(fn) .. ")", 2) end
  if not current then error("llmrelay.spawn must be called inside llmrelay.run", 2) end
  return spawn_in(current, fn, ...)
end

-- Suspends the running scheduler coroutine until wake(co, token) or until
-- `timeout` seconds pass. Outside a scheduler this is an error: callers check
-- _M.current() first.
function _M.block(token, timeout)
  local s = _M.current()
  if not s then error("llmrelay: block outside a scheduler coroutine", 2) end
  local co = coroutine.running()
  s.waiting[co] = token
  if timeout then heap_push(s.timers, { t = now() + timeout, co = co, token = token }) end
  coroutine.yield(WAIT)
  s.waiting[co] = nil
end

-- Makes co runnable if it still waits on `token` (a stale wake-up is ignored).
function _M.wake(co, token)
  local s = current
  if s and s.waiting[co] == token then enqueue(s, co) end
end

-- Registers an executor whose transfers the scheduler must drive while its
-- coroutines wait (it has step(timeout) and pending()).
function _M.attach(x)
  if current then current.executors[x] = true end
end

-- llmrelay.sleep(s): yields inside a scheduler, blocks the thread outside.
function _M.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds then
    error("llmrelay.sleep: expected a number of seconds", 2)
  end
  if _M.current() then
    _M.block({}, seconds > 0 and seconds or 0)
  elseif seconds > 0 then
    local t_end = now() + seconds
    repeat sleep_thread(t_end - now()) until now() >= t_end
  end
end

local function resume(s, co)
  local a = s.args[co]
  local res
  if a then
    s.args[co] = nil
    res = pack(coroutine.resume(co, unpack(a, 1, a.n)))
  else
    res = pack(coroutine.resume(co))
  end
  if coroutine.status(co) == "dead" then
    s.live = s.live - 1
    s.owned[co] = nil
    s.waiting[co] = nil
    if not res[1] then
      s.errors[#s.errors + 1] = traceback(co, tostring(res[2]))
    elseif co == s.main then
      s.results = res
    end
  elseif res[2] ~= WAIT then
    enqueue(s, co) -- a plain coroutine.yield(): let the others run, then go on
  end
end

-- Waits for whatever comes first: a due timer or a finished transfer.
local function wait_for_events(s)
  local t = now()
  local timers = s.timers
  while timers[1] and timers[1].t <= t do
    local e = heap_pop(timers)
    _M.wake(e.co, e.token)
  end
  if s.qhead <= s.qtail then return end
  local wait = timers[1] and (timers[1].t - t) or MAX_PUMP
  if wait > MAX_PUMP then wait = MAX_PUMP end
  local active, n = nil, 0
  for x in pairs(s.executors) do
    if x:pending() > 0 then
      n = n + 1
      active = x
    else
      s.executors[x] = nil
    end
  end
  if n == 1 then
    active:step(wait)
  elseif n > 1 then
    for x in pairs(s.executors) do x:step(wait < SHARED_PUMP and wait or SHARED_PUMP) end
  elseif timers[1] then
    sleep_thread(wait)
  else
    error(("llmrelay.run: %d coroutine(s) wait with nothing to wake them"):format(s.live), 0)
  end
end

-- llmrelay.run(fn, ...): runs fn(...) in a scheduler and returns its results
-- once fn and every coroutine spawned inside have finished. Errors raised by
-- any of them are raised here, after all have finished.
function _M.run(fn, ...)
  if type(fn) ~= "function" then error("llmrelay.run: expected a function (got " .. type(fn) .. ")", 2) end
  if current then error("llmrelay.run: already inside llmrelay.run (use llmrelay.spawn)", 2) end
  local s = new_sched()
  current = s
  s.main = spawn_in(s, fn, ...)
  local ok, err = pcall(function()
    while s.live > 0 do
      local co = dequeue(s)
      if co then
        resume(s, co)
      else
        wait_for_events(s)
      end
    end
  end)
  current = nil
  if not ok then error(err, 0) end
  if #s.errors > 0 then
    local msg = s.errors[1]
    if #s.errors > 1 then msg = ("%s\n(and %d more coroutine error(s))"):format(msg, #s.errors - 1) end
    error("llmrelay.run: a coroutine failed: " .. msg, 0)
  end
  local r = s.results
  if r then return unpack(r, 2, r.n) end
end

return _M
