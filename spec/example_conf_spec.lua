-- examples/nginx.conf runs as documented: the gateway and a handler of one's
-- own, against two mock upstreams given through the environment. The only
-- changes made to the file are the port and where nginx writes.
local cjson = require "cjson"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"

local q, sh = mock.quote, mock.capture

describe("examples/nginx.conf", function()
  local available, why = nginx.available()
  if not available then
    it("needs nginx with the lua module", function() error("example spec: " .. tostring(why), 0) end)
    return
  end

  local a, b, dir, pid, port

  setup(function()
    assert(mock.run("make -s LUA=luajit >/dev/null"), "make LUA=luajit failed")
    a = mock.start { name = "a", auth_key = "sk-upstream-a-0123456789" }
    b = mock.start { name = "b", fail_rate = 1 }
    port = mock.free_port()
    dir = sh("mktemp -d"):gsub("%s+$", "")
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
    pid = tonumber(sh(("cd %s && LLMRELAY_GATEWAY_KEYS=gw-one,gw-two OPENAI_KEY_A=sk-upstream-a-0123456789 "
                       .. "OPENAI_KEY_B=sk-upstream-b-0123456789 LLMRELAY_UPSTREAM_A=%s LLMRELAY_UPSTREAM_B=%s "
                       .. "%s -p %s -c %s/nginx.conf -e %s/error.log >%s/stderr.log 2>&1 & echo $!")
                      :format(q(nginx.repo), q(a.url), q(b.url), q(bin), q(nginx.repo), q(dir), q(dir), q(dir))))
    for _ = 1, 100 do
      if nginx.curl(("http://127.0.0.1:%d/health"):format(port), { timeout = 1 }) then break end
      sh("sleep 0.05")
    end
  end)

  teardown(function()
    if pid then
      mock.run("kill -QUIT " .. pid .. " 2>/dev/null")
      for _ = 1, 100 do
        if not mock.alive(pid) then break end
        sh("sleep 0.05")
      end
      if mock.alive(pid) then mock.run("kill -KILL " .. pid) end
      mock.run("pkill -KILL -P " .. pid .. " 2>/dev/null")
    end
    mock.stop_all()
    if dir and dir:find("^/tmp/") then mock.run("rm -rf " .. q(dir)) end
  end)

  local function url(path) return ("http://127.0.0.1:%d%s"):format(port, path) end

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
    code = nginx.curl(url("/health"))
    assert.equal(200, code) -- open_status
    -- the mock checks the upstream key: the gateway sent the pool's, not the caller's
    assert.equal(0, a:stats().auth_failures)
  end)

  it("runs the handler of one's own", function()
    local code, out = nginx.curl(url("/summarize"), { method = "POST", body = "a long text" })
    assert.equal(200, code, out)
    assert.truthy(out:find("echo: a long text", 1, true), out)
    local log = mock.read_file(dir .. "/error.log") or ""
    assert.falsy(log:find("sk-upstream", 1, true), "an upstream key reached the log")
    assert.falsy(log:find("[alert]", 1, true) or log:find("[emerg]", 1, true), log)
  end)
end)
