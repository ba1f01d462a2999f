-- bench/cli_rss.lua: the batch CLI streams its input, so memory stays flat:
-- a CLI_N-line (default 100,000) batch against one mock, peak RSS measured by
-- GNU time. Bar: < 50 MB. Also checks every line was answered exactly once.
package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local mock = require "spec.support.mock"

local N = tonumber(os.getenv("CLI_N") or 100000)
local dir = mock.capture("mktemp -d"):gsub("%s+$", "")
local m = mock.start { name = "rss" }
local f = assert(io.open(dir .. "/in.jsonl", "w"))
for i = 1, N do
  f:write(('{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"m",' ..
           '"messages":[{"role":"user","content":"question %d"}]}}\n'):format(i, i))
end
f:close()
local out = mock.capture(("/usr/bin/time -f 'rss_kb %%M wall_s %%e' bin/llmrelay batch %s/in.jsonl -o %s/out.jsonl " ..
  "--endpoint %s --concurrency 64 --quiet 2>&1; echo rc=$?"):format(dir, dir, m.url))
local rss, wall = out:match("rss_kb (%d+) wall_s ([%d.]+)")
local rc = tonumber(out:match("rc=(%d+)"))
local lines, ids = 0, {}
for line in io.lines(dir .. "/out.jsonl") do
  lines = lines + 1
  ids[line:match('"custom_id":"(r%d+)"') or "?"] = true
end
local unique = 0
for _ in pairs(ids) do unique = unique + 1 end
m:stop()
mock.run("rm -rf '" .. dir .. "'")
rss = tonumber(rss)
local mb = rss and rss / 1024
print(("cli_rss: %d lines in %s s, exit %s, %d output lines (%d distinct custom_ids), peak RSS %.1f MB (bar < 50 MB)")
  :format(N, tostring(wall), tostring(rc), lines, unique, mb or -1))
local pass = rc == 0 and lines == N and unique == N and mb and mb < 50
print("cli_rss: " .. (pass and "PASS" or "FAIL"))
os.exit(pass and 0 or 1)
