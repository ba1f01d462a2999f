-- The README demo: `llmrelay batch` over a generated 2,000-line OpenAI Batch
-- API file, against three local mock endpoints with injected faults — one
-- refuses connections, one fails 30 % of requests with 500 and rate-limits
-- (429 past 300 requests/s), one is healthy — with the CLI's progress bar and
-- summary, then a check that every input line got exactly one answer.
--   make demo            (N=2000 by default: N=10000 make demo for more)
package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local cjson = require "cjson"
local mock = require "spec.support.mock"

local N = tonumber(os.getenv("N") or arg[1] or 2000)
local dir = mock.capture("mktemp -d"):gsub("%s+$", "")

local flaky = mock.start { name = "flaky", fail_rate = 0.3, rps = 300, burst = 30, seed = 3 }
local healthy = mock.start { name = "healthy", latency_ms = 20 }
local dead_url = "http://127.0.0.1:" .. mock.free_port() .. "/v1"

local cfg = assert(io.open(dir .. "/pool.lua", "w"))
cfg:write(([[
return {
  endpoints = {
    { name = "dead",    base_url = %q, api_key = "sk-demo-dead" },
    { name = "flaky",   base_url = %q, api_key = "sk-demo-flaky" },
    { name = "healthy", base_url = %q, api_key = "sk-demo-healthy" },
  },
  breaker = { failure_threshold = 3, cooldown = 2 },
}
]]):format(dead_url, flaky.url, healthy.url))
cfg:close()

local input = assert(io.open(dir .. "/input.jsonl", "w"))
for i = 1, N do
  input:write(cjson.encode { custom_id = "req-" .. i, method = "POST", url = "/v1/chat/completions",
                             body = { model = "mock-model", messages = { { role = "user", content = "question " .. i } } } },
              "\n")
end
input:close()

print(("llmrelay batch: %d requests through dead / flaky (30%% 500, 429 past 300/s) / healthy (20 ms)\n"):format(N))
local cmd = ("bin/llmrelay batch %s/input.jsonl -o %s/output.jsonl -c %s/pool.lua --concurrency 50"):format(dir, dir, dir)
local ok = os.execute(cmd)
local code = (ok == true or ok == 0) and 0 or 1

-- every input line answered exactly once, and answered right
local seen, lines, good = {}, 0, 0
for line in io.lines(dir .. "/output.jsonl") do
  lines = lines + 1
  local rec = cjson.decode(line)
  seen[rec.custom_id] = (seen[rec.custom_id] or 0) + 1
  local n = rec.custom_id:match("req%-(%d+)")
  if rec.error == cjson.null and rec.response.body.choices[1].message.content == "echo: question " .. n then
    good = good + 1
  end
end
local once = 0
for _, c in pairs(seen) do if c == 1 then once = once + 1 end end
local fs, hs = flaky:stats(), healthy:stats()
print(("\noutput: %d lines, %d custom_ids answered exactly once, %d correct answers"):format(lines, once, good))
print(("the servers saw: flaky %d requests (%d x 500, %d x 429), healthy %d requests on %d connections"):format(
  fs.requests, fs.status["500"] or 0, fs.status["429"] or 0, hs.requests, hs.connections))
mock.stop_all()
mock.run("rm -rf '" .. dir .. "'")
if lines ~= N or once ~= N or good ~= N then code = 1 end
os.exit(code)
