-- The executor interface (lua/llmrelay/executor.lua): both executors have
-- the same face, init.lua never asks which one it has, and no module reaches
-- into the client's private fields.
local executor = require "llmrelay.executor"
local mock = require "spec.support.mock"

local FACE = { "submit", "wait", "step", "stream_take", "cancel", "pending", "status", "on_events", "events",
               "close" }

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function lua_files()
  local list = {}
  local p = assert(io.popen("find lua -name '*.lua' | sort"))
  for line in p:lines() do list[#list + 1] = line end
  p:close()
  return list
end

describe("executor", function()
  after_each(function() mock.stop_all() end)

  local cfg = require("llmrelay.config").validate { endpoints = { { base_url = "http://127.0.0.1:9/v1", name = "a" } } }

  it("the libcurl executor has every method of the interface", function()
    local x = executor.curl(cfg)
    for _, m in ipairs(FACE) do assert.is_function(x[m], m) end
    x:close()
    x:close()
    assert.equal(0, x:pending())
  end)

  it("the OpenResty executor defines every method of the interface", function()
    local src = read("lua/llmrelay/resty/engine.lua")
    for _, m in ipairs(FACE) do
      assert.truthy(src:find("\nfunction Engine:" .. m .. "%("), "resty/engine.lua has no Engine:" .. m)
    end
  end)

  it("init.lua chooses the executor in one place and never asks again", function()
    local code = read("lua/llmrelay/init.lua"):gsub("%-%-[^\n]*", "") -- comments say it; code must not
    local new = code:match("\nfunction _M%.new%(.-\nend\n")
    assert.truthy(new and new:find("resty", 1, true), "new() picks the executor")
    local rest = code:gsub("\nfunction _M%.new%(.-\nend\n", "\n", 1):gsub("\nlocal function in_openresty%(.-\nend\n", "\n", 1)
    assert.falsy(rest:find("resty", 1, true), "init.lua names an executor outside new()")
    assert.falsy(rest:find("_transport%s*[=~]="), "init.lua compares its transport outside new()")
  end)

  it("no module reaches into the client's private fields", function()
    for _, path in ipairs(lua_files()) do
      if path ~= "lua/llmrelay/init.lua" then
        local src = read(path)
        for _, pat in ipairs { "client%._", "c%._h", "%._waiters", "%._resty", "%._names", "%._scrub" } do
          assert.falsy(src:find(pat), path .. " matches " .. pat)
        end
      end
    end
  end)

  it("a request, a stream and a cancel go through the libcurl executor alone", function()
    local m = mock.start { name = "exec" }
    local c = require("llmrelay.config").validate { endpoints = { { base_url = m.url, name = "m" } } }
    local x = executor.curl(c)
    local w = { inbox = {} }
    local id = assert(x:submit('{"messages":[{"role":"user","content":"hi"}]}', nil, 10, nil, nil, nil, false, w))
    assert.is_number(id)
    x:wait(w, 10)
    assert.equal(1, #w.inbox)
    assert.is_true(w.inbox[1].ok)
    assert.equal(0, x:pending())
    local s = { inbox = {} }
    local sid = assert(x:submit('{"messages":[{"role":"user","content":"hi"}],"stream":true}', nil, 10, nil, nil,
                                nil, true, s))
    x:cancel(sid)
    x:wait(s, 10)
    assert.equal("cancelled", s.inbox[1].kind)
    assert.equal(1, #x:status())
    x:close()
  end)
end)
