-- llmrelay.redis against a real redis-server (spec/support/redis.lua starts
-- it on a free 127.0.0.1 port and stops it by PID): options, calls, AUTH,
-- SELECT, scripts and NOSCRIPT, timeouts, a dead or restarted server.
local core = require "llmrelay.core"
local redis = require "llmrelay.redis"
local server = require "spec.support.redis"

-- an error or display must never show the password
local function no_secret(s, secret)
  assert.is_nil(tostring(s):find(secret, 1, true), "the password leaked: " .. tostring(s))
end

-- options with a timeout loose enough for a loaded machine (the timeout specs set theirs)
local function opts(url, t)
  t = t or {}
  t.url = url
  t.timeout = t.timeout or 2
  return assert(redis.options(t))
end

local function elapsed(f)
  local t0 = core.now()
  local a, b, c = f()
  return core.now() - t0, a, b, c
end

describe("redis.options", function()
  it("reads a URL and fills the defaults", function()
    local o = assert(redis.options("redis://127.0.0.1:6390"))
    assert.same({ "127.0.0.1", 6390, 0, false, true, 0.05, "llmrelay" },
      { o.host, o.port, o.db, o.tls, o.verify, o.timeout, o.prefix })
    assert.is_nil(o.user)
    assert.is_nil(o.password)
    assert.equal("redis://127.0.0.1:6390", o.display)
    o = assert(redis.options("redis://cache.internal"))
    assert.equal(6379, o.port)
    assert.equal("redis://cache.internal:6379", o.display)
  end)

  it("reads user, password (percent-decoded), db, rediss and IPv6 hosts; display masks the password", function()
    local o = assert(redis.options("rediss://app:p%40ss%3Aword@10.0.0.5:6380/3"))
    assert.same({ "10.0.0.5", 6380, 3, true, "app", "p@ss:word" },
      { o.host, o.port, o.db, o.tls, o.user, o.password })
    assert.equal("rediss://app:***@10.0.0.5:6380/3", o.display)
    o = assert(redis.options("redis://:hunter2@[::1]:7000/0"))
    assert.same({ "::1", 7000, 0, "hunter2" }, { o.host, o.port, o.db, o.password })
    assert.is_nil(o.user)
    assert.equal("redis://:***@[::1]:7000", o.display)
  end)

  it("takes a table: timeout, prefix, verify, ca_file, password_env", function()
    local home = assert(os.getenv("HOME"))
    local o = assert(redis.options { url = "rediss://127.0.0.1:1/2", timeout = 0.2, prefix = "fleet:a",
                                     verify = false, ca_file = "/tmp/ca.crt", password_env = "HOME" })
    assert.same({ 0.2, "fleet:a", false, "/tmp/ca.crt", home, 2 },
      { o.timeout, o.prefix, o.verify, o.ca_file, o.password, o.db })
    assert.equal("rediss://:***@127.0.0.1:1/2", o.display)
  end)

  it("refuses bad values with an error naming the field", function()
    local cases = {
      { "redis://h:0", "port must be 1..65535" },
      { "redis://h:65536", "port must be 1..65535" },
      { "redis://h:x", "port must be 1..65535" },
      { "http://h", "scheme must be redis:// or rediss://" },
      { "h:6379", "url must look like" },
      { "redis://:6379", "no host" },
      { "redis://h/x", "db" },
      { "redis://u@h", "no password" },
      { 42, "must be a URL string or a table" },
      { { url = 1 }, "url must be a string" },
      { { url = "redis://h", tiemout = 1 }, "unknown field tiemout" },
      { { url = "redis://h", timeout = 0 }, "timeout must be" },
      { { url = "redis://h", timeout = "1" }, "timeout must be" },
      { { url = "redis://h", prefix = "" }, "prefix must be" },
      { { url = "redis://h", verify = "yes" }, "verify must be a boolean" },
      { { url = "redis://h", ca_file = "/x" }, "ca_file needs a rediss:// url" },
      { { url = "redis://h", password_env = "LLMRELAY_SPEC_NO_SUCH_VAR" },
        "password_env LLMRELAY_SPEC_NO_SUCH_VAR is not set" },
      { { url = "redis://:pw@h", password_env = "HOME" }, "not both" },
    }
    for _, c in ipairs(cases) do
      local o, err = redis.options(c[1])
      assert.is_nil(o)
      assert.matches("^redis: ", err)
      assert.truthy(err:find(c[2], 1, true), "expected '" .. c[2] .. "' in: " .. err)
    end
  end)

  it("never shows the password in an error", function()
    for _, u in ipairs{ "redis://:TopSecret9@h:99999", "redis://u:TopSecret9@h/zz", "ftp://u:TopSecret9@h" } do
      local _, err = redis.options(u)
      no_secret(err, "TopSecret9")
    end
  end)
end)

describe("redis connection (plain Lua)", function()
  local r, o
  setup(function()
    r = server.start()
    o = opts(r.url)
  end)
  teardown(function() server.stop_all() end)

  it("calls commands and converts replies", function()
    local c = assert(redis.connect(o))
    assert.equal(true, c:call("SET", "k", "v"))
    assert.equal("v", c:call("GET", "k"))
    assert.equal(redis.null, c:call("GET", "missing"))
    assert.equal(3, c:call("INCRBY", "n", 3.0))      -- an integral number goes as "3"
    assert.equal(true, c:call("SET", "f", 1.5))
    assert.equal("1.5", c:call("GET", "f"))
    assert.equal("PONG", c:call("PING"))
    assert.equal(2, c:call("RPUSH", "l", "a", ""))
    assert.same({ "a", "" }, c:call("LRANGE", "l", 0, -1))
    assert.same({}, c:call("LRANGE", "none", 0, -1))
    assert.equal(10, c.round_trips)
    c:close()
    c:close()
    local r2, err, kind = c:call("PING")
    assert.is_nil(r2)
    assert.equal("io", kind)
    assert.matches("closed", err)
  end)

  it("returns an error reply as nil, message, 'reply' and stays usable", function()
    local c = assert(redis.connect(o))
    local v, err, kind = c:call("NO_SUCH_COMMAND", "x")
    assert.is_nil(v)
    assert.equal("reply", kind)
    assert.matches("^ERR unknown command", err)
    assert.equal(true, c:call("SET", "s", "x"))
    v, err, kind = c:call("INCR", "s")
    assert.same({ nil, "reply" }, { v, kind })
    assert.matches("not an integer", err)
    assert.equal("PONG", c:call("PING"))
    c:close()
  end)

  it("refuses a non-string argument as a programmer mistake", function()
    local c = assert(redis.connect(o))
    assert.has_error(function() c:call("SET", "k", {}) end)
    assert.has_error(function() c:call() end)
    assert.equal("PONG", c:call("PING"))
    c:close()
  end)

  it("SELECTs the url's db", function()
    local c = assert(redis.connect(opts(r.url .. "/3")))
    assert.equal(true, c:call("SET", "in3", "yes"))
    assert.equal(2, c.round_trips)   -- SELECT, SET
    c:close()
    assert.equal("yes", r:cli("-n", "3", "GET", "in3"):match("%S+"))
    assert.equal("", r:cli("-n", "0", "GET", "in3"):match("^%s*(.-)%s*$"))
  end)

  it("runs scripts by EVALSHA, loading them once, and again after SCRIPT FLUSH", function()
    local c = assert(redis.connect(o))
    local s = redis.script("return { KEYS[1], ARGV[1], redis.call('INCR', KEYS[1]) }")
    assert.same({ "ev", "a", 1 }, c:eval(s, { "ev" }, { "a" }))
    assert.matches("^%x+$", s.sha)
    assert.equal(2, c.round_trips)   -- SCRIPT LOAD, EVALSHA
    assert.same({ "ev", "b", 2 }, c:eval(s, { "ev" }, { "b" }))
    assert.equal(3, c.round_trips)
    assert.matches("OK", r:cli("SCRIPT", "FLUSH"))
    assert.same({ "ev", "c", 3 }, c:eval(s, { "ev" }, { "c" }))
    assert.equal(6, c.round_trips)   -- EVALSHA (NOSCRIPT), SCRIPT LOAD, EVALSHA
    -- the sha is the script's: another connection uses it at once
    local c2 = assert(redis.connect(o))
    assert.same({ "ev", "d", 4 }, c2:eval(s, { "ev" }, { "d" }))
    assert.equal(1, c2.round_trips)
    c:close()
    c2:close()
  end)

  it("returns a script's error as a reply error", function()
    local c = assert(redis.connect(o))
    local v, err, kind = c:eval(redis.script("return redis.call('NOPE')"), {}, {})
    assert.same({ nil, "reply" }, { v, kind })
    assert.truthy(err:find("Unknown Redis command", 1, true) or err:find("unknown command", 1, true), err)
    v, err, kind = c:eval(redis.script("this is not lua"))
    assert.same({ nil, "reply" }, { v, kind })
    assert.matches("^ERR", err)
    assert.equal("PONG", c:call("PING"))
    c:close()
  end)

  it("refuses a reply over the caps as an io error, not a crash", function()
    local c = assert(redis.connect(o))
    assert.equal(true, c:call("SET", "big", string.rep("x", 600 * 1024)))
    local v, err, kind = c:call("GET", "big")
    assert.same({ nil, "io" }, { v, kind })
    assert.matches("bad reply: bulk string of 614400 bytes over the cap", err)
    c = assert(redis.connect(o))
    assert.equal(1, c:call("DEL", "big"))
    c:close()
  end)

  it("times out within about the timeout when the server does not answer", function()
    local c = assert(redis.connect(opts(r.url, { timeout = 0.05 })))
    local c3 = assert(redis.connect(opts(r.url, { timeout = 0.05 })))
    r:pause()
    local t, v, err, kind = elapsed(function() return c:call("PING") end)
    local t2, c2, err2, kind2 = elapsed(function() return redis.connect(opts(r.url .. "/1", { timeout = 0.05 })) end)
    local t3, v3, _, kind3 = elapsed(function() return c3:eval(redis.script("return 'paused'")) end)
    r:resume()
    -- an eval's calls (SCRIPT LOAD, EVALSHA) share one timeout
    assert.same({ nil, "timeout" }, { v3, kind3 })
    assert.is_true(t3 < 0.5, "took " .. t3)
    assert.same({ nil, "timeout" }, { v, kind })
    assert.matches("^redis: 127%.0%.0%.1:%d+: timed out %(waiting for the reply%)", err)
    assert.is_true(t >= 0.04 and t < 0.5, "took " .. t)
    -- the TCP connect succeeds (the kernel accepts), SELECT then times out
    assert.same({ nil, "timeout" }, { c2, kind2 })
    assert.matches("SELECT 1 failed", err2)
    assert.is_true(t2 < 0.5, "took " .. t2)
    -- out of step with the server: closed, never reused
    v, err, kind = c:call("PING")
    assert.same({ nil, "io" }, { v, kind })
    assert.matches("closed", err)
  end)

  it("bounds the TCP connect by the timeout (a paused server with a full accept queue)", function()
    local full = server.start { args = { "--tcp-backlog", "1" } }
    local of = opts(full.url, { timeout = 0.05 })
    full:pause()
    local held, t, c, err, kind = {}
    for _ = 1, 8 do   -- the kernel queues a connection or two, then drops the SYNs
      t, c, err, kind = elapsed(function() return redis.connect(of) end)
      if not c then break end
      held[#held + 1] = c
    end
    full:resume()
    for _, h in ipairs(held) do h:close() end
    full:stop()
    assert.same({ nil, "timeout" }, { c, kind })
    assert.matches("^redis: 127%.0%.0%.1:%d+: timed out %(connecting%)$", err)
    assert.is_true(t < 0.5, "took " .. t)
  end)

  it("fails fast with 'io' when nothing listens", function()
    local dead = server.start()
    local od = assert(redis.options(dead.url))
    dead:stop()
    local t, c, err, kind = elapsed(function() return redis.connect(od) end)
    assert.same({ nil, "io" }, { c, kind })
    assert.matches("^redis: 127%.0%.0%.1:%d+: connect: Connection refused", err)
    assert.is_true(t < 0.5, "took " .. t)
  end)

  it("reports a killed server as 'io', reconnects after a restart and reloads its scripts", function()
    local k = server.start()
    local ok = opts(k.url)
    local c = assert(redis.connect(ok))
    local s = redis.script("return redis.call('INCR', KEYS[1])")
    assert.equal(1, c:eval(s, { "x" }))
    k:kill()
    local v, err, kind = c:call("PING")
    assert.same({ nil, "io" }, { v, kind })
    assert.matches("^redis: 127%.0%.0%.1:%d+: ", err)
    local c2, err2, kind2 = redis.connect(ok)
    assert.same({ nil, "io" }, { c2, kind2 })
    assert.matches("Connection refused", err2)
    k:restart()
    c = assert(redis.connect(ok))
    assert.equal(1, c:eval(s, { "x" }))   -- empty again; NOSCRIPT, loaded again
    assert.equal(3, c.round_trips)
    c:close()
    k:stop()
  end)
end)

describe("redis AUTH", function()
  teardown(function() server.stop_all() end)

  it("authenticates with requirepass; a wrong or missing password is a clear error without it", function()
    local r = server.start { requirepass = "Pa55-w0rd!" }
    local c = assert(redis.connect(opts("redis://:Pa55-w0rd%21@127.0.0.1:" .. r.port .. "/2")))
    assert.equal(true, c:call("SET", "a", "1"))
    assert.equal(3, c.round_trips)   -- AUTH, SELECT, SET
    c:close()
    assert.equal("1", r:cli("-n", "2", "GET", "a"):match("%S+"))

    local o = opts("redis://:Wrong-S3cret@127.0.0.1:" .. r.port)
    local c2, err, kind = redis.connect(o)
    assert.same({ nil, "reply" }, { c2, kind })
    assert.matches("^redis: AUTH failed at redis://:%*%*%*@127%.0%.0%.1:%d+: WRONGPASS", err)
    no_secret(err, "Wrong-S3cret")
    no_secret(o.display, "Wrong-S3cret")

    local c3 = assert(redis.connect(opts(r.url)))
    local v, err3, kind3 = c3:call("GET", "a")
    assert.same({ nil, "reply" }, { v, kind3 })
    assert.matches("^NOAUTH", err3)
    c3:close()
    r:stop()
  end)

  it("authenticates an ACL user (AUTH user password)", function()
    local r = server.start { acl_user = { name = "fleet", password = "acl-Secret-7" } }
    local c = assert(redis.connect(opts("redis://fleet:acl-Secret-7@127.0.0.1:" .. r.port)))
    assert.equal("fleet", c:call("ACL", "WHOAMI"))
    c:close()
    local c2, err, kind = redis.connect(opts("redis://fleet:not-acl-Secret@127.0.0.1:" .. r.port))
    assert.same({ nil, "reply" }, { c2, kind })
    assert.matches("WRONGPASS", err)
    assert.matches("redis://fleet:%*%*%*@", err)
    no_secret(err, "not-acl-Secret")
    r:stop()
  end)
end)

describe("redis TLS (rediss://)", function()
  local r
  setup(function() r = server.start { tls = true, requirepass = "tls-Secret-3" } end)
  teardown(function() server.stop_all() end)

  local function url(host, db)
    return "rediss://:tls-Secret-3@" .. host .. ":" .. r.port .. (db or "")
  end

  it("connects with the certificate verified against ca_file (IP and host name), with AUTH and SELECT", function()
    local c = assert(redis.connect(assert(redis.options { url = url("127.0.0.1", "/4"), ca_file = r.ca_file,
                                                          timeout = 2 })))
    assert.equal(true, c:call("SET", "t", "over tls"))
    assert.equal("over tls", c:call("GET", "t"))
    c:close()
    assert.equal("over tls", r:cli("-n", "4", "GET", "t"):match("^(.-)%s*$"))
    c = assert(redis.connect(assert(redis.options { url = url("localhost"), ca_file = r.ca_file, timeout = 2 })))
    assert.equal("PONG", c:call("PING"))
    c:close()
  end)

  it("refuses a certificate from another CA, or from the system store, with a clear error", function()
    local other = server.make_ca(r.dir, "other")
    for _, ca in ipairs{ other, false } do
      local c, err, kind = redis.connect(assert(redis.options { url = url("127.0.0.1"), ca_file = ca or nil,
                                                                timeout = 2 }))
      assert.same({ nil, "io" }, { c, kind })
      assert.matches("^redis: 127%.0%.0%.1:%d+: certificate verify failed %(.+%) %(TLS handshake%)$", err)
      no_secret(err, "tls-Secret-3")
    end
  end)

  it("refuses a certificate for another name", function()
    local elsewhere = server.start { tls = true, tls_san = "DNS:elsewhere.test" }
    local c, err, kind = redis.connect(assert(redis.options { url = elsewhere.url, ca_file = elsewhere.ca_file,
                                                              timeout = 2 }))
    assert.same({ nil, "io" }, { c, kind })
    assert.matches("certificate verify failed %(IP address mismatch%)", err)
    c, err, kind = redis.connect(assert(redis.options { url = "rediss://localhost:" .. elsewhere.port,
                                                        ca_file = elsewhere.ca_file, timeout = 2 }))
    assert.same({ nil, "io" }, { c, kind })
    assert.matches("certificate verify failed %(hostname mismatch%)", err)
    -- verify = false: encrypted, not authenticated
    c = assert(redis.connect(assert(redis.options { url = elsewhere.url, verify = false, timeout = 2 })))
    assert.equal("PONG", c:call("PING"))
    c:close()
    elsewhere:stop()
  end)

  it("names a CA file it cannot read", function()
    local c, err, kind = redis.connect(assert(redis.options { url = r.url, ca_file = "/nonexistent/ca.pem" }))
    assert.same({ nil, "io" }, { c, kind })
    assert.matches("cannot load the CA file /nonexistent/ca.pem", err)
  end)

  it("bounds the handshake by the timeout (a TLS client at a plain server)", function()
    local plain = server.start()
    local t, c, err, kind = elapsed(function()
      return redis.connect(assert(redis.options { url = "rediss://127.0.0.1:" .. plain.port, verify = false }))
    end)
    assert.is_nil(c)
    assert.truthy(kind == "timeout" or kind == "io", err)
    assert.is_true(t < 0.5, "took " .. t)
    plain:stop()
  end)

  it("reports a killed server as 'io' and reconnects after a restart", function()
    local k = server.start { tls = true }
    local o = assert(redis.options { url = k.url, ca_file = k.ca_file, timeout = 2 })
    local c = assert(redis.connect(o))
    assert.equal("PONG", c:call("PING"))
    k:kill()
    local v, err, kind = c:call("PING")
    assert.same({ nil, "io" }, { v, kind })
    assert.matches("^redis: 127%.0%.0%.1:%d+: ", err)
    k:restart()
    c = assert(redis.connect(o))
    assert.equal("PONG", c:call("PING"))
    c:close()
    k:stop()
  end)
end)

describe("redis in OpenResty (cosockets)", function()
  local nginx = require "spec.support.nginx"
  if not nginx.required(it, "redis spec") then return end
  local cjson = require "cjson"
  local plain, tls, stranger, n

  setup(function()
    assert(require("spec.support.mock").run("make -s LUA=luajit >/dev/null"), "make LUA=luajit failed")
    plain = server.start { requirepass = "ngx-Secret-1" }
    tls = server.start { tls = true }
    stranger = server.start { tls = true }   -- a certificate from a CA nginx does not trust
    n = nginx.start {
      init = ([[
        local redis = require "llmrelay.redis"
        local function opts(url, t) t = t or {} t.url = url return assert(redis.options(t)) end
        local good = opts("redis://:ngx-Secret-1@127.0.0.1:%d/5", { timeout = 1 })
        local s = redis.script("return { KEYS[1], ARGV[1], redis.call('INCR', KEYS[1]) }")
        cases = {}
        function cases.basic()
          local out = {}
          local c = assert(redis.connect(good))
          out.set = c:call("SET", "k", "from nginx")
          out.get = c:call("GET", "k")
          out.null = c:call("GET", "nope") == redis.null
          out.e1 = c:eval(s, { "cnt" }, { "a" })
          out.flush = c:call("SCRIPT", "FLUSH")
          out.e2 = c:eval(s, { "cnt" }, { "b" })
          local _, rerr, rkind = c:call("INCR", "k")
          out.reply_kind = rkind
          out.rt1 = c.round_trips
          out.keepalive = c:keepalive()
          local c2 = assert(redis.connect(good))   -- from the pool: no AUTH, no SELECT
          out.get2 = c2:call("GET", "k")
          out.rt2 = c2.round_trips
          c2:keepalive()
          return out
        end
        function cases.wrongpass()
          local c, err, kind = redis.connect(opts("redis://:Bad-ngx-Pass@127.0.0.1:%d"))
          local c2, err2, kind2 = assert(redis.connect(opts("redis://127.0.0.1:%d"))):call("GET", "k")
          return { ok = c ~= nil, err = err, kind = kind, err2 = err2, kind2 = kind2 }
        end
        function cases.timeout()
          -- connected with a loose timeout, then taken from the pool (no AUTH) with 50 ms
          assert(redis.connect(opts("redis://:ngx-Secret-1@127.0.0.1:%d", { timeout = 1 }))):keepalive()
          local c = assert(redis.connect(opts("redis://:ngx-Secret-1@127.0.0.1:%d", { timeout = 0.05 })))
          ngx.shared.gate:set("connected", true)
          for _ = 1, 500 do   -- until the spec paused the server (at most 5 s)
            if ngx.shared.gate:get("paused") then break end
            ngx.sleep(0.01)
          end
          local t0 = require("llmrelay.core").now()
          local v, err, kind = c:call("PING")
          return { v = v, err = err, kind = kind, took = require("llmrelay.core").now() - t0,
                   after = select(3, c:call("PING")) }
        end
        function cases.tls()
          local c = assert(redis.connect(opts("rediss://127.0.0.1:%d", { timeout = 1 })))
          local out = { set = c:call("SET", "t", "tls from nginx"), get = c:call("GET", "t") }
          c:keepalive()
          local c2, err, kind = redis.connect(opts("rediss://127.0.0.1:%d", { timeout = 1 }))
          out.stranger_ok, out.stranger_err, out.stranger_kind = c2 ~= nil, err, kind
          local c3 = assert(redis.connect(opts("rediss://127.0.0.1:%d", { timeout = 1, verify = false })))
          out.noverify = c3:call("PING")
          c3:close()
          return out
        end
      ]]):format(plain.port, plain.port, plain.port, plain.port, plain.port, tls.port, stranger.port, stranger.port),
      shared_dicts = { gate = "1m" },
      http = ([[
        lua_ssl_trusted_certificate %s;
        server {
          listen 127.0.0.1:$PORT;
          location = /t { content_by_lua_block {
            local ok, out = pcall(cases[ngx.var.arg_case])
            ngx.say(require("cjson").encode(ok and out or { fault = tostring(out) }))
          } }
          location = /gate { content_by_lua_block {
            if ngx.var.arg_set then ngx.shared.gate:set(ngx.var.arg_set, true) end
            ngx.say(tostring(ngx.shared.gate:get(ngx.var.arg_get or "")))
          } }
        }
      ]]):format(tls.ca_file),
    }
  end)

  teardown(function()
    if n then n:stop() end
    server.stop_all()
  end)

  local function case(name)
    local code, body = nginx.curl(n.base .. "/t?case=" .. name, { timeout = 10 })
    assert.equal(200, code, body)
    local out = cjson.decode(body)
    assert.is_nil(out.fault)
    return out
  end

  it("calls, runs scripts with a NOSCRIPT reload, and reuses pooled connections without AUTH again", function()
    local out = case("basic")
    assert.same({ true, "from nginx", true, { "cnt", "a", 1 }, true, { "cnt", "b", 2 }, "reply" },
      { out.set, out.get, out.null, out.e1, out.flush, out.e2, out.reply_kind })
    -- AUTH, SELECT, SET, GET, GET, LOAD, EVALSHA, FLUSH, EVALSHA (NOSCRIPT), LOAD, EVALSHA, INCR
    assert.equal(12, out.rt1)
    assert.equal(1, out.keepalive)
    assert.same({ "from nginx", 1 }, { out.get2, out.rt2 })
    assert.equal("from nginx", plain:cli("-n", "5", "GET", "k"):match("^(.-)%s*$"))
  end)

  it("reports a wrong or missing password clearly, without the password", function()
    local out = case("wrongpass")
    assert.is_false(out.ok)
    assert.equal("reply", out.kind)
    assert.matches("^redis: AUTH failed at redis://:%*%*%*@127%.0%.0%.1:%d+: WRONGPASS", out.err)
    no_secret(out.err, "Bad-ngx-Pass")
    assert.same({ "reply" }, { out.kind2 })
    assert.matches("^NOAUTH", out.err2)
    no_secret(n:error_log(), "Bad-ngx-Pass")
    no_secret(n:error_log(), "ngx-Secret-1")
  end)

  it("times out within about the timeout when the server does not answer", function()
    -- the case connects, says so through the gate, and waits until the spec paused the server
    -- (no LD_PRELOAD: curl deadlocks under the ASan runtime `make sanitize` preloads)
    local f = io.popen("unset LD_PRELOAD; curl -s --max-time 10 '" .. n.base .. "/t?case=timeout'")
    local connected
    for _ = 1, 250 do
      connected = select(2, nginx.curl(n.base .. "/gate?get=connected")) == "true\n"
      if connected then break end
      require("spec.support.mock").run("sleep 0.02")
    end
    plain:pause()
    nginx.curl(n.base .. "/gate?set=paused")
    local body = f:read("*a")
    f:close()
    plain:resume()
    assert.is_true(connected)
    local out = cjson.decode(body)
    assert.is_nil(out.fault)
    assert.equal("timeout", out.kind)
    assert.matches("timed out %(waiting for the reply%)", out.err)
    assert.is_true(out.took < 0.5, "took " .. out.took)
    assert.equal("io", out.after)
  end)

  it("speaks TLS verified by lua_ssl_trusted_certificate; refuses an untrusted CA; verify = false", function()
    local out = case("tls")
    assert.same({ true, "tls from nginx" }, { out.set, out.get })
    assert.is_false(out.stranger_ok)
    assert.equal("io", out.stranger_kind)
    assert.matches("TLS handshake", out.stranger_err)
    assert.equal("PONG", out.noverify)
  end)
end)
