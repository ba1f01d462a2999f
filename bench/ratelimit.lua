-- bench/ratelimit.lua: using a rate-limited pool to its capacity (issues 5 and 13).
--   lua5.4 bench/ratelimit.lua headers|retry_after|bare|schedule|single|quiet
-- The pool rows (issue 13's Done-when): 3 mocks, --rps 100 --burst 25, N=3000 requests at
-- C=50 (RL_N, RL_C), library defaults except retry.max_attempts = 10. Capacity is
-- 300 req/s x the wall time + the buckets' initial 75; fraction = ok / capacity.
-- Each row has a bar (a regression fails the run) and issue 13's goal (printed):
--   headers:     429s and 200s carry x-ratelimit-*, Retry-After and retry-after-ms.
--                Bar: N/N ok, fraction >= 0.95, 429s <= 2 %; goal >= 0.98, <= 0.5 %.
--   retry_after: 429s carry only "Retry-After: 1".  Bar: N/N ok, >= 0.85, <= 3 %; goal >= 0.95, <= 2 %.
--   bare:        429s carry no hint at all.        Bar and goal: N/N ok, >= 0.90, <= 3 %.
-- schedule:    the bare pool, but each mock's rate goes 100 -> 50 -> 100 req/s
--              (--rps-schedule 0:100,8:50,16:100, clocked from its first request),
--              N=6000 (RL_SCHED_N). Prints each phase's throughput against its capacity,
--              its share of 429s, and how long after each change the pool's rate settled:
--              the first moment from which the rate over the next second is within 10 % of
--              the new capacity and stays so on average until the phase ends.
--              Bars: N/N ok, each change settled within 3 s. RL_TRACE=1 also prints the
--              pool's rate every half second.
-- single:      one mock --rps 20 --burst 5, 100 requests, C=20. Bar: all ok within 1.2 x ideal.
-- quiet:       one mock --rps 50 --burst 5, 100 ms latency, only "Retry-After: 1" on 429,
--              N=500, C=50: the adaptive in-flight limit's case. Bar: 500/500 ok; figures reported.
package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"
local now = require("llmrelay.core").now

local scenario = arg[1] or "headers"

local function requests(n)
  local t = {}
  for i = 1, n do t[i] = { model = "m", messages = { { role = "user", content = "q" .. i } } } end
  return t
end

-- runs the batch; on_ok(t) is called with now() as each request succeeds
local function run(mocks, n, c, retry, on_ok)
  local eps = {}
  for i, m in ipairs(mocks) do eps[i] = { base_url = m.url, name = "e" .. i } end
  local client = llmrelay.new { endpoints = eps, concurrency = c, retry = retry }
  local t0 = now()
  local _, summary = client:batch(requests(n), {
    concurrency = c,
    on_result = on_ok and function(_, res) if res.ok then on_ok(now()) end end,
  })
  local dt = now() - t0
  local attempts, r429 = 0, 0
  for _, m in ipairs(mocks) do
    local st = m:stats()
    attempts = attempts + st.requests
    r429 = r429 + (st.status["429"] or 0)
  end
  return summary, dt, attempts, r429, client
end

local function pool(schedule)
  local rl = { headers = "full", retry_after = "retry-after" }
  local mocks = {}
  for i = 1, 3 do
    mocks[i] = mock.start { name = "rl" .. i, burst = 25, rl_headers = rl[scenario] or "none",
                            rps = not schedule and 100 or nil, rps_schedule = schedule }
  end
  return mocks
end

-- { bar fraction, bar 429 %, goal fraction, goal 429 % }
local POOL_BARS = { headers = { 0.95, 2, 0.98, 0.5 }, retry_after = { 0.85, 3, 0.95, 2 },
                    bare = { 0.90, 3, 0.90, 3 } }

-- the pool's rate over [a, b) from the sorted success times
local function count(times, a, b)
  local n = 0
  for _, t in ipairs(times) do
    if t >= a and t < b then n = n + 1 end
  end
  return n
end

-- seconds after `from` at which the rate settled near cap (nil: never before `to`)
local function settle(times, from, to, cap)
  local function near(r) return math.abs(r / cap - 1) <= 0.10 end
  for w = from, to - 1, 0.25 do
    if near(count(times, w, w + 1)) and near(count(times, w, to) / (to - w)) then return w - from end
  end
end

local pass
if POOL_BARS[scenario] then
  local N, C = tonumber(os.getenv("RL_N") or 3000), tonumber(os.getenv("RL_C") or 50)
  local summary, dt, attempts, r429 = run(pool(), N, C, { max_attempts = 10 })
  local capacity = 300 * dt + 75
  local frac, share = summary.ok / capacity, 100 * r429 / attempts
  local bar = POOL_BARS[scenario]
  print(("ratelimit_%s: %d/%d ok in %.2f s: %.1f req/s = %.2f of capacity (300 req/s x %.2f s + 75);"
    .. " 429s %d of %d attempts (%.2f %%); bar: N/N ok, >= %.2f, <= %.1f %%; goal >= %.2f, <= %.1f %%: %s")
    :format(scenario, summary.ok, N, dt, summary.ok / dt, frac, dt, r429, attempts, share, bar[1], bar[2],
            bar[3], bar[4], (summary.ok == N and frac >= bar[3] and share <= bar[4]) and "met" or "below goal"))
  pass = summary.ok == N and frac >= bar[1] and share <= bar[2]
elseif scenario == "schedule" then
  local N, C = tonumber(os.getenv("RL_SCHED_N") or 6000), tonumber(os.getenv("RL_C") or 50)
  local changes, caps = { 8, 16 }, { 300, 150, 300 }
  local mocks = pool("0:100,8:50,16:100")
  local times = {}
  local summary, dt, attempts, r429 = run(mocks, N, C, { max_attempts = 10 },
    function(t) times[#times + 1] = t end)
  -- the mocks' clocks start at their first request: read where they are now
  local origin, limited, offered = 0, { 0, 0, 0 }, { 0, 0, 0 }
  for _, m in ipairs(mocks) do
    local before = now()
    local st = m:stats()
    origin = origin + ((before + now()) / 2 - st.rps_clock) / #mocks
    for k, p in ipairs(st.rps_phases) do
      limited[k] = limited[k] + p.limited
      offered[k] = offered[k] + p.passed + p.limited
    end
  end
  table.sort(times)
  local last = times[#times] or origin
  local bounds = { origin, origin + changes[1], origin + changes[2], last }
  local settled_ok = true
  print(("ratelimit_schedule: %d/%d ok in %.2f s; 429s %d of %d attempts (%.2f %%)")
    :format(summary.ok, N, dt, r429, attempts, 100 * r429 / attempts))
  for k = 1, 3 do
    local a, b = bounds[k], bounds[k + 1]
    local rate = b > a and count(times, a, b) / (b - a) or 0
    local line = ("  phase %d (%3d req/s from %2d s, %.1f s long): %.1f req/s = %.2f of capacity; 429s %.2f %%")
      :format(k, caps[k], k == 1 and 0 or changes[k - 1], b - a, rate, rate / caps[k],
              offered[k] > 0 and 100 * limited[k] / offered[k] or 0)
    if k > 1 then
      -- the last phase ends when the batch drains: leave its last half second out
      local s = settle(times, a, k == 3 and b - 0.5 or b, caps[k])
      line = line .. (s and ("; settled %.2f s after the change"):format(s) or "; never settled")
      settled_ok = settled_ok and s ~= nil and s <= 3
    end
    print(line)
  end
  if os.getenv("RL_TRACE") then -- the pool's rate every half second, from the mocks' clock
    local t, row = bounds[1], {}
    while t < last do
      row[#row + 1] = ("%.1f:%d"):format(t - origin, 2 * count(times, t, t + 0.5))
      t = t + 0.5
    end
    print("  req/s by half second: " .. table.concat(row, " "))
  end
  print("  bars: N/N ok, each change settled within 3 s")
  pass = summary.ok == N and settled_ok
elseif scenario == "single" then
  local m = mock.start { name = "single", rps = 20, burst = 5 }
  local summary, dt, _, r429 = run({ m }, 100, 20)
  local ideal = (100 - 5) / 20
  print(("ratelimit_single: %d/100 ok in %.2f s = %.2f x the ideal %.2f s ((N - burst) / rps); 429s %d")
    :format(summary.ok, dt, dt / ideal, ideal, r429))
  pass = summary.ok == 100 and dt <= 1.2 * ideal
elseif scenario == "quiet" then
  local m = mock.start { name = "quiet", rps = 50, burst = 5, rl_headers = "retry-after", latency_ms = 100 }
  local summary, dt, attempts, r429 = run({ m }, 500, 50)
  print(("ratelimit_quiet: %d/500 ok in %.2f s: %.1f req/s = %.2f x the server's 50 req/s; 429s %d of %d attempts")
    :format(summary.ok, dt, summary.ok / dt, summary.ok / dt / 50, r429, attempts))
  pass = summary.ok == 500
else
  io.stderr:write("usage: bench/ratelimit.lua headers|retry_after|bare|schedule|single|quiet\n")
  os.exit(2)
end
mock.stop_all()
print(("ratelimit_%s: %s"):format(scenario, pass and "PASS" or "FAIL"))
os.exit(pass and 0 or 1)
