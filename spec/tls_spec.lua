-- TLS: verification is on by default; tls.ca_file trusts a private CA;
-- tls.insecure turns verification off only when asked. The server is
-- `openssl s_server` with a certificate made for this run, on 127.0.0.1.
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"

local sh, alive = mock.capture, mock.alive

describe("TLS", function()
  local dir, pid, port

  setup(function()
    dir = sh("mktemp -d"):gsub("%s+$", "")
    sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 " ..
        "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem 2>/dev/null")
       :format(dir, dir))
    port = mock.free_port()
    pid = tonumber(sh(("openssl s_server -accept 127.0.0.1:%d -cert %s/cert.pem -key %s/key.pem -www -quiet " ..
                       "</dev/null >%s/server.log 2>&1 & echo $!"):format(port, dir, dir, dir)))
    -- wait (bounded) until it accepts connections
    for _ = 1, 100 do
      if sh(("bash -c 'echo > /dev/tcp/127.0.0.1/%d' 2>/dev/null && echo up"):format(port)):find("up") then break end
      sh("sleep 0.05")
    end
  end)

  teardown(function()
    if pid and alive(pid) then
      mock.run("kill " .. pid)
      for _ = 1, 100 do
        if not alive(pid) then break end
        sh("sleep 0.02")
      end
    end
    if dir and dir:find("^/tmp/") then mock.run("rm -rf '" .. dir .. "'") end
  end)

  local function attempt(tls)
    local c = llmrelay.new {
      endpoints = { { base_url = ("https://127.0.0.1:%d/v1"):format(port), name = "tls" } },
      tls = tls,
      retry = { max_attempts = 1 },
      timeout = { total = 1 },
    }
    local resp, err = c:chat_completion { model = "m", messages = { { role = "user", content = "hi" } } }
    c:close()
    return resp, err
  end

  it("refuses a certificate it cannot verify", function()
    local resp, err = attempt(nil)
    assert.is_nil(resp)
    assert.are.equal("connect", err.kind)
    assert.truthy(err.message:lower():find("certificate", 1, true), err.message)
  end)

  it("trusts the certificate given as tls.ca_file", function()
    local resp, err = attempt { ca_file = dir .. "/cert.pem" }
    -- the handshake passes; `s_server -www` then never answers a POST, so the attempt times out
    assert.is_nil(resp)
    assert.are.equal("timeout", err.kind)
    assert.is_nil(err.message:lower():find("certificate", 1, true), err.message)
  end)

  it("skips verification only with tls.insecure = true", function()
    local resp, err = attempt { insecure = true }
    assert.is_nil(resp)
    assert.are.equal("timeout", err.kind)
  end)
end)
