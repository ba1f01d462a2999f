-- bench/cli_rss.lua: the batch CLI streams its input and keeps its custom_ids
-- as 16-byte digests (csrc/idset.c), so memory stays flat: a 100,000-line and
-- a 1,000,000-line batch (CLI_N=N: that one row only) against one mock, peak
-- RSS measured by GNU time. Bar: < 50 MB on every row, and the 1,000,000-line
-- row within 30 MB of the 100,000-line one. Each row also checks every line
-- was answered exactly once.
package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local mock = require "spec.support.mock"

local BAR_MB, GROWTH_MB = 50, 30
local ROWS = os.getenv("CLI_N") and { tonumber(os.getenv("CLI_N")) } or { 100000, 1000000 }

local function row(n, m)
  local dir = mock.capture("mktemp -d"):gsub("%s+$", "")
  local f = assert(io.open(dir .. "/in.jsonl", "w"))
  for i = 1, n do
    f:write(('{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"m",' ..
             '"messages":[{"role":"user","content":"question %d"}]}}\n'):format(i, i))
  end
  f:close()
  local out = mock.capture(("/usr/bin/time -f 'rss_kb %%M wall_s %%e' bin/llmrelay batch %s/in.jsonl -o %s/out.jsonl " ..
    "--endpoint %s --concurrency 64 --quiet 2>&1; echo rc=$?"):format(dir, dir, m.url))
  local rss, wall = out:match("rss_kb (%d+) wall_s ([%d.]+)")
  local rc = tonumber(out:match("rc=(%d+)"))
  -- exactly once: every r<i> once, counted in a byte map (a table of a million strings would dwarf the run)
  local lines, dup, seen = 0, 0, {}
  for line in io.lines(dir .. "/out.jsonl") do
    lines = lines + 1
    local i = tonumber(line:match('"custom_id":"r(%d+)"'))
    if not i or seen[i] then dup = dup + 1 else seen[i] = true end
  end
  mock.run("rm -rf '" .. dir .. "'")
  local mb = rss and tonumber(rss) / 1024 or -1
  local ok = rc == 0 and lines == n and dup == 0 and mb > 0 and mb < BAR_MB
  print(("cli_rss: %8d lines in %6s s (%.0f lines/s), exit %s, %d output lines (%d not exactly once), " ..
         "peak RSS %.1f MB (bar < %d MB)"):format(n, tostring(wall), n / (tonumber(wall) or 1), tostring(rc),
         lines, dup, mb, BAR_MB))
  return ok, mb
end

local m = mock.start { name = "rss" }
local pass, first, last = true, nil, nil
for _, n in ipairs(ROWS) do
  local ok, mb = row(n, m)
  pass = pass and ok
  first, last = first or mb, mb
end
m:stop()
if #ROWS > 1 then
  local growth = last - first
  print(("cli_rss: %d -> %d lines: RSS grew %.1f MB (bar < %d MB)"):format(ROWS[1], ROWS[#ROWS], growth, GROWTH_MB))
  pass = pass and growth < GROWTH_MB
end
print("cli_rss: " .. (pass and "PASS" or "FAIL"))
os.exit(pass and 0 or 1)
