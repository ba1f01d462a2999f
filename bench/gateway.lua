-- bench/gateway.lua: the OpenResty gateway's overhead (issue 7).
--   lua5.4 bench/gateway.lua        (from the repo root; make && make LUA=luajit first)
-- One nginx (2 workers), one healthy mock-llm upstream, and wrk (Debian's wrk)
-- posting the same chat request at concurrency GW_C (default 50) for
-- GW_SECONDS (default 4) per run, with GW_THREADS wrk threads (default 1: on a
-- small machine a second wrk thread takes CPU from nginx), to two locations
-- of the same server:
--   /gw/     gateway:serve(), built once with anonymous = true (no gateway keys)
--   /proxy/  proxy_pass to the mock through an upstream block with keepalive
-- Runs alternate (gateway, proxy) GW_ROUNDS times (default 3) after a short
-- warm-up; the ratio is the median of the rounds' ratios (a round's two runs
-- are back to back, so a noisy neighbour hurts both). Also reports wrk
-- straight at the mock, for context (a single-threaded mock can cap both).
-- Bar: gateway req/s >= 0.5 x proxy req/s, no non-2xx answer or socket error,
-- nothing alarming in nginx's error log.
package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"

local C = tonumber(os.getenv("GW_C") or 50)
local SECONDS = tonumber(os.getenv("GW_SECONDS") or 4)
local ROUNDS = tonumber(os.getenv("GW_ROUNDS") or 3)
local THREADS = tonumber(os.getenv("GW_THREADS") or 1)
local GOAL = 0.5

local q, capture, run, read_file = mock.quote, mock.capture, mock.run, mock.read_file

local function fail_setup(msg)
  io.stderr:write("bench/gateway.lua: ", msg, "\n")
  nginx.stop_all()
  mock.stop_all()
  os.exit(2)
end

if not run("command -v wrk >/dev/null 2>&1") then fail_setup("wrk not found (apt-get install wrk)") end
local ok, why = nginx.available()
if not ok then fail_setup(why) end

local dir = (capture("mktemp -d /tmp/llmrelay-gwbench.XXXXXX") or ""):match("^%s*(.-)%s*$")
if dir == "" then fail_setup("mktemp -d failed") end

local BODY = '{"model":"gpt-x","messages":[{"role":"user","content":"benchmark prompt"}]}'
-- wrk's script: POST the body; done() prints one machine-readable line
local f = assert(io.open(dir .. "/post.lua", "wb"))
f:write(([[
wrk.method = "POST"
wrk.body = %q
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%%d duration_us=%%d connect=%%d read=%%d write=%%d status=%%d timeout=%%d p50_us=%%d p99_us=%%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
]]):format(BODY))
f:close()

local up = mock.start{ name = "bench" }
local n = nginx.start{
  workers = 2,
  init = ([[
    client = require("llmrelay").new{ name = "bench",
      endpoints = { { name = "mock", base_url = %q, api_key = "sk-bench-upstream" } } }
    gateway = require("llmrelay.resty.gateway").new(client, { anonymous = true })
  ]]):format(up.url),
  http = ([[
    lua_socket_log_errors off;
    upstream mock_upstream {
      server 127.0.0.1:%d;
      keepalive 64;
    }
    server {
      listen 127.0.0.1:$PORT;
      location /gw/ {
        content_by_lua_block { gateway:serve() }
      }
      location /proxy/ {
        proxy_pass http://mock_upstream/;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Authorization "Bearer sk-bench-upstream";
      }
    }
  ]]):format(up.port),
}

local function wrk(url, seconds)
  local out = capture(("wrk -t%d -c%d -d%ds --timeout 10s -s %s %s 2>&1")
    :format(THREADS, C, seconds, q(dir .. "/post.lua"), q(url))) or ""
  local line = out:match("RESULT ([^\n]+)")
  if not line then fail_setup("wrk printed no result:\n" .. out) end
  local r = {}
  for k, v in line:gmatch("([%w_]+)=(%d+)") do r[k] = tonumber(v) end
  r.rate = r.requests / (r.duration_us / 1e6)
  r.errors = r.connect + r.read + r.write + r.status + r.timeout
  return r
end

-- both paths answer the same thing before anything is measured
local GW, PROXY, DIRECT = n.base .. "/gw/v1/chat/completions", n.base .. "/proxy/v1/chat/completions",
  up.url .. "/chat/completions"
for _, u in ipairs{ GW, PROXY } do
  local status, body = nginx.curl(u, { method = "POST", headers = { "Content-Type: application/json" }, body = BODY })
  if status ~= 200 or not body:find('"content":"echo: benchmark prompt"', 1, true) then
    fail_setup(u .. " answered " .. tostring(status) .. ": " .. tostring(body) .. "\n" .. n:error_log())
  end
end

wrk(GW, 1) -- warm-up: connections, JIT
wrk(PROXY, 1)
local rates = { gateway = {}, proxy = {} }
local ratios = {}
local errors = 0
for round = 1, ROUNDS do
  for _, side in ipairs{ { "gateway", GW }, { "proxy", PROXY } } do
    local r = wrk(side[2], SECONDS)
    errors = errors + r.errors
    print(("gateway bench: round %d %-7s %8.0f req/s  p50 %.2f ms  p99 %.2f ms  errors %d")
      :format(round, side[1], r.rate, r.p50_us / 1000, r.p99_us / 1000, r.errors))
    table.insert(rates[side[1]], r.rate)
  end
  ratios[round] = rates.gateway[round] / rates.proxy[round]
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local m = #s
  if m % 2 == 1 then return s[(m + 1) / 2] end
  return (s[m / 2] + s[m / 2 + 1]) / 2
end
local direct = wrk(DIRECT, math.min(SECONDS, 3))

local log = n:error_log()
local bad
for _, p in ipairs{ "attempt to yield across C%-call boundary", "%[alert%]", "%[crit%]", "%[emerg%]",
                    "%[error%]", "lua entry thread aborted", "runtime error" } do
  if log:find(p) then bad = p end
end
local up_stats = up:stats()
n:stop()
up:stop()
run("rm -rf " .. q(dir))

local g, p = median(rates.gateway), median(rates.proxy)
local ratio = median(ratios)
print(("gateway bench: 2 nginx workers, C=%d, %d s runs, wrk -t%d; mock-llm directly: %.0f req/s; mock saw %d requests")
  :format(C, SECONDS, THREADS, direct.rate, up_stats.requests))
if bad then print("gateway bench: the error log matches '" .. bad .. "':\n" .. log) end
if errors > 0 then print(("gateway bench: %d non-2xx answers or socket errors"):format(errors)) end
local shown = {}
for i, r in ipairs(ratios) do shown[i] = ("%.2f"):format(r) end
print(("gateway bench: ratio per round %s"):format(table.concat(shown, " ")))
print(("gateway: %.0f req/s, proxy: %.0f req/s, ratio %.2f (goal >= %.1f)"):format(g, p, ratio, GOAL))
local pass = ratio >= GOAL and errors == 0 and not bad
print(("gateway: %s"):format(pass and "PASS" or "FAIL"))
os.exit(pass and 0 or 1)
