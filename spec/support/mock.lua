-- spec/support/mock.lua - start/stop the C mock OpenAI server (build/mock-llm)
-- from busted specs.  Lua 5.1/LuaJIT/5.4; needs only lua-cjson, io and os
-- (plus sh, kill, sleep, mktemp, rm and curl on the machine).
--
--   local mock = require "spec.support.mock"
--   local m = mock.start{ name = "a", fail_rate = 0.5, latency_ms = 10,
--                         models = {"m1", "m2"} }   -- keys: flags, '-' -> '_'
--   m.port, m.pid, m.url   -- url  = "http://127.0.0.1:<port>/v1"
--   m.base                 -- base = "http://127.0.0.1:<port>"
--   m:stats()              -- decoded GET /stats
--   m:stats(true)          -- GET /stats?reset=1 (counters, then zeroed)
--   m:log()                -- what the mock printed so far
--   m:stop()               -- SIGTERM, wait, SIGKILL if needed; returns the
--                          -- final stats (decoded) or nil; idempotent
--   mock.stop_all()        -- stop every mock started by this module
--   mock.free_port()       -- a 127.0.0.1 port where nothing listens
--
-- Connections that only ask for /stats, /health or /v1/models are not counted
-- in stats().connections (the mock counts a connection at its first chat
-- request), so m:stats() itself never disturbs the counters.
-- Every mock gets --parent-pid <this Lua process>, so it exits by itself if
-- the test runner dies without calling stop().

local cjson = require "cjson"

local M = {}
M.bin = os.getenv("MOCK_LLM_BIN") or "build/mock-llm"

local running = {}   -- [mock object] = true
local Mock = {}
Mock.__index = Mock

local function q(s)
  return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end

-- Child processes must not inherit the ASan runtime that `make sanitize`
-- preloads into the Lua interpreter: curl and the mock deadlock under it.
local CLEAN_ENV = "unset LD_PRELOAD; "

-- os.execute result as a boolean on 5.1 (number) and 5.2+ (true/nil)
local function run(cmd)
  local a = os.execute(CLEAN_ENV .. cmd)
  return a == true or a == 0
end

local function sleep(s)
  run("sleep " .. s)
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function capture(cmd)
  local p = io.popen(CLEAN_ENV .. cmd, "r")
  if not p then return nil end
  local s = p:read("*a")
  p:close()
  return s
end

-- true while pid exists and is not a zombie (an exited child of someone
-- that has not reaped it yet counts as gone)
local function alive(pid)
  local s = read_file("/proc/" .. pid .. "/stat")
  if not s then return false end
  local state = s:match("%)%s+(%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end
M.alive = alive
M.run = run         -- shell helpers for other specs, with the same clean environment
M.capture = capture
M.quote = q
M.read_file = read_file

local function fmt_value(v)
  local t = type(v)
  if t == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = fmt_value(v[i]) end
    return table.concat(parts, ",")
  elseif t == "number" then
    if v == math.floor(v) and v > -2^53 and v < 2^53 then
      return string.format("%d", v)
    end
    return string.format("%.17g", v)
  elseif t == "boolean" then
    return v and "1" or "0"
  end
  return tostring(v)
end

local my_pid
local function lua_pid()
  if not my_pid then
    -- io.popen runs "sh -c ...": the shell's parent is this Lua process
    my_pid = tonumber((capture("echo $PPID") or ""):match("%d+"))
  end
  return my_pid
end

M.lua_pid = lua_pid -- the pid of this Lua process (the test runner)

function M.start(opts)
  opts = opts or {}
  local bin = opts.bin or M.bin
  local f = io.open(bin, "rb")
  if not f then
    error("mock server binary " .. bin .. " not found: run make mock", 2)
  end
  f:close()

  local dir = (capture("mktemp -d /tmp/llmrelay-mock.XXXXXX 2>/dev/null") or "")
    :match("^%s*(.-)%s*$")
  if dir == "" then error("mock.start: mktemp -d failed", 2) end
  local port_file, log = dir .. "/port", dir .. "/log"

  local keys = {}
  for k in pairs(opts) do
    if k ~= "bin" and k ~= "port_file" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local args = {}
  for _, k in ipairs(keys) do
    args[#args + 1] = "--" .. k:gsub("_", "-")
    args[#args + 1] = q(fmt_value(opts[k]))
  end
  if opts.port == nil then args[#args + 1] = "--port 0" end
  local ppid = lua_pid()
  if ppid and opts.parent_pid == nil then
    args[#args + 1] = "--parent-pid " .. ppid
  end

  local cmd = string.format("%s %s --port-file %s >%s 2>&1 </dev/null & echo $!",
    q(bin), table.concat(args, " "), q(port_file), q(log))
  local pid = tonumber((capture(cmd) or ""):match("%d+"))
  if not pid then
    run("rm -rf " .. q(dir))
    error("mock.start: could not start " .. bin, 2)
  end

  local self = setmetatable({ pid = pid, dir = dir, log_file = log }, Mock)
  running[self] = true
  local port
  for i = 1, 250 do                       -- ~5 s
    local s = read_file(port_file)
    port = s and tonumber(s:match("^(%d+)\n"))
    if port then break end
    if not alive(pid) then break end
    sleep(i < 10 and 0.01 or 0.02)
  end
  if not port then
    local out = read_file(log) or ""
    self:stop()
    error("mock.start: mock-llm did not start (" .. cmd .. "): " .. out, 2)
  end
  self.port = port
  self.base = "http://127.0.0.1:" .. port
  self.url = self.base .. "/v1"
  return self
end

function Mock:log()
  return read_file(self.log_file) or self.final_log or ""
end

function Mock:stats(reset)
  local out = capture("curl -s --max-time 5 " ..
    q(self.base .. "/stats" .. (reset and "?reset=1" or "")))
  local ok, v = pcall(cjson.decode, out or "")
  if not ok or type(v) ~= "table" then
    error("mock: /stats failed: " .. tostring(out), 2)
  end
  return v
end

function Mock:stop()
  if self.stopped then return self.final end
  self.stopped = true
  running[self] = nil
  if alive(self.pid) then
    run("kill -TERM " .. self.pid .. " 2>/dev/null")
    for i = 1, 250 do                     -- ~5 s
      if not alive(self.pid) then break end
      sleep(i < 10 and 0.01 or 0.02)
    end
    if alive(self.pid) then
      run("kill -KILL " .. self.pid .. " 2>/dev/null")
      for _ = 1, 50 do
        if not alive(self.pid) then break end
        sleep(0.02)
      end
    end
  end
  local text = read_file(self.log_file) or ""
  self.final_log = text
  local last
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) == "{" then last = line end
  end
  if last then
    local ok, v = pcall(cjson.decode, last)
    if ok then self.final = v end
  end
  run("rm -rf " .. q(self.dir))
  return self.final
end

function M.stop_all()
  local list = {}
  for m in pairs(running) do list[#list + 1] = m end
  for _, m in ipairs(list) do m:stop() end
end

function M.free_port()
  local m = M.start{ name = "portprobe" }
  local port = m.port
  m:stop()
  return port
end

return M
