-- The README demo: a run of chat completions against three local mock
-- endpoints with injected faults — one refuses connections, one fails 30%
-- of requests with 500 and rate-limits with 429, one is healthy but slower —
-- with a progress line and a status report at the end.
--   make demo            (N=500 by default; N=2000 make demo for more)
package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"
local now = require("llmrelay.core").now

local N = tonumber(os.getenv("N") or arg[1] or 500)
local tty = os.execute("test -t 2") == true or os.execute("test -t 2") == 0

local flaky = mock.start { name = "flaky", fail_rate = 0.3, rps = 200, burst = 20, seed = 3 }
local healthy = mock.start { name = "healthy", latency_ms = 2 }
local dead_url = "http://127.0.0.1:" .. mock.free_port() .. "/v1"

local counts = { retry = 0, failover = 0, breaker = 0, throttle = 0 }
local client = llmrelay.new {
  endpoints = {
    { name = "dead", base_url = dead_url, api_key = "sk-demo-dead" },
    { name = "flaky", base_url = flaky.url, api_key = "sk-demo-flaky" },
    { name = "healthy", base_url = healthy.url, api_key = "sk-demo-healthy" },
  },
  breaker = { failure_threshold = 3, cooldown = 2 },
  on_event = function(ev) counts[ev.type] = counts[ev.type] + 1 end,
}

local ok, failed, attempts = 0, 0, 0
local t0 = now()
local function progress(final)
  local dt = now() - t0
  local line = ("%5d/%d done  ok %d  failed %d  retries %d  %6.0f req/s"):format(ok + failed, N, ok, failed,
    attempts - (ok + failed), (ok + failed) / math.max(dt, 1e-9))
  io.stderr:write(tty and "\r" or "", line, (final or not tty) and "\n" or "")
end

for i = 1, N do
  local resp, err = client:chat_completion {
    model = "mock-model", messages = { { role = "user", content = "request " .. i } } }
  if resp then
    ok = ok + 1
    attempts = attempts + resp._llmrelay.attempts
  else
    failed = failed + 1
    attempts = attempts + (err.attempts or 0)
    io.stderr:write("\n", tostring(err), "\n")
  end
  if i < N and (tty and i % 10 == 0 or (ok + failed) % 100 == 0) then progress(false) end
end
progress(true)
local elapsed = now() - t0

print(("\n%d requests: %d ok, %d failed, %d attempts in %.2f s (%.0f req/s)"):format(
  N, ok, failed, attempts, elapsed, N / elapsed))
print(("events: %d failovers, %d retries after a wait, %d throttles, %d breaker changes\n"):format(
  counts.failover, counts.retry, counts.throttle, counts.breaker))
print(("%-8s %-10s %8s %9s %9s %9s %12s %8s"):format("endpoint", "state", "requests", "successes",
  "failures", "throttles", "latency_ms", "success"))
for _, s in ipairs(client:status()) do
  print(("%-8s %-10s %8d %9d %9d %9d %12s %7.0f%%"):format(s.name, s.state, s.requests, s.successes,
    s.failures, s.throttles, s.latency_ewma and ("%.2f"):format(s.latency_ewma * 1000) or "-",
    s.success_rate * 100))
end
local fs, hs = flaky:stats(), healthy:stats()
print(("\nwhat the servers saw: flaky %d requests (%d x 500, %d x 429) on %d connection(s); " ..
       "healthy %d requests on %d connection(s)"):format(fs.requests, fs.status["500"] or 0,
  fs.status["429"] or 0, fs.connections, hs.requests, hs.connections))
client:close()
mock.stop_all()
os.exit(failed == 0 and 0 or 1)
