-- The nginx harness (spec/support/nginx.lua): Debian's nginx with the lua
-- module on a temporary prefix, as the OpenResty specs will use it.
-- Run from the repo root: busted --lua=lua5.4 spec/nginx_harness_spec.lua
local cjson = require "cjson"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"

local q, capture, alive = mock.quote, mock.capture, mock.alive

local function file_exists(path)
  return mock.run("test -e " .. q(path))
end

describe("nginx harness", function()
  if not nginx.required(it, "nginx harness") then return end

  local n
  after_each(function()
    if n then n:stop() end
    n = nil
  end)
  teardown(nginx.stop_all)

  it("serves a content_by_lua_block, with the env directive and the error log", function()
    n = nginx.start{
      env = { "LLMRELAY_HARNESS_A=alpha" },
      http = [[
        server {
          listen 127.0.0.1:$PORT;
          location = /hello {
            content_by_lua_block {
              ngx.log(ngx.WARN, "harness-marker ", ngx.var.arg_x)
              ngx.say("hello from ", jit and jit.version or _VERSION,
                      " env=", os.getenv("LLMRELAY_HARNESS_A"))
            }
          }
        }
      ]],
    }
    assert.is_number(n.port)
    assert.equal("http://127.0.0.1:" .. n.port, n.base)
    assert.is_true(alive(n.pid))
    local status, body = nginx.curl(n.base .. "/hello?x=42")
    assert.equal(200, status)
    assert.matches("^hello from LuaJIT 2%.1", body)
    assert.matches("env=alpha\n$", body)
    assert.matches("%[warn%].-harness%-marker 42", n:error_log())
    status = nginx.curl(n.base .. "/nothing")
    assert.equal(404, status)
  end)

  it("puts the error of a Lua handler in the error log (yield across a C call)", function()
    n = nginx.start{
      http = [[
        server {
          listen 127.0.0.1:$PORT;
          location = /yield {
            content_by_lua_block {
              -- LuaJIT's table.sort calls the comparator from C
              table.sort({ 3, 2, 1 }, function(a, b) ngx.sleep(0) return a < b end)
              ngx.say("not reached")
            }
          }
        }
      ]],
    }
    local status = nginx.curl(n.base .. "/yield")
    assert.equal(500, status)
    assert.matches("%[error%].-attempt to yield across C%-call boundary", n:error_log())
  end)

  it("substitutes $PORT, $PORT2 ... and init / init_worker run", function()
    n = nginx.start{
      ports = 2,
      shared_dicts = { h = "1m" },
      init = [[ HARNESS_INIT = "init ran on $PORT" ]],
      init_worker = [[ ngx.shared.h:incr("workers", 1, 0) ]],
      http = [[
        server {
          listen 127.0.0.1:$PORT;
          location / { content_by_lua_block { ngx.say("one ", HARNESS_INIT) } }
        }
        server {
          listen 127.0.0.1:$PORT2;
          location / {
            content_by_lua_block { ngx.say("two ", ngx.shared.h:get("workers")) }
          }
        }
      ]],
    }
    assert.equal(2, #n.ports)
    assert.equal(n.port, n.ports[1])
    assert.are_not.equal(n.ports[1], n.ports[2])
    local s1, b1 = nginx.curl(n.base .. "/")
    local s2, b2 = nginx.curl("http://127.0.0.1:" .. n.ports[2] .. "/")
    assert.equal(200, s1)
    assert.equal("one init ran on " .. n.port .. "\n", b1)
    assert.equal(200, s2)
    assert.equal("two 1\n", b2)
    assert.has_error(function()
      nginx.start{ http = "server { listen 127.0.0.1:$PORT3; }" }
    end)
  end)

  it("runs 2 workers as 2 processes that share a lua_shared_dict", function()
    n = nginx.start{
      workers = 2,
      shared_dicts = { llmrelay = "1m" },
      -- reuseport: the kernel spreads new connections over both workers
      http = [[
        server {
          listen 127.0.0.1:$PORT reuseport;
          location = /incr {
            content_by_lua_block {
              local v = assert(ngx.shared.llmrelay:incr("hits", 1, 0))
              ngx.say(ngx.worker.pid(), " ", v)
            }
          }
          location = /get {
            content_by_lua_block { ngx.say(ngx.shared.llmrelay:get("hits")) }
          }
        }
      ]],
    }
    local workers = n:worker_pids()
    assert.equal(2, #workers)
    for _, p in ipairs(workers) do
      assert.is_true(alive(p))
      assert.are_not.equal(n.pid, p)
    end

    -- 40 requests, one connection each, from one curl process
    local N = 40
    local urls = {}
    for i = 1, N do urls[i] = q(n.base .. "/incr") end
    local out = capture("curl -s --max-time 10 -H 'Connection: close' " ..
      table.concat(urls, " "))
    local seen, by_pid, count = {}, {}, 0
    for pid, v in out:gmatch("(%d+) (%d+)\n") do
      pid, v = tonumber(pid), tonumber(v)
      count = count + 1
      assert.is_nil(seen[v], "value " .. v .. " counted twice: " .. out)
      seen[v] = true
      by_pid[pid] = (by_pid[pid] or 0) + 1
    end
    assert.equal(N, count)
    for v = 1, N do assert.is_true(seen[v], "value " .. v .. " missing") end
    -- both workers served, and no one else
    for pid in pairs(by_pid) do
      assert.is_true(pid == workers[1] or pid == workers[2], "pid " .. pid)
    end
    assert.is_number(by_pid[workers[1]], out)
    assert.is_number(by_pid[workers[2]], out)
    local _, total = nginx.curl(n.base .. "/get")
    assert.equal(tostring(N) .. "\n", total)
  end)

  it("loads lua-cjson and the repo's Lua path inside nginx", function()
    n = nginx.start{
      http = [[
        server {
          listen 127.0.0.1:$PORT;
          location = /json {
            content_by_lua_block {
              local cjson = require "cjson"
              local t = cjson.decode('{"a":[1,2,3],"b":"x"}')
              ngx.say(cjson.encode({
                sum = t.a[1] + t.a[2] + t.a[3], b = t.b,
                cjson = package.searchpath("cjson", package.cpath),
                mock = package.searchpath("spec.support.mock", package.path),
                lua_version = ngx.config.ngx_lua_version,
              }))
            }
          }
        }
      ]],
    }
    local status, body = nginx.curl(n.base .. "/json")
    assert.equal(200, status, body)
    local j = cjson.decode(body)
    assert.equal(6, j.sum)
    assert.equal("x", j.b)
    assert.equal(nginx.lua_cdir .. "/cjson.so", j.cjson)
    assert.equal(nginx.repo .. "/spec/support/mock.lua", j.mock)
    assert.is_true(j.lua_version >= 10000)
  end)

  it("stop() leaves no process and no prefix behind, and is idempotent", function()
    n = nginx.start{ workers = 2 }
    local pids = n:worker_pids()
    assert.equal(2, #pids)
    pids[#pids + 1] = n.pid
    local prefix = n.prefix
    assert.is_true(file_exists(prefix .. "/conf/nginx.conf"))
    -- the harness's own server answers on $PORT when http does not use it
    assert.equal(404, (nginx.curl(n.base .. "/")))
    n:stop()
    for _, p in ipairs(pids) do
      assert.is_false(alive(p), "pid " .. p .. " still alive")
    end
    assert.is_false(file_exists(prefix))
    assert.is_nil(nginx.curl(n.base .. "/", { timeout = 2 }))
    n:stop()
  end)

  it("fails with the error log's text when nginx does not start", function()
    -- (other nginx of other spec runs may be alive: only new ones count)
    local function running()
      local set = {}
      for line in capture("ps -eo pid=,stat=,args= | grep '[l]lmrelay-nginx' | grep -v ' Z'"):gmatch("[^\n]+") do
        set[line] = true
      end
      return set
    end
    local before = running()
    local ok, err = pcall(nginx.start, { http = "bogus_directive on;" })
    assert.is_false(ok)
    assert.matches("did not start", err)
    assert.matches("unknown directive \"bogus_directive\"", err)
    for line in pairs(running()) do
      assert.is_true(before[line], "left running: " .. line)
    end
  end)
end)
