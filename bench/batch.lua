-- bench/batch.lua - client:batch throughput against a raw libcurl-multi
-- reference (build/bench-ref-curl URL[,URL...] N C) in the same run.
--
--   lua5.4 bench/batch.lua clean|faulty|latency     (run via bench/run)
--
-- Every scenario starts its own mocks (spec/support/mock.lua) and stops them
-- at the end.  Client CPU is os.clock() around the batch call (CPU of this
-- Lua process only: encoding requests, libcurl, decoding answers; the mocks
-- are other processes) and, for the reference, getrusage user+sys around
-- its request loop.  "mock CPU" is the mocks' own CPU over the same run
-- (/proc/PID/stat), printed to show whether the server was the bottleneck.
--
-- clean    N=5000 C=50 over CLEAN_ENDPOINTS (default 3) healthy mocks.
--          REPEAT rounds (default 5) of reference then llmrelay, each with
--          a fresh client (new connections, like the reference process).
--          Bar: median over rounds of llmrelay ok/s / reference ok/s >= 0.5
--          (goal 0.8), and every call ok on both sides.
-- faulty   N=2000 C=50 over { refused port, fail_rate 0.5, healthy }.
--          Bar: N/N ok.  The reference (no retries, round-robin) is printed
--          for scale: its ok count and calls/s.
-- latency  N=1000 C=100 against one mock with latency_ms=200.
--          Bar: every call ok and llmrelay wall / ideal (N/C x latency)
--          <= 1.3; the reference's ratio is printed beside it.
--
-- Environment (quick runs: BATCH_N=500 ./bench/run clean):
--   BATCH_N, BATCH_C            N and C of every scenario
--   CLEAN_N, CLEAN_C, FAULTY_N, FAULTY_C, LATENCY_N, LATENCY_C  (win over BATCH_*)
--   CLEAN_ENDPOINTS (3), REPEAT (5), LATENCY_MS (200)
--   BENCH_REF_CURL (reference binary, default build/bench-ref-curl),
--   MOCK_LLM_BIN (see spec/support/mock.lua).

package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path

local mock = require "spec.support.mock"
local llmrelay = require "llmrelay"
local cjson = require "cjson"
local wall = require("llmrelay.core").now

local SCENARIOS = { clean = true, faulty = true, latency = true }
local scenario = arg[1]
if not SCENARIOS[scenario] then
  io.stderr:write("usage: lua5.4 bench/batch.lua clean|faulty|latency\n")
  os.exit(2)
end
local NAME = "batch_" .. scenario
local REF_BIN = os.getenv("BENCH_REF_CURL") or "build/bench-ref-curl"
local BAR_CLEAN, GOAL_CLEAN, BAR_LATENCY = 0.5, 0.8, 1.3

local function env_int(names, default, min)
  for _, n in ipairs(names) do
    local v = os.getenv(n)
    if v and v ~= "" then
      local x = math.tointeger(tonumber(v))
      if not x or x < min then
        io.stderr:write(NAME, ": ", n, " must be an integer >= ", min, " (got '", v, "')\n")
        os.exit(2)
      end
      return x
    end
  end
  return default
end
local up = scenario:upper()
local DEFAULTS = { clean = { 5000, 50 }, faulty = { 2000, 50 }, latency = { 1000, 100 } }
local N = env_int({ up .. "_N", "BATCH_N" }, DEFAULTS[scenario][1], 1)
local C = env_int({ up .. "_C", "BATCH_C" }, DEFAULTS[scenario][2], 1)

local failures = {}
local function check(cond, what)
  if not cond then failures[#failures + 1] = what end
  return cond
end

-- CPU seconds (user + sys) a process has used so far, from /proc/PID/stat.
local CLK_TCK = tonumber((mock.capture("getconf CLK_TCK") or ""):match("%d+")) or 100
local function proc_cpu(pid)
  local s = mock.read_file("/proc/" .. pid .. "/stat") or ""
  local rest = s:match("%)%s+(.*)")   -- fields after "(comm)": state is field 3
  if not rest then return 0 end
  local f = {}
  for w in rest:gmatch("%S+") do f[#f + 1] = w end
  return ((tonumber(f[12]) or 0) + (tonumber(f[13]) or 0)) / CLK_TCK   -- utime, stime
end
local function mocks_cpu(mocks)
  local t = 0
  for _, m in ipairs(mocks) do t = t + proc_cpu(m.pid) end
  return t
end

-- The same request body as the reference sends.
local function make_requests(n)
  local reqs = {}
  for i = 1, n do reqs[i] = { model = "m", messages = { { role = "user", content = "hi" } } } end
  return reqs
end

-- Runs the reference; returns { ok, failed, wall, cpu, mock_cpu }.
local function run_ref(urls, n, c, mocks)
  local chat = {}
  for i, u in ipairs(urls) do chat[i] = u .. "/chat/completions" end
  local m0 = mocks_cpu(mocks)
  local cmd = string.format("%s %s %d %d 2>/dev/null", mock.quote(REF_BIN),
                            mock.quote(table.concat(chat, ",")), n, c)
  local out = mock.capture(cmd) or ""
  local m1 = mocks_cpu(mocks)
  local okj, r = pcall(cjson.decode, out:match("{.*}") or "")
  if not okj or type(r) ~= "table" or not r.c then
    error("reference " .. REF_BIN .. " gave no result (" .. out .. "); build it with make bench or: "
          .. "cc -std=gnu99 -O2 -Wall -Wextra bench/ref_curl.c -o build/bench-ref-curl -lcurl")
  end
  return { ok = r.ok, failed = r.failed, wall = r.wall_s, cpu = r.cpu_user_s + r.cpu_sys_s,
           mock_cpu = m1 - m0 }
end

-- Runs one llmrelay batch on a fresh client; returns the same shape plus
-- summary and the number of results that are ok.
local function run_llmrelay(endpoints, n, c, mocks, extra)
  local cfg = { endpoints = endpoints, concurrency = c }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  local client = llmrelay.new(cfg)
  local reqs = make_requests(n)
  local progress = 0
  collectgarbage()
  local m0 = mocks_cpu(mocks)
  local c0, w0 = os.clock(), wall()
  local results, summary = client:batch(reqs, {
    concurrency = c, on_progress = function() progress = progress + 1 end })
  local c1, w1 = os.clock(), wall()
  local m1 = mocks_cpu(mocks)
  client:close()
  local ok, first_err = 0, nil
  for i = 1, n do
    local r = results[i]
    if r and r.ok and type(r.response) == "table" then
      ok = ok + 1
    elseif not first_err then
      first_err = r and tostring(r.error) or ("no result for request " .. i)
    end
  end
  return { ok = ok, failed = n - ok, wall = w1 - w0, cpu = c1 - c0, mock_cpu = m1 - m0,
           summary = summary, first_err = first_err, progress = progress }
end

local function endpoints_of(mocks_or_urls)
  local eps = {}
  for i, m in ipairs(mocks_or_urls) do
    eps[i] = { name = m.name, base_url = m.url, api_key = "bench-key" }
  end
  return eps
end

local HDR = string.format("%-13s %6s %6s %9s %9s %9s %10s %9s", "client", "ok", "failed",
                          "wall s", "ok/s", "CPU s", "CPU µs/ok", "mock CPU")
local function row(label, r)
  print(string.format("%-13s %6d %6d %9.3f %9.0f %9.3f %10.1f %9.2f", label, r.ok, r.failed,
                      r.wall, r.ok / r.wall, r.cpu, r.ok > 0 and r.cpu / r.ok * 1e6 or 0 / 0,
                      r.mock_cpu))
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local k = #s
  return k % 2 == 1 and s[(k + 1) // 2] or (s[k // 2] + s[k // 2 + 1]) / 2
end

---------------------------------------------------------------------------

local function bench_clean()
  local n_eps = env_int({ "CLEAN_ENDPOINTS" }, 3, 1)
  local rounds = env_int({ "REPEAT" }, 5, 1)
  local mocks, urls = {}, {}
  for i = 1, n_eps do
    mocks[i] = mock.start { name = "clean" .. i }
    mocks[i].name = "clean" .. i
    urls[i] = mocks[i].url
  end
  local eps = endpoints_of(mocks)
  print(string.format("%s: %d requests, concurrency %d, %d healthy mock(s); %d round(s) of "
                      .. "reference then llmrelay (fresh client each)", NAME, N, C, n_eps, rounds))
  -- warm-up (untimed): the mocks, the allocator, both code paths
  run_ref(urls, math.min(N, 500), C, mocks)
  run_llmrelay(eps, math.min(N, 500), C, mocks)
  for _, m in ipairs(mocks) do m:stats(true) end

  local ratios, cpu_ratios = {}, {}
  local best_ref, best_lr
  print(HDR)
  for k = 1, rounds do
    local rf = run_ref(urls, N, C, mocks)
    local conns_ref = 0
    for _, m in ipairs(mocks) do conns_ref = conns_ref + m:stats(true).connections end
    local lr = run_llmrelay(eps, N, C, mocks)
    local conns_lr = 0
    for _, m in ipairs(mocks) do conns_lr = conns_lr + m:stats(true).connections end
    row("ref  #" .. k, rf)
    row("llmrelay #" .. k, lr)
    local ratio = (lr.ok / lr.wall) / (rf.ok / rf.wall)
    ratios[k] = ratio
    cpu_ratios[k] = (lr.cpu / math.max(lr.ok, 1)) / (rf.cpu / math.max(rf.ok, 1))
    print(string.format("  round %d: throughput ratio llmrelay/reference %.2f, CPU per ok %.2fx;"
                        .. " connections ref %d, llmrelay %d", k, ratio, cpu_ratios[k],
                        conns_ref, conns_lr))
    check(rf.ok == N, string.format("reference round %d: %d/%d ok", k, rf.ok, N))
    check(lr.ok == N, string.format("llmrelay round %d: %d/%d ok (first error: %s)", k, lr.ok, N,
                                    tostring(lr.first_err)))
    check(lr.summary.ok == lr.ok and lr.summary.total == N,
          string.format("llmrelay round %d: summary says %s ok of %s", k, tostring(lr.summary.ok),
                        tostring(lr.summary.total)))
    if not best_ref or rf.ok / rf.wall > best_ref.ok / best_ref.wall then best_ref = rf end
    if not best_lr or lr.ok / lr.wall > best_lr.ok / best_lr.wall then best_lr = lr end
  end
  local r = median(ratios)
  print(string.format("best: reference %.0f ok/s (%.3f CPU s), llmrelay %.0f ok/s (%.3f CPU s)",
                      best_ref.ok / best_ref.wall, best_ref.cpu, best_lr.ok / best_lr.wall, best_lr.cpu))
  print(string.format("throughput ratio llmrelay/reference: median %.2f (bar >= %.1f, goal %.1f)%s;"
                      .. " CPU per ok request: median %.2fx the reference", r, BAR_CLEAN, GOAL_CLEAN,
                      r >= GOAL_CLEAN and "" or r >= BAR_CLEAN and " - below goal" or " - BELOW BAR",
                      median(cpu_ratios)))
  check(r >= BAR_CLEAN, string.format("throughput ratio %.2f < %.1f", r, BAR_CLEAN))
end

local function bench_faulty()
  local down_port = mock.free_port()
  local flaky = mock.start { name = "flaky", fail_rate = 0.5 }
  local healthy = mock.start { name = "healthy" }
  local mocks = { flaky, healthy }
  local pool = {
    { name = "down", url = "http://127.0.0.1:" .. down_port .. "/v1" },
    { name = "flaky", url = flaky.url },
    { name = "healthy", url = healthy.url },
  }
  local urls = { pool[1].url, pool[2].url, pool[3].url }
  print(string.format("%s: %d requests, concurrency %d, pool: down (refused :%d), flaky "
                      .. "(fail_rate 0.5), healthy", NAME, N, C, down_port))
  local rf = run_ref(urls, N, C, mocks)
  flaky:stats(true); healthy:stats(true)
  local lr = run_llmrelay(endpoints_of(pool), N, C, mocks)
  local st_f, st_h = flaky:stats(), healthy:stats()
  print(HDR)
  row("ref (no retry)", rf)
  row("llmrelay", lr)
  local s = lr.summary
  print(string.format("llmrelay: %d/%d ok, %.0f ok/s, attempts %d, retries %d, CPU %.3f s,"
                      .. " %d progress callbacks", lr.ok, N, lr.ok / lr.wall, s.attempts, s.retries,
                      lr.cpu, lr.progress))
  for _, name in ipairs { "down", "flaky", "healthy" } do
    local e = s.endpoints[name] or {}
    print(string.format("  %-8s ok %5d  failed %5d  attempts %5d  state %s", name, e.ok or 0,
                        e.failed or 0, e.attempts or 0, tostring(e.state)))
  end
  print(string.format("  mock counters: flaky %d requests (%s), healthy %d requests",
                      st_f.requests, cjson.encode(st_f.status), st_h.requests))
  print(string.format("reference (no retries, round-robin): %d/%d ok, %.0f calls/s; llmrelay ok/s /"
                      .. " reference calls/s = %.2f", rf.ok, N, N / rf.wall, (lr.ok / lr.wall) / (N / rf.wall)))
  check(lr.ok == N, string.format("llmrelay: %d/%d ok (bar %d/%d; first error: %s)", lr.ok, N, N, N,
                                  tostring(lr.first_err)))
  check(s.ok == N and s.total == N, string.format("summary: %s ok of %s", tostring(s.ok), tostring(s.total)))
end

local function bench_latency()
  local ms = env_int({ "LATENCY_MS" }, 200, 1)
  local m = mock.start { name = "slow", latency_ms = ms }
  m.name = "slow"
  local mocks = { m }
  local ideal = math.ceil(N / C) * ms / 1000
  print(string.format("%s: %d requests, concurrency %d, one mock with latency_ms=%d; ideal "
                      .. "ceil(N/C) x latency = %.2f s", NAME, N, C, ms, ideal))
  local rf = run_ref({ m.url }, N, C, mocks)
  local conns_ref = m:stats(true).connections
  local lr = run_llmrelay(endpoints_of(mocks), N, C, mocks)
  local conns_lr = m:stats(true).connections
  print(HDR)
  row("ref", rf)
  row("llmrelay", lr)
  local q_lr, q_rf = lr.wall / ideal, rf.wall / ideal
  print(string.format("wall / ideal: llmrelay %.3f (%.2f s), reference %.3f (%.2f s) (bar: llmrelay"
                      .. " <= %.1f); connections ref %d, llmrelay %d", q_lr, lr.wall, q_rf, rf.wall,
                      BAR_LATENCY, conns_ref, conns_lr))
  check(rf.ok == N, string.format("reference: %d/%d ok", rf.ok, N))
  check(lr.ok == N, string.format("llmrelay: %d/%d ok (first error: %s)", lr.ok, N, tostring(lr.first_err)))
  check(q_lr <= BAR_LATENCY, string.format("llmrelay wall / ideal %.3f > %.1f", q_lr, BAR_LATENCY))
end

local ok_run, err_run = pcall(({ clean = bench_clean, faulty = bench_faulty, latency = bench_latency })[scenario])
mock.stop_all()

if not ok_run then
  io.stderr:write(NAME, ": ", tostring(err_run), "\n")
  os.exit(1)
end
if #failures > 0 then
  for _, f in ipairs(failures) do io.stderr:write(NAME, ": FAIL: ", f, "\n") end
  os.exit(1)
end
print(NAME .. ": PASS")
