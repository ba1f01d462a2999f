-- Hostile upstreams (issue 12, "Done when"): the mock's framing abuses
-- (build/mock-llm --abuse, tools/mock_abuse.c) against both executors, with
-- timeout = {first_byte = 3, idle = 3, total = 6} and max_attempts = 1:
--   * the libcurl client, each case in its own lua5.4 process (so its peak
--     RSS, VmHWM, is its own), all cases at once;
--   * the gateway in real nginx with 2 workers, under `ulimit -v` 1 GiB so
--     a runaway worker cannot eat the machine: chunk-size-endless alone (the
--     one that used to kill a worker), then the three slow abuses at once.
-- Each ends with an error within 9 s, no worker dies, and no process's peak
-- RSS reaches 400 MB.  Run from the repo root (make && make LUA=luajit first):
--   busted --lua=lua5.4 spec/hostile_spec.lua
local cjson = require "cjson"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"
local now = require("llmrelay.core").now

local q, capture, read_file = mock.quote, mock.capture, mock.read_file

local FRAMING = { "chunk-size-endless", "headers-drip", "continue-endless", "trailers-endless" }
local LIMIT_S = 9                -- seconds to an error (timeout.total is 6)
local LIMIT_KB = 400 * 1024      -- peak RSS of a client process or a worker
local NGINX_MEMORY_MB = 1024     -- ulimit -v of the nginx under test
local KEY = "sk-hostile-SECRET"  -- the upstream key: never in an error

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function hwm_kb(pid)
  local s = read_file("/proc/" .. pid .. "/status")
  return s and tonumber(s:match("VmHWM:%s*(%d+)"))
end

local function ident(mode) return (mode:gsub("-", "_")) end

---------------------------------------------------------------------------
-- The libcurl client: one child process per abuse, all at once.

local CHILD = [[
local cjson = require "cjson"
local llmrelay = require "llmrelay"
local now = require("llmrelay.core").now
local c = llmrelay.new{
  endpoints = { { name = "hostile", base_url = arg[1], api_key = arg[2] } },
  timeout = { first_byte = 3, idle = 3, total = 6 }, retry = { max_attempts = 1 } }
local t0 = now()
local resp, err = c:chat_completion{ model = "m", messages = { { role = "user", content = "hi" } } }
local elapsed = now() - t0
local f = io.open("/proc/self/status")
local status = f:read("a")
f:close()
io.write(cjson.encode{ ok = resp ~= nil, elapsed = elapsed,
  kind = err and err.kind, status = err and err.status, message = err and err.message,
  text = err and tostring(err), hwm_kb = tonumber(status:match("VmHWM:%s*(%d+)")) }, "\n")
]]

describe("hostile upstreams: the libcurl client", function()
  local mocks, results = {}, nil
  teardown(function()
    for _, m in pairs(mocks) do m:stop() end
  end)

  -- every case at once; each child is killed after 30 s whatever happens
  local function run_all()
    if results then return results end
    local dir = (capture("mktemp -d /tmp/llmrelay-hostile.XXXXXX") or ""):match("^%s*(.-)%s*$")
    assert(dir ~= "", "mktemp -d failed")
    write_file(dir .. "/child.lua", CHILD)
    local modes, cmds = { table.unpack(FRAMING) }, {}
    modes[#modes + 1] = "header-line-huge"
    for _, mode in ipairs(modes) do
      mocks[mode] = mock.start{ name = ident(mode), abuse = mode }
      cmds[#cmds + 1] = ("LUA_PATH=%s LUA_CPATH=%s timeout -s KILL 30 lua5.4 %s %s %s >%s 2>&1 &")
        :format(q("./?.lua;lua/?.lua;lua/?/init.lua;;"), q("build/lua5.4/?.so;;"),
                q(dir .. "/child.lua"), q(mocks[mode].url), q(KEY), q(dir .. "/" .. mode))
    end
    capture(table.concat(cmds, " ") .. " wait")
    results = {}
    for _, mode in ipairs(modes) do
      local out = read_file(dir .. "/" .. mode) or ""
      local ok, v = pcall(cjson.decode, out:match("[^\n]*\n?$") or "")
      results[mode] = ok and type(v) == "table" and v or { crashed = out }
      mocks[mode]:stop()
    end
    mock.run("rm -rf " .. q(dir))
    return results
  end

  local function check(mode)
    local r = run_all()[mode]
    assert.is_nil(r.crashed, "the client process printed no result: " .. tostring(r.crashed))
    local what = ("%s: %s after %.2f s, peak RSS %d kB"):format(mode, tostring(r.text), r.elapsed, r.hwm_kb)
    print("\n" .. what)
    assert.is_false(r.ok, what)
    assert.is_string(r.message, what)
    assert.is_true(r.elapsed < LIMIT_S, what)
    assert.is_true(r.hwm_kb < LIMIT_KB, what)
    assert.is_nil(r.text:find(KEY, 1, true), what)
    assert.is_nil(r.text:find("Out of memory", 1, true), what)
    return r
  end

  for _, mode in ipairs(FRAMING) do
    it(mode .. ": an error within 9 s, peak RSS < 400 MB", function()
      local r = check(mode)
      local kinds = { timeout = true, http = true, connect = true }
      assert.is_true(kinds[r.kind] ~= nil, "kind " .. tostring(r.kind))
    end)
  end

  it("header-line-huge: an http error naming the header-size limit, not 'connect: Out of memory'", function()
    local r = check("header-line-huge")
    assert.equal("http", r.kind)
    assert.is_truthy(r.message:find("header line over libcurl's limit of 100 KB", 1, true), r.message)
  end)
end)

---------------------------------------------------------------------------
-- The gateway in real nginx, 2 workers.


describe("hostile upstreams: the gateway in nginx", function()
  if not nginx.required(it, "hostile spec") then return end

  local n, mocks = nil, {}
  local phases = {}

  setup(function()
    local ups = {}
    for _, mode in ipairs(FRAMING) do
      mocks[mode] = mock.start{ name = ident(mode), abuse = mode }
      ups[#ups + 1] = ("[%q] = %q"):format(ident(mode), mocks[mode].url)
    end
    n = nginx.start{
      workers = 2,
      memory_limit_mb = NGINX_MEMORY_MB,
      shared_dicts = { llmrelay = "4m" },
      init = ([[
        local llmrelay = require "llmrelay"
        clients = {}
        for name, url in pairs{ %s } do
          clients[name] = llmrelay.new{ name = name, shared_dict = "llmrelay",
            timeout = { first_byte = 3, idle = 3, total = 6 }, retry = { max_attempts = 1 },
            endpoints = { { name = name, base_url = url, api_key = %q } } }
        end
        gw_opts = { keys = { "gw-hostile-key" } }
      ]]):format(table.concat(ups, ", "), KEY),
      http = [[
        lua_socket_log_errors off;
        server {
          listen 127.0.0.1:$PORT;
          location ~ ^/(?<abuse>[a-z_]+)/ {
            content_by_lua_block {
              require("llmrelay.resty.gateway").serve(clients[ngx.var.abuse], gw_opts)
            }
          }
        }
      ]],
    }
  end)

  teardown(function()
    if n then n:stop() end
    for _, m in pairs(mocks) do m:stop() end
  end)

  -- the modes at once, each a curl to the gateway -> [mode] = {status, time, body}
  local function requests(modes)
    local dir = (capture("mktemp -d /tmp/llmrelay-hostile.XXXXXX") or ""):match("^%s*(.-)%s*$")
    assert(dir ~= "", "mktemp -d failed")
    local body = cjson.encode{ model = "m", messages = { { role = "user", content = "hi" } } }
    write_file(dir .. "/body", body)
    local cmds = {}
    for _, mode in ipairs(modes) do
      cmds[#cmds + 1] = ("curl -s --max-time 15 -H 'Authorization: Bearer gw-hostile-key' " ..
        "-H 'Content-Type: application/json' --data-binary @%s -o %s -w '%%{http_code} %%{time_total}' %s >%s &")
        :format(q(dir .. "/body"), q(dir .. "/" .. mode .. ".body"),
                q(n.base .. "/" .. ident(mode) .. "/v1/chat/completions"), q(dir .. "/" .. mode .. ".w"))
    end
    capture(table.concat(cmds, " ") .. " wait")
    local res = {}
    for _, mode in ipairs(modes) do
      local code, t = (read_file(dir .. "/" .. mode .. ".w") or ""):match("(%d+) ([%d.]+)")
      res[mode] = { status = tonumber(code) ~= 0 and tonumber(code) or nil, time = tonumber(t),
                    body = read_file(dir .. "/" .. mode .. ".body") or "" }
    end
    mock.run("rm -rf " .. q(dir))
    return res
  end

  -- a phase runs once; after it: the workers it began with (alive? peak
  -- RSS), the workers now, what it added to the error log
  local function phase(name, modes)
    if phases[name] then return phases[name] end
    local before, log_at = n:worker_pids(), #n:error_log()
    local res = requests(modes)
    local list = {}
    for _, pid in ipairs(before) do
      list[#list + 1] = { pid = pid, alive = mock.alive(pid), hwm_kb = hwm_kb(pid) }
    end
    phases[name] = { res = res, before = before, workers = list, now = n:worker_pids(),
                     log = n:error_log():sub(log_at + 1) }
    return phases[name]
  end

  local function check(name, modes, mode)
    local p = phase(name, modes)
    local r = p.res[mode]
    local rss = {}
    for _, w in ipairs(p.workers) do
      rss[#rss + 1] = ("%d: %s, peak RSS %s kB"):format(w.pid, w.alive and "alive" or "GONE", tostring(w.hwm_kb))
    end
    local what = ("%s via the gateway: %s after %s s (%s); workers %s"):format(mode, tostring(r.status),
      tostring(r.time), (r.body:sub(1, 200):gsub("%s+", " ")), table.concat(rss, "; "))
    print("\n" .. what)
    assert.is_number(r.status, what)
    assert.is_true(r.status >= 500, what)
    local ok, doc = pcall(cjson.decode, r.body)
    assert.is_true(ok and type(doc) == "table" and type(doc.error) == "table", what)
    assert.is_true(r.time < LIMIT_S, what)
    assert.is_nil(r.body:find(KEY, 1, true), what)
    for _, w in ipairs(p.workers) do
      assert.is_true(w.alive, what)
      assert.is_true(w.hwm_kb ~= nil and w.hwm_kb < LIMIT_KB, what)
    end
    assert.same(p.before, p.now, what)
    for _, bad in ipairs{ "exited on signal", "atpanic", "stack smashing", "not enough memory" } do
      assert.is_nil(p.log:find(bad, 1, true), "the error log says '" .. bad .. "':\n" .. p.log:sub(-3000))
    end
  end

  it("chunk-size-endless: an error answer within 9 s, no worker dies, peak RSS < 400 MB", function()
    check("alone", { "chunk-size-endless" }, "chunk-size-endless")
  end)

  local slow = { "headers-drip", "continue-endless", "trailers-endless" }
  for _, mode in ipairs(slow) do
    it(mode .. ": an error answer within 9 s, no worker dies, peak RSS < 400 MB", function()
      check("slow", slow, mode)
    end)
  end
end)
