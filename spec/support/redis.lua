-- spec/support/redis.lua - start/stop a real redis-server (Debian's) from
-- busted specs. Lua 5.1/LuaJIT/5.4; needs only io and os (plus sh, kill,
-- sleep, mktemp, rm, redis-server, redis-cli and, for TLS, openssl).
--
--   local redis = require "spec.support.redis"
--   local r = redis.start()                       -- 127.0.0.1, a free port, a temp dir
--   local r = redis.start{ requirepass = "s3cret" }
--   local r = redis.start{ acl_user = { name = "app", password = "pw" } }
--   local r = redis.start{ tls = true }           -- r.ca_file, r.url = "rediss://127.0.0.1:P"
--   local r = redis.start{ tls = true, tls_san = "DNS:elsewhere.test" }  -- a certificate for other names
--   local r = redis.start{ args = { "--tcp-backlog", "1" } }  -- more redis-server arguments
--   r.port, r.pid, r.url, r.dir                   -- url = "redis://127.0.0.1:<port>" (no credentials)
--   r:cli("SET", "k", "v")                        -- redis-cli against it (auth, TLS included): its output
--   r:kill()                                      -- SIGKILL at once (the dir stays for restart)
--   r:pause(), r:resume()                         -- SIGSTOP / SIGCONT: a server that accepts
--                                                 -- connections (the kernel does) but never answers
--   r:restart()                                   -- start again on the SAME port (after kill or stop)
--   r:stop()                                      -- SIGTERM, wait, SIGKILL if needed; rm the dir; idempotent
--   redis.stop_all()                              -- stop every server started by this module
--   redis.make_ca(dir, name)                      -- a throwaway CA: returns ca.crt, ca.key paths
--
-- No persistence (--save "" --appendonly no): a restart starts empty, as after
-- a crash of a cache. Every server is watched by a small sh loop that kills it
-- when this Lua process (the test runner) dies without calling stop().

local mock = require "spec.support.mock"

local M = {}
local run, capture, q, alive, read_file = mock.run, mock.capture, mock.quote, mock.alive, mock.read_file

local running = {}   -- [server object] = true
local Server = {}
Server.__index = Server

local function sleep(s)
  run("sleep " .. s)
end

-- A port in the ephemeral-free range, different per process and per call;
-- start() retries another one when redis-server cannot bind it.
local seeded = false
local function pick_port()
  if not seeded then
    -- small enough for LuaJIT, whose randomseed folds large seeds into one stream
    math.randomseed((os.time() % 100003) * 7919 + (mock.lua_pid() or 0))
    seeded = true
  end
  return math.random(20000, 29999)
end

-- Runs sh commands in dir and fails loudly (a test setup error) when they do.
local function must(cmd, what)
  if not run(cmd) then error("spec.support.redis: " .. what .. " failed: " .. cmd, 3) end
end

function M.make_ca(dir, name)
  local crt, key = dir .. "/" .. name .. ".crt", dir .. "/" .. name .. ".key"
  must(string.format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes" ..
    " -keyout %s -out %s -days 2 -subj %s >/dev/null 2>&1", q(key), q(crt), q("/CN=llmrelay test " .. name)),
    "openssl (CA)")
  return crt, key
end

-- A CA and a server certificate signed by it, for the names in san
-- (openssl's subjectAltName syntax).
local function make_certs(dir, san)
  local ca, ca_key = M.make_ca(dir, "ca")
  local ext = dir .. "/server.ext"
  local f = assert(io.open(ext, "w"))
  f:write("subjectAltName=" .. san .. "\n")
  f:close()
  must(string.format("cd %s && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes" ..
    " -keyout server.key -out server.csr -subj /CN=localhost >/dev/null 2>&1 &&" ..
    " openssl x509 -req -in server.csr -CA %s -CAkey %s -CAcreateserial -out server.crt -days 2" ..
    " -extfile server.ext >/dev/null 2>&1", q(dir), q(ca), q(ca_key)), "openssl (server certificate)")
  return ca
end

-- redis-cli's arguments for this server (the password goes by environment,
-- never on a command line that ps or an error could show).
function Server:cli_prefix()
  local parts = { "" }
  if self.password then parts[#parts + 1] = "REDISCLI_AUTH=" .. q(self.password) end
  parts[#parts + 1] = "redis-cli -h 127.0.0.1 -p " .. self.port
  if self.user then parts[#parts + 1] = "--user " .. q(self.user) end
  if self.tls then parts[#parts + 1] = "--tls --cacert " .. q(self.ca_file) end
  return table.concat(parts, " ")
end

function Server:cli(...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = q(select(i, ...)) end
  return capture(self:cli_prefix() .. " " .. table.concat(args, " ") .. " 2>&1 </dev/null")
end

local function server_args(self)
  local o = self.opts
  local a = {
    "--bind 127.0.0.1", "--save ''", "--appendonly no", "--daemonize no",
    "--dir " .. q(self.dir), "--pidfile " .. q(self.dir .. "/redis.pid"),
    "--logfile " .. q(self.dir .. "/log"),
  }
  if self.tls then
    a[#a + 1] = "--port 0 --tls-port " .. self.port
    a[#a + 1] = "--tls-cert-file " .. q(self.dir .. "/server.crt")
    a[#a + 1] = "--tls-key-file " .. q(self.dir .. "/server.key")
    a[#a + 1] = "--tls-ca-cert-file " .. q(self.ca_file)
    a[#a + 1] = "--tls-auth-clients no"
  else
    a[#a + 1] = "--port " .. self.port
  end
  if o.requirepass then a[#a + 1] = "--requirepass " .. q(o.requirepass) end
  for _, extra in ipairs(o.args or {}) do a[#a + 1] = q(extra) end
  if o.acl_user then
    a[#a + 1] = "--user " .. q(o.acl_user.name) .. " on " .. q(">" .. o.acl_user.password) ..
      " '~*' '&*' '+@all'"
  end
  return table.concat(a, " ")
end

-- Starts redis-server on self.port and its watcher; true when it answers
-- PING, or false and the log when it did not come up.
local function launch(self)
  os.remove(self.dir .. "/log")
  local pid = tonumber((capture(string.format(
    "redis-server %s >/dev/null 2>&1 </dev/null & echo $!", server_args(self))) or ""):match("%d+"))
  if not pid then return false, "could not start redis-server" end
  self.pid = pid
  local ppid = mock.lua_pid()
  if ppid then
    -- exits by itself once redis is gone; kills redis if the test runner died first
    self.watch_pid = tonumber((capture(string.format(
      "(while kill -0 %d 2>/dev/null && kill -0 %d 2>/dev/null; do sleep 1; done;" ..
      " kill -0 %d 2>/dev/null || kill -KILL %d 2>/dev/null) >/dev/null 2>&1 </dev/null & echo $!",
      ppid, pid, ppid, pid)) or ""):match("%d+"))
  end
  for i = 1, 250 do                       -- ~5 s
    if (self:cli("PING") or ""):match("PONG") then return true end
    if not alive(pid) then break end
    sleep(i < 10 and 0.01 or 0.02)
  end
  return false, read_file(self.dir .. "/log") or ""
end

local function make_dir(self)
  local dir = (capture("mktemp -d /tmp/llmrelay-redis.XXXXXX 2>/dev/null") or ""):match("^%s*(.-)%s*$")
  if dir == "" then error("spec.support.redis: mktemp -d failed", 3) end
  self.dir = dir
  if self.tls then self.ca_file = make_certs(dir, self.opts.tls_san or "IP:127.0.0.1,DNS:localhost") end
end

-- opts: requirepass, acl_user = { name =, password = }, tls = true, tls_san, port,
-- args = { more redis-server arguments, e.g. "--tcp-backlog", "1" }
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({ opts = opts, tls = opts.tls and true or false }, Server)
  if opts.acl_user then
    self.user, self.password = opts.acl_user.name, opts.acl_user.password
  else
    self.password = opts.requirepass
  end
  make_dir(self)
  running[self] = true
  local ok, log
  for _ = 1, opts.port and 1 or 8 do
    self.port = opts.port or pick_port()
    ok, log = launch(self)
    if ok then break end
    self:kill()
    if not (log or ""):match("[Aa]ddress already in use") then break end
  end
  if not ok then
    self:stop()
    error("spec.support.redis: redis-server did not start: " .. tostring(log), 2)
  end
  self.url = (self.tls and "rediss" or "redis") .. "://127.0.0.1:" .. self.port
  return self
end

-- waits up to ~t seconds for pid to be gone
local function wait_gone(pid, t)
  for i = 1, math.floor(t / 0.02) do
    if not alive(pid) then return true end
    sleep(i < 10 and 0.01 or 0.02)
  end
  return not alive(pid)
end

local function end_watcher(self)
  if self.watch_pid and alive(self.watch_pid) then
    run("kill -KILL " .. self.watch_pid .. " 2>/dev/null")
  end
  self.watch_pid = nil
end

function Server:kill()
  if self.pid and alive(self.pid) then
    run("kill -KILL " .. self.pid .. " 2>/dev/null")
    wait_gone(self.pid, 2)
  end
  end_watcher(self)
end

function Server:pause()
  run("kill -STOP " .. self.pid .. " 2>/dev/null")
end

function Server:resume()
  run("kill -CONT " .. self.pid .. " 2>/dev/null")
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  running[self] = nil
  if self.pid and alive(self.pid) then
    self:resume()
    run("kill -TERM " .. self.pid .. " 2>/dev/null")
    if not wait_gone(self.pid, 5) then self:kill() end
  end
  end_watcher(self)
  if self.dir then run("rm -rf " .. q(self.dir)) end
end

-- Starts the server again on the same port, empty (after kill() or stop();
-- after stop() it gets a fresh dir, and a TLS server a fresh CA: read r.ca_file again).
function Server:restart()
  self:kill()
  if self.stopped then
    self.stopped = false
    make_dir(self)
  end
  running[self] = true
  local ok, log
  for _ = 1, 50 do                        -- the port may linger a moment after a kill
    ok, log = launch(self)
    if ok or not (log or ""):match("[Aa]ddress already in use") then break end
    self:kill()
    sleep(0.1)
  end
  if not ok then error("spec.support.redis: restart failed: " .. tostring(log), 2) end
  return self
end

function M.stop_all()
  local list = {}
  for s in pairs(running) do list[#list + 1] = s end
  for _, s in ipairs(list) do s:stop() end
end

return M
