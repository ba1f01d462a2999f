-- spec/support/nginx.lua - start/stop nginx with the lua module (Debian's
-- nginx + libnginx-mod-http-lua, OpenResty's LuaJIT inside) on a temporary
-- prefix, from busted specs.  Lua 5.1/LuaJIT/5.4; needs only io and os (plus
-- sh, ps, kill, sleep, mktemp, rm, id and curl on the machine) and
-- spec/support/mock.lua's helpers.
--
--   local nginx = require "spec.support.nginx"
--   if not nginx.available() then ... end    -- false, reason when missing
--   if not nginx.required(it, "my spec") then return end  -- inside a describe
--   local n = nginx.start{
--     workers = 2,                           -- worker_processes (default 1)
--     shared_dicts = { llmrelay = "10m" },   -- lua_shared_dict lines
--     http = [[ server { listen 127.0.0.1:$PORT; ... } ]],  -- http-block text
--     ports = 2,                             -- $PORT, $PORT2 ... (default 1)
--     init = [[ lua ]],                      -- init_by_lua code (optional)
--     init_worker = [[ lua ]],               -- init_worker_by_lua code (optional)
--     env = { "LLMRELAY_TEST_KEY", "OTHER=value", THIRD = "value" },  -- `env`
--                                            -- directives (nginx clears the rest)
--     main = [[ main-context text ]],        -- optional, e.g. timer_resolution
--     log_level = "warn",                    -- error_log level (default warn)
--     memory_limit_mb = 1024,                -- optional: `ulimit -v` of nginx and
--                                            -- its workers, so a runaway worker
--                                            -- fails its allocations instead of
--                                            -- eating the machine
--   }
--   n.port, n.ports[i]     -- the ports picked ($PORT is n.ports[1])
--   n.base                 -- "http://127.0.0.1:<port>"
--   n.prefix, n.pid        -- the temporary prefix, the master's PID
--   n.conf                 -- the generated nginx.conf's text
--   n:error_log()          -- the error log's text so far
--   n:worker_pids()        -- the worker PIDs, sorted (children of the master)
--   n:stop()               -- QUIT, wait, TERM, KILL (master and workers, by
--                          -- PID), remove the prefix; idempotent
--   nginx.stop_all()       -- stop every nginx started by this module
--   nginx.curl(url, {method=, body=, headers={}, timeout=}) -> status, body
--
-- "$PORT", "$PORT2" ... are replaced in http, init and init_worker by the
-- ports picked.  When http never uses $PORT the harness's own server listens
-- on it (it answers 404).  start() returns once a worker answers an HTTP
-- request on a port of the harness's own (n.probe_port, so that the probe
-- never reaches the caller's locations) and all the workers exist, or fails
-- with the error log's text within about 5 s.
-- The init and init_worker code is written to files in the prefix and loaded
-- with init_by_lua_file / init_worker_by_lua_file.
-- Run as root, the workers run as root too (`user root;`), so that they read
-- the repo and write the prefix (mktemp -d makes it 0700).
-- A watchdog shell stops nginx and removes the prefix if this Lua process dies
-- without calling stop() (nginx has no --parent-pid).
-- LLMRELAY_NGINX_KEEP=1 keeps the prefixes (conf and logs) after stop().

local mock = require "spec.support.mock"

local q, run, capture, read_file, alive =
  mock.quote, mock.run, mock.capture, mock.read_file, mock.alive

local M = {}
M.modules_dir = os.getenv("NGINX_MODULES_DIR") or "/usr/lib/nginx/modules"
M.modules = { "ndk_http_module.so", "ngx_http_lua_module.so" }   -- load order
M.lua_dir = "/usr/share/lua/5.1"                      -- lua-resty-core
M.lua_cdir = "/usr/lib/x86_64-linux-gnu/lua/5.1"      -- lua-cjson for 5.1

local running = {}   -- [nginx object] = true
local Nginx = {}
Nginx.__index = Nginx

local function sleep(s) run("sleep " .. s) end

local function trim(s) return ((s or ""):match("^%s*(.-)%s*$")) end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- the repo root, absolute: two folders above this file
local function find_repo()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/[^/]*$") or "."
  local root = trim(capture("cd " .. q(dir .. "/../..") .. " && pwd -P"))
  if root == "" then error("nginx.lua: cannot find the repo root from " .. src) end
  return root
end
M.repo = find_repo()

local function find_bin()
  local env = os.getenv("NGINX_BIN")
  if env and env ~= "" then return env end
  -- /usr/sbin is not on a non-root user's PATH on Debian
  local p = trim(capture("command -v nginx 2>/dev/null"))
  if p ~= "" then return p end
  if exists("/usr/sbin/nginx") then return "/usr/sbin/nginx" end
  return nil
end

-- true, or false and why not
function M.available()
  local bin = find_bin()
  if not bin then
    return false, "nginx not found (apt-get install nginx libnginx-mod-http-lua)"
  end
  for _, mod in ipairs(M.modules) do
    if not exists(M.modules_dir .. "/" .. mod) then
      return false, M.modules_dir .. "/" .. mod ..
        " not found (apt-get install libnginx-mod-http-lua)"
    end
  end
  if not exists(M.lua_dir .. "/resty/core.lua") then
    return false, M.lua_dir .. "/resty/core.lua not found (apt-get install lua-resty-core)"
  end
  if not exists(M.lua_cdir .. "/cjson.so") then
    return false, M.lua_cdir .. "/cjson.so not found (apt-get install lua-cjson)"
  end
  return true
end

-- Inside a describe: true when nginx with the lua module is here; else it
-- registers a test that fails saying why (CI must install it), and the
-- caller returns. `it` is busted's, passed in from the spec.
function M.required(it, name)
  local ok, why = M.available()
  if ok then return true end
  it("needs nginx with the lua module", function()
    error(name .. ": " .. tostring(why) .. "; CI must install it", 0)
  end)
  return false
end

local lua_pid = mock.lua_pid

local is_root
local function root()
  if is_root == nil then is_root = trim(capture("id -u")) == "0" end
  return is_root
end

-- children of pid (any kind: workers, cache manager ...)
local function children(pid)
  local list = {}
  for line in (capture("ps -o pid=,args= --ppid " .. pid .. " 2>/dev/null") or "")
      :gmatch("[^\n]+") do
    local p, args = line:match("^%s*(%d+)%s+(.*)$")
    if p then list[#list + 1] = { pid = tonumber(p), args = args } end
  end
  return list
end

-- true when pid is alive and still an nginx process (guards against PID reuse)
local function alive_nginx(pid)
  if not alive(pid) then return false end
  local cmd = read_file("/proc/" .. pid .. "/cmdline") or ""
  return cmd:find("nginx", 1, true) ~= nil
end

local function wait_gone(pids, seconds)
  local steps = math.floor(seconds / 0.02)
  for i = 1, steps do
    local any = false
    for _, p in ipairs(pids) do
      if alive_nginx(p) then any = true break end
    end
    if not any then return true end
    sleep(i < 10 and 0.01 or 0.02)
  end
  return false
end

-- curl(url, {method=, body=, headers={}, timeout=}) -> status (number or
-- nil when no HTTP answer), body, curl's exit code
function M.curl(url, o)
  o = o or {}
  local bf, df = os.tmpname(), nil
  local cmd = { "curl -s -o", q(bf), "-w '%{http_code}' --max-time", o.timeout or 5 }
  if o.method then cmd[#cmd + 1] = "-X " .. q(o.method) end
  for _, h in ipairs(o.headers or {}) do cmd[#cmd + 1] = "-H " .. q(h) end
  if o.body then
    df = os.tmpname()
    write_file(df, o.body)
    cmd[#cmd + 1] = "--data-binary @" .. q(df)
  end
  cmd[#cmd + 1] = q(url) .. "; echo \" $?\""
  local out = capture(table.concat(cmd, " ")) or ""
  local code, rc = out:match("(%d+)%s+(%d+)%s*$")
  local body = read_file(bf) or ""
  os.remove(bf)
  if df then os.remove(df) end
  code = tonumber(code)
  if code == 0 then code = nil end
  return code, body, tonumber(rc)
end

local function pick_ports(n)
  local ports, seen = {}, {}
  while #ports < n do
    local p = mock.free_port()
    if not seen[p] then
      seen[p] = true
      ports[#ports + 1] = p
    end
  end
  return ports
end

local PROBE = "/__llmrelay_nginx_harness"

-- a double-quoted nginx.conf string
local function cq(s)
  return '"' .. (tostring(s):gsub('[\\"]', "\\%0")) .. '"'
end

local function build_conf(self, opts)
  local prefix, ports = self.prefix, self.ports
  local used = {}
  local function subst(text, what)
    if text == nil then return nil end
    return (text:gsub("%$PORT(%d*)", function(d)
      local i = d == "" and 1 or tonumber(d)
      if not ports[i] then
        error(string.format("nginx.start: %s uses $PORT%s but ports = %d",
          what, d, #ports), 0)
      end
      used[i] = true
      return tostring(ports[i])
    end))
  end
  local http = subst(opts.http or "", "http")
  local init = subst(opts.init, "init")
  local init_worker = subst(opts.init_worker, "init_worker")
  local main = subst(opts.main, "main")

  local L = {}
  local function add(...) L[#L + 1] = table.concat({ ... }) end
  add("# generated by spec/support/nginx.lua")
  for _, mod in ipairs(M.modules) do
    add("load_module ", cq(M.modules_dir .. "/" .. mod), ";")
  end
  add("daemon off;")               -- started in the background: $! is the master
  add("master_process on;")
  if root() then add("user root;") end
  add("worker_processes ", tostring(opts.workers or 1), ";")
  add("worker_shutdown_timeout 2s;")
  add("pid ", cq(prefix .. "/logs/nginx.pid"), ";")
  add("lock_file ", cq(prefix .. "/logs/nginx.lock"), ";")
  add("error_log ", cq(self.error_log_file), " ", opts.log_level or "warn", ";")
  local env = opts.env or {}
  for _, e in ipairs(env) do add("env ", cq(e), ";") end
  local keys = {}
  for k in pairs(env) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do add("env ", cq(k .. "=" .. tostring(env[k])), ";") end
  if main then add(main) end
  add("events { worker_connections 1024; }")
  add("http {")
  add("  access_log off;")
  for _, t in ipairs{ "client_body", "proxy", "fastcgi", "uwsgi", "scgi" } do
    add("  ", t, "_temp_path ", cq(prefix .. "/tmp/" .. t), ";")
  end
  local r = M.repo
  add("  lua_package_path ", cq(r .. "/lua/?.lua;" .. r .. "/lua/?/init.lua;" ..
      r .. "/?.lua;" .. M.lua_dir .. "/?.lua;;"), ";")
  add("  lua_package_cpath ", cq(r .. "/build/luajit/?.so;" .. M.lua_cdir .. "/?.so;;"), ";")
  local dicts = {}
  for name in pairs(opts.shared_dicts or {}) do dicts[#dicts + 1] = name end
  table.sort(dicts)
  for _, name in ipairs(dicts) do
    add("  lua_shared_dict ", name, " ", tostring(opts.shared_dicts[name]), ";")
  end
  if init then
    write_file(prefix .. "/lua/init.lua", init)
    add("  init_by_lua_file ", cq(prefix .. "/lua/init.lua"), ";")
  end
  if init_worker then
    write_file(prefix .. "/lua/init_worker.lua", init_worker)
    add("  init_worker_by_lua_file ", cq(prefix .. "/lua/init_worker.lua"), ";")
  end
  -- the harness's own server: start() probes it, never the caller's servers
  add("  server {")
  add("    listen 127.0.0.1:", tostring(self.probe_port), ";")
  if not used[1] then add("    listen 127.0.0.1:", tostring(ports[1]), ";") end
  add("    location = ", PROBE, " { return 204; }")
  add("    location / { return 404; }")
  add("  }")
  add(http)
  add("}")
  return table.concat(L, "\n") .. "\n"
end

-- stops nginx (QUIT, TERM, KILL) and removes the prefix once this Lua
-- process is gone; exits by itself as soon as nginx is gone
local function start_watchdog(self)
  local me = lua_pid()
  if not me then return nil end
  local script = table.concat({
    "alive() { s=$(cat /proc/$1/stat 2>/dev/null) || return 1; s=${s##*) };" ..
      " case $s in Z*|X*) return 1;; esac; return 0; }",
    "while alive %d && alive %d; do sleep 1; done",
    "alive %d && exit 0",
    "w=$(ps -o pid= --ppid %d 2>/dev/null)",
    "kill -QUIT %d 2>/dev/null",
    "i=0; while alive %d && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done",
    "kill -KILL %d $w 2>/dev/null",
    "rm -rf %s",
  }, "\n")
  local pid = self.pid
  script = string.format(script, me, pid, me, pid, pid, pid, pid, q(self.prefix))
  return tonumber((capture("sh -c " .. q(script) ..
    " >/dev/null 2>&1 </dev/null & echo $!") or ""):match("%d+"))
end

function M.start(opts)
  opts = opts or {}
  local ok, why = M.available()
  if not ok then error("nginx.start: " .. why, 2) end
  local bin = find_bin()

  local prefix = trim(capture("mktemp -d /tmp/llmrelay-nginx.XXXXXX 2>/dev/null"))
  if prefix == "" then error("nginx.start: mktemp -d failed", 2) end
  if not run("mkdir -p " .. q(prefix .. "/conf") .. " " .. q(prefix .. "/logs") ..
             " " .. q(prefix .. "/tmp") .. " " .. q(prefix .. "/lua")) then
    run("rm -rf " .. q(prefix))
    error("nginx.start: mkdir in " .. prefix .. " failed", 2)
  end

  local ports = pick_ports((opts.ports or 1) + 1)
  local self = setmetatable({
    prefix = prefix,
    probe_port = table.remove(ports),
    ports = ports,
    port = ports[1],
    workers = opts.workers or 1,
    error_log_file = prefix .. "/logs/error.log",
    stderr_file = prefix .. "/logs/stderr.log",
  }, Nginx)
  self.base = "http://127.0.0.1:" .. self.port

  local okc, conf = pcall(build_conf, self, opts)
  if not okc then
    run("rm -rf " .. q(prefix))
    error(conf, 2)
  end
  self.conf = conf
  self.conf_file = prefix .. "/conf/nginx.conf"
  write_file(self.conf_file, conf)

  -- -e: the errors of startup (before error_log is read) go to the same file
  -- The limit is set in a shell of its own that then becomes nginx (same PID),
  -- without LD_PRELOAD: `spec/run --asan` preloads libasan, whose shadow memory
  -- alone passes any such limit, and nginx loads the LuaJIT core, not the ASan one.
  local limit = opts.memory_limit_mb and
    string.format([[env -u LD_PRELOAD sh -c 'ulimit -v %d && exec "$0" "$@"' ]],
                  math.floor(opts.memory_limit_mb * 1024)) or ""
  local cmd = string.format("cd %s && %s%s -p %s -c %s -e %s >%s 2>&1 </dev/null & echo $!",
    q(prefix), limit, q(bin), q(prefix .. "/"), q(self.conf_file), q(self.error_log_file),
    q(self.stderr_file))
  local pid = tonumber((capture(cmd) or ""):match("%d+"))
  if not pid then
    run("rm -rf " .. q(prefix))
    error("nginx.start: could not start " .. bin, 2)
  end
  self.pid = pid
  running[self] = true
  self.watchdog = start_watchdog(self)

  local ready = false
  local probe = "http://127.0.0.1:" .. self.probe_port .. PROBE
  for i = 1, 250 do                       -- ~5 s
    if not alive(pid) then break end
    local status = M.curl(probe, { timeout = 1 })
    if status == 204 then ready = true break end
    sleep(i < 10 and 0.01 or 0.02)
  end
  local want = tonumber(opts.workers or 1)
  if ready and want then
    ready = false
    for _ = 1, 250 do
      if #self:worker_pids() >= want then ready = true break end
      if not alive(pid) then break end
      sleep(0.02)
    end
  end
  if not ready then
    local text = self:error_log() .. (read_file(self.stderr_file) or "")
    self:stop()
    error("nginx.start: nginx did not start (" .. cmd .. "):\n" .. text ..
          "\n--- nginx.conf:\n" .. conf, 2)
  end
  return self
end

function Nginx:error_log()
  return read_file(self.error_log_file) or self.final_error_log or ""
end

function Nginx:worker_pids()
  local list = {}
  for _, c in ipairs(children(self.pid)) do
    if c.args:find("worker process", 1, true) then list[#list + 1] = c.pid end
  end
  table.sort(list)
  return list
end

function Nginx:stop()
  if self.stopped then return end
  self.stopped = true
  running[self] = nil
  if self.watchdog and alive(self.watchdog) then
    run("kill -TERM " .. self.watchdog .. " 2>/dev/null")
  end
  local pids = { self.pid }
  if alive_nginx(self.pid) then
    for _, c in ipairs(children(self.pid)) do pids[#pids + 1] = c.pid end
    -- graceful first (worker_shutdown_timeout 2s bounds it), then fast, then KILL
    run("kill -QUIT " .. self.pid .. " 2>/dev/null")
    if not wait_gone({ self.pid }, 4) then
      run("kill -TERM " .. self.pid .. " 2>/dev/null")
      if not wait_gone({ self.pid }, 2) then
        run("kill -KILL " .. self.pid .. " 2>/dev/null")
        wait_gone({ self.pid }, 1)
      end
    end
  end
  -- a master that died (or was killed) leaves its workers running
  local left = {}
  for _, p in ipairs(pids) do
    if alive_nginx(p) then left[#left + 1] = p end
  end
  if #left > 0 then
    run("kill -KILL " .. table.concat(left, " ") .. " 2>/dev/null")
    wait_gone(left, 1)
  end
  self.final_error_log = read_file(self.error_log_file) or ""
  if not os.getenv("LLMRELAY_NGINX_KEEP") then run("rm -rf " .. q(self.prefix)) end
end

function M.stop_all()
  local list = {}
  for n in pairs(running) do list[#list + 1] = n end
  for _, n in ipairs(list) do n:stop() end
end

return M
