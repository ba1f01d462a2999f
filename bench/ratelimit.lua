-- bench/ratelimit.lua: using a rate-limited pool to its capacity.
--   lua5.4 bench/ratelimit.lua headers|retry_after|single|quiet
-- headers:     3 mocks, --rps 100 --burst 25 with full rate-limit headers, N=3000, C=50.
--              Bars: 3000/3000 ok, throughput >= 0.95 x 300 req/s, 429s <= 2 % of attempts.
-- retry_after: the same pool, but the mocks send nothing but "Retry-After: 1" on 429.
--              Bar (issue 5): 3000/3000 ok and throughput >= 0.85 x capacity.
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

local function run(mocks, n, c)
  local eps = {}
  for i, m in ipairs(mocks) do eps[i] = { base_url = m.url, name = "e" .. i } end
  local client = llmrelay.new { endpoints = eps, concurrency = c }
  local t0 = now()
  local _, summary = client:batch(requests(n), { concurrency = c })
  local dt = now() - t0
  local attempts, r429 = 0, 0
  for _, m in ipairs(mocks) do
    local st = m:stats()
    attempts = attempts + st.requests
    r429 = r429 + (st.status["429"] or 0)
  end
  return summary, dt, attempts, r429
end

local pass
if scenario == "headers" or scenario == "retry_after" then
  local N, C = tonumber(os.getenv("RL_N") or 3000), tonumber(os.getenv("RL_C") or 50)
  local mocks = {}
  for i = 1, 3 do
    mocks[i] = mock.start { name = "rl" .. i, rps = 100, burst = 25,
                            rl_headers = scenario == "headers" and "full" or "retry-after" }
  end
  local summary, dt, attempts, r429 = run(mocks, N, C)
  local rate = summary.ok / dt
  local share = 100 * r429 / attempts
  print(("ratelimit_%s: %d/%d ok in %.2f s: %.1f req/s = %.2f x the pool's 300 req/s; 429s %d of %d attempts (%.1f %%)")
    :format(scenario, summary.ok, N, dt, rate, rate / 300, r429, attempts, share))
  if scenario == "headers" then
    pass = summary.ok == N and rate >= 0.95 * 300 and share <= 2
  else
    pass = summary.ok == N and rate >= 0.85 * 300
  end
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
  io.stderr:write("usage: bench/ratelimit.lua headers|retry_after|single|quiet\n")
  os.exit(2)
end
mock.stop_all()
print(("ratelimit_%s: %s"):format(scenario, pass and "PASS" or "FAIL"))
os.exit(pass and 0 or 1)
