-- examples/nginx.conf runs as documented: the gateway and a handler of one's
-- own, against two mock upstreams given through the environment. The only
-- changes made to the file are the port and where nginx writes.
local cjson = require "cjson"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"

local q, sh = mock.quote, mock.capture

describe("examples/nginx.conf", function()
  if not nginx.required(it, "example spec") then return end

  local a, b
  local started = {} -- every nginx launched here, stopped in teardown

  -- Starts examples/nginx.conf with `env` (a shell prefix of VAR=value) ->
  -- { pid, dir, port }; does not wait for it.
  local function launch(env)
    local port = mock.free_port()
    local dir = sh("mktemp -d"):gsub("%s+$", "")
    local conf = assert(io.open("examples/nginx.conf")):read("*a")
    local n
    conf, n = conf:gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:" .. port .. ";")
    assert.equal(1, n)
    conf = conf:gsub("pid build/nginx%-example%.pid;", "pid " .. dir .. "/nginx.pid;")
    conf = conf:gsub("client_body_temp_path build/nginx%-example%-tmp;", "client_body_temp_path " .. dir .. "/tmp;")
    conf = conf:gsub("error_log stderr warn;", "error_log " .. dir .. "/error.log warn;")
    if sh("id -u"):match("^0") then conf = "user root;\n" .. conf end
    local f = assert(io.open(dir .. "/nginx.conf", "w"))
    f:write(conf)
    f:close()
    local bin = sh("command -v nginx || echo /usr/sbin/nginx"):gsub("%s+$", "")
    local pid = tonumber(sh(("cd %s && %s OPENAI_KEY_A=sk-upstream-a-0123456789 "
                             .. "OPENAI_KEY_B=sk-upstream-b-0123456789 LLMRELAY_UPSTREAM_A=%s LLMRELAY_UPSTREAM_B=%s "
                             .. "%s -p %s -c %s/nginx.conf -e %s/error.log >%s/stderr.log 2>&1 & echo $!")
                            :format(q(nginx.repo), env, q(a.url), q(b.url), q(bin), q(nginx.repo), q(dir), q(dir), q(dir))))
    local inst = { pid = pid, dir = dir, port = port }
    started[#started + 1] = inst
    return inst
  end

  local function wait_ready(inst)
    for _ = 1, 100 do
      if nginx.curl(("http://127.0.0.1:%d/health"):format(inst.port), { timeout = 1 }) then return true end
      if not mock.alive(inst.pid) then return false end
      sh("sleep 0.05")
    end
    return false
  end

  local function stop(inst)
    if inst.stopped then return end
    inst.stopped = true
    if inst.pid then
      mock.run("kill -QUIT " .. inst.pid .. " 2>/dev/null")
      for _ = 1, 100 do
        if not mock.alive(inst.pid) then break end
        sh("sleep 0.05")
      end
      if mock.alive(inst.pid) then mock.run("kill -KILL " .. inst.pid) end
      mock.run("pkill -KILL -P " .. inst.pid .. " 2>/dev/null")
    end
    if inst.dir and inst.dir:find("^/tmp/") then mock.run("rm -rf " .. q(inst.dir)) end
  end

  local function log_of(inst)
    return (mock.read_file(inst.dir .. "/error.log") or "") .. (mock.read_file(inst.dir .. "/stderr.log") or "")
  end

  local main

  setup(function()
    assert(mock.run("make -s LUA=luajit >/dev/null"), "make LUA=luajit failed")
    a = mock.start { name = "a", auth_key = "sk-upstream-a-0123456789" }
    b = mock.start { name = "b", fail_rate = 1 }
    main = launch("LLMRELAY_GATEWAY_KEYS=gw-one,gw-two")
    wait_ready(main)
  end)

  teardown(function()
    for _, inst in ipairs(started) do stop(inst) end
    mock.stop_all()
  end)

  local function url(path, inst) return ("http://127.0.0.1:%d%s"):format((inst or main).port, path) end

  it("serves the gateway with the keys from the environment, failing over from the broken upstream", function()
    local body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"example"}]}'
    for i = 1, 6 do
      local code, out = nginx.curl(url("/v1/chat/completions"), { method = "POST", body = body,
        headers = { "Authorization: Bearer " .. (i % 2 == 0 and "gw-one" or "gw-two"), "Content-Type: application/json" } })
      assert.equal(200, code, out)
      assert.equal("echo: example", cjson.decode(out).choices[1].message.content)
    end
    local code = nginx.curl(url("/v1/chat/completions"), { method = "POST", body = body,
                                                           headers = { "Authorization: Bearer gw-three" } })
    assert.equal(401, code)
    code = nginx.curl(url("/v1/models"))
    assert.equal(401, code)
    code = nginx.curl(url("/health"))
    assert.equal(200, code) -- open_status
    -- the mock checks the upstream key: the gateway sent the pool's, not the caller's
    assert.equal(0, a:stats().auth_failures)
  end)

  it("runs the handler of one's own", function()
    local code, out = nginx.curl(url("/summarize"), { method = "POST", body = "a long text" })
    assert.equal(200, code, out)
    assert.truthy(out:find("echo: a long text", 1, true), out)
    local log = mock.read_file(main.dir .. "/error.log") or ""
    assert.falsy(log:find("sk-upstream", 1, true), "an upstream key reached the log")
    assert.falsy(log:find("[alert]", 1, true) or log:find("[emerg]", 1, true), log)
    assert.falsy(log:find("anonymous", 1, true), "keys are set, yet the log speaks of anonymous callers:\n" .. log)
  end)

  it("refuses to start without gateway keys, naming the option that would allow it", function()
    local inst = launch("")
    for _ = 1, 100 do -- nginx fails in init_by_lua, before any worker
      if not mock.alive(inst.pid) then break end
      sh("sleep 0.05")
    end
    local up = mock.alive(inst.pid)
    local code = nginx.curl(url("/v1/models", inst), { timeout = 1 })
    local log = log_of(inst)
    stop(inst)
    assert.is_false(up, "nginx started without keys; GET /v1/models without a key got " .. tostring(code))
    assert.is_nil(code)
    assert.truthy(log:find("LLMRELAY_GATEWAY_KEYS is not set", 1, true), log)
    assert.truthy(log:find("opts.anonymous = true", 1, true), log)
    assert.falsy(log:find("sk-upstream", 1, true), "an upstream key reached the log")
  end)

  it("serves anyone with LLMRELAY_GATEWAY_ANONYMOUS=1, with a warning in the log at start", function()
    local inst = launch("LLMRELAY_GATEWAY_ANONYMOUS=1")
    assert.is_true(wait_ready(inst), log_of(inst))
    local code, out = nginx.curl(url("/v1/chat/completions", inst), { method = "POST",
      body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"anyone"}]}' })
    assert.equal(200, code, out)
    assert.equal("echo: anyone", cjson.decode(out).choices[1].message.content)
    local log = log_of(inst)
    assert.truthy(log:find("%[warn%][^\n]*opts%.anonymous = true: every caller is served without a gateway key"), log)
    -- a value that is neither 1 nor 0 is refused, not read as "no"
    local bad = launch("LLMRELAY_GATEWAY_ANONYMOUS=yes")
    for _ = 1, 100 do
      if not mock.alive(bad.pid) then break end
      sh("sleep 0.05")
    end
    local up = mock.alive(bad.pid)
    local bad_log = log_of(bad)
    stop(bad)
    assert.is_false(up)
    assert.truthy(bad_log:find("LLMRELAY_GATEWAY_ANONYMOUS must be 1", 1, true), bad_log)
  end)
end)
