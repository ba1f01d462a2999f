-- spec/support/inflight.lua - how many requests a mock held at once, sampled
-- from its /stats by a separate curl process while the client runs:
-- concurrency checks that count requests instead of timing them. The sampler
-- is its own process so that it never stalls the client it watches (a curl run
-- from the client's thread would block its event loop, and the mock would
-- finish everything in flight meanwhile), and ONE process (a URL range over
-- one keep-alive connection, --rate 100/s), so that a loaded machine still
-- leaves it time to look.
--
--   local inflight = require "spec.support.inflight"
--   local w = inflight.watch(m)          -- starts sampling
--   ... the requests ...
--   local peak, samples = w:stop()       -- stops the sampler (by PID), reads what it saw
--   peak: the most requests the mock held in one sample (arrived, not yet
--         answered); samples: how many it took
-- A mock counts a chat request when it has read it and its status when the
-- answer is sent (tools/mock_llm.c), so requests - answers - resets is what it
-- holds. The sampler ends by itself after `limit` seconds (default 60).

local cjson = require "cjson"
local mock = require "spec.support.mock"

local q, capture, run = mock.quote, mock.capture, mock.run

local M = {}

local Watch = {}
Watch.__index = Watch

local function held(st)
  local answered = st.resets or 0
  for _, n in pairs(st.status) do answered = answered + n end
  return st.requests - answered
end

function M.watch(m, limit)
  local dir = capture("mktemp -d"):gsub("%s+$", "")
  local file = dir .. "/samples"
  local urls = ("%s/stats?sample=[1-%d]"):format(m.base, 100 * (limit or 60))
  local pid = tonumber(capture("curl -s --rate 100/s -w '\\n' " .. q(urls) .. " >" .. q(file)
    .. " 2>/dev/null </dev/null & echo $!"))
  assert(pid, "inflight: the sampler did not start")
  return setmetatable({ pid = pid, dir = dir, file = file }, Watch)
end

-- Stops the sampler and returns the peak and the number of samples.
function Watch:stop()
  if not self.peak then
    run("kill " .. self.pid .. " 2>/dev/null")
    for _ = 1, 250 do
      if not mock.alive(self.pid) then break end
      run("sleep 0.02")
    end
    if mock.alive(self.pid) then run("kill -KILL " .. self.pid .. " 2>/dev/null") end
    local text = mock.read_file(self.file) or ""
    run("rm -rf " .. q(self.dir))
    self.peak, self.samples = 0, 0
    for line in text:gmatch("[^\n]+") do
      local ok, st = pcall(cjson.decode, line)
      if ok and type(st) == "table" and st.requests then -- a line the kill cut short is not a sample
        self.samples = self.samples + 1
        if held(st) > self.peak then self.peak = held(st) end
      end
    end
  end
  return self.peak, self.samples
end

return M
