-- bench/percall.lua - client CPU cost of one chat_completion call, measured
-- against a raw libcurl-multi reference (build/bench-ref-curl) in the same run.
--
--   lua5.4 bench/percall.lua [N]        (N default 1000; run via bench/run)
--
-- Starts one healthy mock (spec/support/mock.lua), warms llmrelay up with 50
-- calls, then times N sequential chat_completion calls: client CPU with
-- os.clock() (CPU of this Lua process only; the mock is another process, so
-- the server's time is not counted) and wall time.  Then runs the reference
-- binary for the same N against the same mock and prints both side by side.
--
-- Bars (exit 1 when one fails):
--   every call ok, the mock sees <= 2 connections for llmrelay's warm-up +
--   loop, and llmrelay CPU/call - reference CPU/call < 100 µs.
-- Environment: BENCH_REF_CURL (reference binary, default build/bench-ref-curl),
-- MOCK_LLM_BIN (see spec/support/mock.lua).

package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path

local mock = require "spec.support.mock"
local llmrelay = require "llmrelay"
local cjson = require "cjson"

local N = math.tointeger(tonumber(arg[1] or "1000"))
if not N or N < 1 then
  io.stderr:write("usage: lua5.4 bench/percall.lua [N >= 1]\n")
  os.exit(2)
end
local WARMUP = 50
local BAR_OVERHEAD_US = 100
local BAR_CONNECTIONS = 2
local REF_BIN = os.getenv("BENCH_REF_CURL") or "build/bench-ref-curl"

-- Wall clock: the core's monotonic clock (seconds, sub-µs resolution).
local wall = require("llmrelay.core").now

local failures = {}
local function check(cond, what)
  if not cond then failures[#failures + 1] = what end
  return cond
end

local m = mock.start { name = "bench" }
local ok_run, err_run = pcall(function()
  local client = llmrelay.new { endpoints = { { base_url = m.url, api_key = "bench-key" } } }
  local req = { model = "m", messages = { { role = "user", content = "hi" } } }

  for i = 1, WARMUP do
    local resp, err = client:chat_completion(req)
    if not resp then error("warm-up call " .. i .. " failed: " .. tostring(err)) end
  end

  local ok, first_err = 0, nil
  local c0, w0 = os.clock(), wall()
  for _ = 1, N do
    local resp, err = client:chat_completion(req)
    if resp then ok = ok + 1 elseif not first_err then first_err = err end
  end
  local c1, w1 = os.clock(), wall()
  client:close()

  local st = m:stats(true)     -- llmrelay's counters, then zeroed for the reference
  check(ok == N, string.format("llmrelay: %d/%d calls ok (first error: %s)", ok, N, tostring(first_err)))
  check(st.requests == N + WARMUP,
        string.format("mock saw %s chat requests, expected %d", tostring(st.requests), N + WARMUP))

  local p = assert(io.popen(string.format("%s %s %d", REF_BIN, m.url .. "/chat/completions", N)))
  local out = p:read("a")
  p:close()
  local okj, ref = pcall(cjson.decode, (out or ""):match("{.*}") or "")
  if not okj or type(ref) ~= "table" then
    error("reference " .. REF_BIN .. " gave no result (" .. tostring(out) .. "); build it with: "
          .. "cc -std=gnu99 -O2 -Wall -Wextra bench/ref_curl.c -o build/bench-ref-curl -lcurl")
  end
  local st_ref = m:stats(true)
  check(ref.ok == N, string.format("reference: %d/%d calls ok", ref.ok, N))

  local lr = { ok = ok, wall = w1 - w0, cpu = c1 - c0 }
  local rf = { ok = ref.ok, wall = ref.wall_s, cpu = ref.cpu_user_s + ref.cpu_sys_s }
  local function row(name, r, conns)
    print(string.format("%-12s %6d %9.1f %10.0f %14.1f %6d", name, r.ok, r.wall * 1e3, N / r.wall,
                        r.cpu / N * 1e6, conns))
  end
  print(string.format("percall: %d sequential chat_completion calls against one healthy mock"
                      .. " (after %d warm-up calls)", N, WARMUP))
  print(string.format("%-12s %6s %9s %10s %14s %6s", "client", "ok", "wall ms", "calls/s",
                      "CPU µs/call", "conns"))
  row("llmrelay", lr, st.connections)
  row("raw libcurl", rf, st_ref.connections)
  print(string.format("  (reference CPU split: user %.1f µs, sys %.1f µs per call)",
                      ref.cpu_user_s / N * 1e6, ref.cpu_sys_s / N * 1e6))

  local lr_us, rf_us = lr.cpu / N * 1e6, rf.cpu / N * 1e6
  local overhead = lr_us - rf_us
  print(string.format("overhead: llmrelay CPU/call - reference CPU/call = %.1f µs (bar < %d µs)",
                      overhead, BAR_OVERHEAD_US))
  print(string.format("ratio (llmrelay/reference CPU per call): %.2f", rf_us > 0 and lr_us / rf_us or 0 / 0))
  print(string.format("connections seen by the mock: %d (bar <= %d)", st.connections, BAR_CONNECTIONS))
  check(st.connections <= BAR_CONNECTIONS,
        string.format("llmrelay used %d connections (bar <= %d)", st.connections, BAR_CONNECTIONS))
  check(overhead < BAR_OVERHEAD_US,
        string.format("overhead %.1f µs/call (bar < %d µs)", overhead, BAR_OVERHEAD_US))
end)
mock.stop_all()

if not ok_run then
  io.stderr:write("percall: ", tostring(err_run), "\n")
  os.exit(1)
end
if #failures > 0 then
  for _, f in ipairs(failures) do io.stderr:write("percall: FAIL: ", f, "\n") end
  os.exit(1)
end
print("percall: PASS")
