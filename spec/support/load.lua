-- spec/support/load.lua - HTTP load for specs: curl --parallel over a config
-- file of n POSTs, in the foreground or in the background (several loads at
-- once, e.g. one per gateway of a fleet). Lua 5.1/LuaJIT/5.4; needs io, os,
-- sh, date, ps, kill and curl >= 7.84 (--parallel, %header{} in -w).
--
--   local load = require "spec.support.load"
--   local o = { url =, n =, c =, headers = { "K: v", ... },
--               body = function(i) -> string,
--               expect = function(i) -> string,   -- optional: a 200 body must hold it
--               scan = function(body, head),      -- optional: sees every body and its raw headers
--               timeout = 30 }                    -- curl's --max-time per request
--   local r = load.run(o)             -- waits for the n answers
--   local h = load.start(o)           -- returns at once (curl in the background)
--   local r = h:wait()                -- the same result as run(); idempotent
--   h:stop()                          -- kills curl by PID if it still runs; idempotent
--   load.stop_all()                   -- stop every load started and not waited for
--   load.show(t)                      -- "{k=v, ...}", keys sorted: for messages
--   load.log_problem(text)            -- the first of load.BAD_LOG that an nginx
--                                     -- error log matches, or nil
--   load.request(url, { method =, headers = {}, body =, timeout = 15 })
--     -> status (nil: no answer), body, headers (lower-case names; the last
--        header block), raw header text: one request, in the foreground
--   r = { codes = {[status] = n}, workers = {[X-Worker] = n},
--         endpoints = {[X-Llmrelay-Endpoint] = n}, lines = answers seen,
--         elapsed = s (curl's own run), rc = curl's exit code, ok_bodies = n,
--         bad = {first few non-200 "status body"}, stderr = curl's stderr }
--
-- Every request has its own output file in a temporary folder, removed once
-- the result is read. The X-Worker header is whatever the server adds (e.g.
-- nginx's `add_header X-Worker $pid always;`).

local mock = require "spec.support.mock"

local q, capture, run, read_file, alive = mock.quote, mock.capture, mock.run, mock.read_file, mock.alive

local M = {}
local running = {}   -- [handle] = true until waited for or stopped
local Load = {}
Load.__index = Load

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function cfg_quote(s)
  return '"' .. s:gsub('[\\"]', "\\%0"):gsub("\n", "\\n") .. '"'
end

local function check(o)
  for _, k in ipairs{ "url", "n", "c", "body" } do
    if o[k] == nil then error("load: o." .. k .. " is required", 3) end
  end
end

-- Writes curl's config for o into dir.
local function write_config(o, dir)
  local lines = {}
  local function add(k, v) lines[#lines + 1] = k .. " = " .. cfg_quote(v) end
  for i = 1, o.n do
    if i > 1 then lines[#lines + 1] = "next" end
    add("url", o.url)
    add("request", "POST")
    for _, h in ipairs(o.headers or {}) do add("header", h) end
    add("data-binary", o.body(i))
    add("output", dir .. "/" .. i)
    add("dump-header", dir .. "/" .. i .. ".h")
    add("max-time", tostring(o.timeout or 30))
    add("write-out", "%{http_code} %header{x-worker} %header{x-llmrelay-endpoint} %{filename_effective}\n")
  end
  write_file(dir .. "/curl.cfg", table.concat(lines, "\n") .. "\n")
end

function M.start(o)
  check(o)
  local dir = (capture("mktemp -d /tmp/llmrelay-load.XXXXXX") or ""):match("^%s*(.-)%s*$")
  assert(dir ~= "", "load: mktemp -d failed")
  write_config(o, dir)
  -- the times come from the shell around curl alone: the caller may wait late
  local script = ("date +%%s.%%N >%s; curl -s --parallel --parallel-immediate --parallel-max %d -K %s >%s 2>%s;" ..
    " rc=$?; date +%%s.%%N >%s; echo $rc >%s"):format(q(dir .. "/t0"), o.c, q(dir .. "/curl.cfg"),
    q(dir .. "/out"), q(dir .. "/stderr"), q(dir .. "/t1"), q(dir .. "/rc"))
  local pid = tonumber((capture("sh -c " .. q(script) .. " >/dev/null 2>&1 </dev/null & echo $!") or ""):match("%d+"))
  if not pid then
    run("rm -rf " .. q(dir))
    error("load: could not start curl", 2)
  end
  local self = setmetatable({ o = o, dir = dir, pid = pid }, Load)
  running[self] = true
  return self
end

-- The answers, from curl's write-out lines and the bodies.
local function parse(self, rc)
  local o, dir = self.o, self.dir
  local t0, t1 = tonumber(read_file(dir .. "/t0") or ""), tonumber(read_file(dir .. "/t1") or "")
  local r = { elapsed = (t0 and t1) and t1 - t0 or 0, rc = rc, codes = {}, workers = {}, endpoints = {},
              bad = {}, lines = 0, ok_bodies = 0 }
  for line in (read_file(dir .. "/out") or ""):gmatch("[^\n]+") do
    local code, worker, ep, file = line:match("^(%d+) (%S*) (%S*) (%S+)$")
    if code then
      r.lines = r.lines + 1
      code = tonumber(code)
      r.codes[code] = (r.codes[code] or 0) + 1
      if worker ~= "" then r.workers[worker] = (r.workers[worker] or 0) + 1 end
      if ep ~= "" then r.endpoints[ep] = (r.endpoints[ep] or 0) + 1 end
      local i = tonumber(file:match("(%d+)$"))
      local body = read_file(file) or ""
      if code == 200 and o.expect and body:find(o.expect(i), 1, true) then
        r.ok_bodies = r.ok_bodies + 1
      elseif #r.bad < 5 and code ~= 200 then
        r.bad[#r.bad + 1] = code .. " " .. body
      end
      if o.scan then o.scan(body, read_file(file .. ".h") or "") end
    end
  end
  r.stderr = read_file(dir .. "/stderr") or ""
  return r
end

-- Waits for curl to finish (every request is bounded by o.timeout).
function Load:wait()
  if self.result then return self.result end
  local rc
  while true do
    rc = tonumber(read_file(self.dir .. "/rc") or "")
    if rc or not alive(self.pid) then break end
    run("sleep 0.05")
  end
  self.result = parse(self, rc)
  running[self] = nil
  run("rm -rf " .. q(self.dir))
  return self.result
end

-- Kills the shell and its curl (by PID) when they still run; removes the folder.
function Load:stop()
  if self.result or self.stopped then return end
  self.stopped = true
  running[self] = nil
  if alive(self.pid) then
    local kids = (capture("ps -o pid= --ppid " .. self.pid .. " 2>/dev/null") or ""):gsub("%s+", " ")
    run("kill -KILL " .. self.pid .. " " .. kids .. " 2>/dev/null")
  end
  run("rm -rf " .. q(self.dir))
end

function M.request(url, o)
  o = o or {}
  local bf, hf = os.tmpname(), os.tmpname()
  local cmd = { "curl -s -o", q(bf), "-D", q(hf), "-w '%{http_code}' --max-time", tostring(o.timeout or 15) }
  if o.method then cmd[#cmd + 1] = "-X " .. q(o.method) end
  for _, h in ipairs(o.headers or {}) do cmd[#cmd + 1] = "-H " .. q(h) end
  local df
  if o.body then
    df = os.tmpname()
    write_file(df, o.body)
    cmd[#cmd + 1] = "--data-binary @" .. q(df)
  end
  cmd[#cmd + 1] = q(url)
  local code = tonumber((capture(table.concat(cmd, " ")) or ""):match("(%d+)%s*$"))
  local body, raw = read_file(bf) or "", read_file(hf) or ""
  os.remove(bf)
  os.remove(hf)
  if df then os.remove(df) end
  local headers, block = {}, raw
  -- keep the last block (a 100 Continue may come first)
  for b in (raw .. "\r\n\r\n"):gmatch("(HTTP/.-)\r\n\r\n") do block = b end
  for line in block:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:%s]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  if code == 0 then code = nil end
  return code, body, headers, raw
end

function M.show(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. tostring(t[k]) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- What a gateway's error log must never hold, whatever the load did to it.
M.BAD_LOG = {
  "attempt to yield across C%-call boundary", "%[alert%]", "%[crit%]", "%[emerg%]",
  "lua entry thread aborted", "runtime error", "stack traceback",
}

function M.log_problem(text)
  for _, p in ipairs(M.BAD_LOG) do
    if text:find(p) then return p end
  end
  return nil
end

function M.run(o)
  check(o)
  return M.start(o):wait()
end

function M.stop_all()
  local list = {}
  for h in pairs(running) do list[#list + 1] = h end
  for _, h in ipairs(list) do h:stop() end
end

return M
