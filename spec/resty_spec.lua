-- OpenResty: the same `require "llmrelay"` API inside nginx handlers, sent
-- through cosockets (lua/llmrelay/resty/engine.lua), with state shared by the
-- workers through a lua_shared_dict. Runs Debian's nginx with the lua module
-- (spec/support/nginx.lua) against the project's mock servers on 127.0.0.1.
local cjson = require "cjson"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"

local sh = mock.capture

local function get(n, path, timeout)
  local code, body = nginx.curl(n.base .. path, { timeout = timeout or 10 })
  local doc = code and body:sub(1, 1) == "{" and cjson.decode(body) or nil
  return code, doc, body
end

-- The error log must show no Lua fault of ours: no yield across a C call, no
-- aborted thread, nothing at alert level or above.
local function assert_clean_log(n)
  local log = n:error_log()
  for _, bad in ipairs { "attempt to yield across", "lua entry thread aborted", "runtime error", "[alert]", "[crit]",
                         "[emerg]", "lua user thread aborted", "sk-" } do
    assert(not log:find(bad, 1, true), "the error log holds '" .. bad .. "':\n" .. log)
  end
end

describe("OpenResty transport", function()
  if not nginx.required(it, "resty spec") then return end

  local good, bad, slow, cut, n, dir

  setup(function()
    assert(mock.run("make -s LUA=luajit >/dev/null"), "make LUA=luajit failed")
    good = mock.start { name = "good", models = { "m1", "m2" } }
    bad = mock.start { name = "bad", fail_rate = 1 }
    slow = mock.start { name = "slow", stream_chunk_ms = 150 }
    -- events 20 ms apart: a cut right after the data can reset the connection before it is read
    cut = mock.start { name = "cut", stream_cut_after = 2, stream_chunk_ms = 20 }
    local dead = mock.free_port()
    -- a TLS front for the good mock, with a certificate made for this run
    dir = sh("mktemp -d"):gsub("%s+$", "")
    for _, name in ipairs { "trusted", "stranger" } do
      sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1 "
          .. "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout %s/%s.key -out %s/%s.pem 2>/dev/null")
         :format(dir, name, dir, name))
    end
    local function ep(name, url, extra)
      return ("{ name = %q, base_url = %q, api_key = 'sk-test-%s-0123456789' %s }"):format(name, url, name, extra or "")
    end
    local main_eps = table.concat({ ep("dead", ("http://127.0.0.1:%d/v1"):format(dead)), ep("bad", bad.url),
                                    ep("good", good.url, ", models = { 'm1', 'm2' }") }, ", ")
    n = nginx.start {
      workers = 2, ports = 3,
      shared_dicts = { llmrelay = "4m", results = "1m" },
      init = ([[
        local llmrelay = require "llmrelay"
        local breaker = { failure_threshold = 4, cooldown = 30 }
        clients = {
          main = llmrelay.new { name = "main", shared_dict = "llmrelay", endpoints = { %s }, breaker = breaker },
          ["local"] = llmrelay.new { name = "local", endpoints = { %s }, breaker = breaker },
          slow = llmrelay.new { endpoints = { %s }, timeout = { idle = 5 } },
          cut = llmrelay.new { endpoints = { %s }, retry = { max_attempts = 1 } },
          cut3 = llmrelay.new { endpoints = { %s }, retry = { max_attempts = 3, base_delay = 0.01 } },
          rpm = llmrelay.new { name = "rpm", shared_dict = "llmrelay", endpoints = { %s }, concurrency = 64 },
          tls = llmrelay.new { endpoints = { %s }, retry = { max_attempts = 1 } },
          stranger = llmrelay.new { endpoints = { %s }, retry = { max_attempts = 1 } },
          big = llmrelay.new { endpoints = { { name = "big", base_url = "http://127.0.0.1:$PORT/big/v1" } },
                               retry = { max_attempts = 1 } },
          closer = llmrelay.new { endpoints = { { name = "closer", base_url = "http://127.0.0.1:$PORT/close/v1" } },
                                  retry = { max_attempts = 1 } },
        }
      ]]):format(main_eps, main_eps, ep("slow", slow.url), ep("cut", cut.url), ep("cut", cut.url),
                 ep("good", good.url, ", rpm = 120"),
                 ep("tls", "https://127.0.0.1:$PORT2/v1"), ep("stranger", "https://127.0.0.1:$PORT3/v1")),
      init_worker = [[
        local resp, err = clients.main:chat_completion { model = "m1", messages = { { role = "user", content = "x" } } }
        ngx.shared.results:set("init_worker", tostring(err))
      ]],
      http = ([[
        lua_socket_log_errors off;
        lua_ssl_trusted_certificate %s/trusted.pem;
        lua_ssl_verify_depth 2;
        server {
          listen 127.0.0.1:$PORT2 ssl;
          ssl_certificate %s/trusted.pem; ssl_certificate_key %s/trusted.key;
          location / { proxy_pass %s; }
        }
        server {
          listen 127.0.0.1:$PORT3 ssl;
          ssl_certificate %s/stranger.pem; ssl_certificate_key %s/stranger.key;
          location / { proxy_pass %s; }
        }
        server {
          listen 127.0.0.1:$PORT reuseport;
          location = /chat { content_by_lua_block {
            local c = clients[ngx.var.arg_c or "main"]
            local resp, err = c:chat_completion { model = ngx.var.arg_model,
              messages = { { role = "user", content = ngx.var.arg_q or "hello" } } }
            ngx.say(require("cjson").encode {
              worker = ngx.worker.pid(), ok = resp ~= nil,
              content = resp and resp.choices[1].message.content,
              endpoint = resp and resp._llmrelay.endpoint, attempts = resp and resp._llmrelay.attempts,
              err = err and tostring(err), kind = err and err.kind })
          } }
          location = /status { content_by_lua_block {
            ngx.say(require("cjson").encode { worker = ngx.worker.pid(),
                                               status = clients[ngx.var.arg_c or "main"]:status() })
          } }
          location = /stream { content_by_lua_block {
            local t0, first, parts, chunks, failure = ngx.now(), nil, {}, 0, nil
            local c = clients[ngx.var.arg_c or "slow"]
            for chunk, err in c:stream { model = "m1", messages = { { role = "user", content = "one two three four" } } } do
              if not chunk then failure = err break end
              ngx.update_time()
              first = first or ngx.now() - t0
              chunks = chunks + 1
              local d = chunk.choices[1] and chunk.choices[1].delta
              if d and d.content then parts[#parts + 1] = d.content end
            end
            ngx.update_time()
            ngx.say(require("cjson").encode { first = first, total = ngx.now() - t0, chunks = chunks,
              text = table.concat(parts), kind = failure and failure.kind, partial = failure and failure.partial })
          } }
          location = /batch { content_by_lua_block {
            local reqs = {}
            for i = 1, 20 do reqs[i] = { model = "m1", messages = { { role = "user", content = "b" .. i } } } end
            local results, summary = clients.main:batch(reqs, { concurrency = 8 })
            local texts = {}
            for i, r in ipairs(results) do texts[i] = r.ok and r.response.choices[1].message.content or tostring(r.error) end
            ngx.say(require("cjson").encode { ok = summary.ok, failed = summary.failed, texts = texts })
          } }
          location = /timer { content_by_lua_block {
            local key = "timer" .. ngx.now() .. ngx.worker.pid()
            ngx.timer.at(0, function(premature)
              local resp, err = clients.main:chat_completion { model = "m1",
                messages = { { role = "user", content = "from a timer" } } }
              ngx.shared.results:set(key, resp and resp.choices[1].message.content or tostring(err))
            end)
            for _ = 1, 200 do
              local v = ngx.shared.results:get(key)
              if v then ngx.say(v) return end
              ngx.sleep(0.01)
            end
            ngx.say("no result")
          } }
          location = /filter {
            content_by_lua_block { ngx.say("body") }
            header_filter_by_lua_block {
              local resp, err = clients.main:chat_completion { model = "m1", messages = { { role = "user", content = "x" } } }
              ngx.header["X-Err"] = err and err.message or "none"
            }
          }
          # an upstream whose answers end when the connection closes (no length, not chunked)
          location = /close/v1/chat/completions {
            chunked_transfer_encoding off;
            content_by_lua_block {
              ngx.req.read_body()
              local req = require("cjson").decode(ngx.req.get_body_data())
              local text = req.messages[1].content
              if req.stream then
                ngx.header["Content-Type"] = "text/event-stream"
                for word in text:gmatch("%%S+") do
                  ngx.print('data: {"choices":[{"index":0,"delta":{"content":"', word, ' "}}]}\n\n')
                  ngx.flush(true)
                  ngx.sleep(0.01)
                end
                ngx.print('data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
              else
                ngx.header["Content-Type"] = "application/json"
                ngx.print('{"choices":[{"index":0,"message":{"role":"assistant","content":"closed: ', text, '"}}]}')
              end
            }
          }
          # an upstream whose answer has 70 KB of headers (10 lines of 7,000 bytes:
          # each under the 8 KiB line cap, together over the 64 KiB block cap)
          location = /big/v1/chat/completions {
            content_by_lua_block {
              for i = 1, 10 do ngx.header["X-Big-" .. i] = string.rep("a", 7000) end
              ngx.header["Content-Type"] = "application/json"
              ngx.print('{"choices":[]}')
            }
          }
          location = /init_worker { content_by_lua_block { ngx.say(ngx.shared.results:get("init_worker")) } }
        }
      ]]):format(dir, dir, dir, good.base, dir, dir, good.base),
    }
  end)

  teardown(function()
    if n then n:stop() end
    mock.stop_all()
    if dir and dir:find("^/tmp/") then mock.run("rm -rf '" .. dir .. "'") end
  end)

  it("loads the LuaJIT build of llmrelay.core in nginx and answers through cosockets", function()
    local code, doc = get(n, "/chat?c=main&model=m1&q=hi-there")
    assert.equal(200, code)
    assert.is_true(doc.ok, doc.err)
    assert.equal("echo: hi-there", doc.content)
    assert.equal("good", doc.endpoint) -- the only endpoint that answers
  end)

  it("fails over from a refused and an always-500 endpoint, and shares the breaker across workers", function()
    bad:stats(true)
    local workers, attempts_seen = {}, 0
    for i = 1, 40 do
      local code, doc = get(n, "/chat?c=main&q=r" .. i)
      assert.equal(200, code)
      assert.is_true(doc.ok, doc.err)
      assert.equal("echo: r" .. i, doc.content)
      workers[doc.worker] = true
      attempts_seen = attempts_seen + doc.attempts
    end
    local st = bad:stats()
    -- the always-500 endpoint opens after failure_threshold (4) failures counted
    -- across both workers; with per-worker breakers each worker would pay 4
    assert.is_true(st.requests <= 4, "the always-500 mock saw " .. st.requests .. " attempts (threshold 4)")
    assert.is_true(st.requests >= 1)
    local seen_open = {}
    for _ = 1, 20 do
      local _, doc = get(n, "/status?c=main")
      local s = doc.status
      assert.equal("bad", s[2].name)
      if s[2].state == "open" then seen_open[doc.worker] = true end
      assert.equal("open", s[2].state, "worker " .. doc.worker .. " does not see the breaker open")
    end
    local nw = 0
    for _ in pairs(seen_open) do nw = nw + 1 end
    assert.equal(2, nw, "the status came from only one worker")
    assert_clean_log(n)
  end)

  it("keeps per-worker state without shared_dict", function()
    -- the same pool without the dict: each worker learns on its own, so the
    -- always-500 mock pays the threshold once per worker that saw it
    bad:stats(true)
    local workers = {}
    for i = 1, 60 do
      local _, doc = get(n, "/chat?c=local&q=l" .. i)
      assert.is_true(doc.ok, doc.err)
      workers[doc.worker] = true
    end
    local st = bad:stats()
    assert.is_true(st.requests <= 8, "per-worker breakers: at most 4 per worker, saw " .. st.requests)
    for _ = 1, 10 do
      local _, doc = get(n, "/status?c=local")
      assert.is_nil(doc.status[2].shared_failures) -- no dict behind it
    end
  end)

  it("streams chunks as they arrive, without blocking the worker", function()
    local code, doc = get(n, "/stream?c=slow")
    assert.equal(200, code)
    assert.is_nil(doc.kind)
    assert.equal("echo: one two three four", doc.text)
    assert.is_true(doc.chunks >= 5)
    -- chunks come 150 ms apart: the first reaches the handler long before the end
    assert.is_true(doc.first < doc.total - 0.4, ("first chunk at %.3f s, end at %.3f s"):format(doc.first, doc.total))
    -- meanwhile the workers serve other requests: 4 chats during one stream
    -- (sh: mock.capture keeps the ASan runtime of `make sanitize` away from curl)
    local out = sh(("curl -s --max-time 10 '%s/stream?c=slow' & for i in 1 2 3 4; do curl -s --max-time 5 '%s/chat?c=main&q=w'$i; done; wait")
                     :format(n.base, n.base))
    assert.truthy(out:find("echo: w4", 1, true), out)
    assert.truthy(out:find("echo: one two three four", 1, true), out)
  end)

  it("ends a cut stream with stream_interrupted and the text so far", function()
    local code, doc = get(n, "/stream?c=cut")
    assert.equal(200, code)
    assert.equal("stream_interrupted", doc.kind)
    assert.is_true(#doc.partial > 0)
    assert.equal(doc.text, doc.partial)
    -- with attempts to spare, a stream whose chunks the caller has is not sent again
    cut:stats(true)
    code, doc = get(n, "/stream?c=cut3")
    assert.equal(200, code)
    assert.equal("stream_interrupted", doc.kind)
    assert.equal(doc.text, doc.partial)
    assert.equal(1, cut:stats().requests)
  end)

  it("runs a batch inside one handler (one light thread per attempt)", function()
    local code, doc = get(n, "/batch", 20)
    assert.equal(200, code)
    assert.equal(20, doc.ok)
    for i = 1, 20 do assert.equal("echo: b" .. i, doc.texts[i]) end
  end)

  it("works from an ngx.timer", function()
    local code, _, body = get(n, "/timer")
    assert.equal(200, code)
    assert.equal("echo: from a timer\n", body)
  end)

  it("refuses, naming the phase, where cosockets are unavailable", function()
    local out = sh(("curl -s -D - -o /dev/null --max-time 5 '%s/filter'"):format(n.base))
    assert.truthy(out:find("header_filter phase", 1, true), out)
    local _, _, body = get(n, "/init_worker")
    assert.truthy(body:find("init_worker phase", 1, true), body)
    assert.truthy(body:find("invalid_request", 1, true), body)
  end)

  it("shares a configured rpm bucket between the workers", function()
    -- rpm = 120: a bucket of 20 refilled at 2 per second, for both workers
    -- together. 26 requests at once: 20 go, 6 wait about 3 s. With a bucket
    -- per worker all 26 would go at once.
    good:stats(true)
    local t0 = tonumber(sh("date +%s.%N"))
    local out = sh(("seq 1 26 | xargs -P 26 -I{} curl -s --max-time 10 '%s/chat?c=rpm&q=rpm{}'"):format(n.base))
    local elapsed = tonumber(sh("date +%s.%N")) - t0
    local ok = select(2, out:gsub('"ok":true', ""))
    assert.equal(26, ok, out)
    assert.equal(26, good:stats().requests)
    assert.is_true(elapsed >= 2.2, ("26 requests took %.2f s: the shared bucket did not hold them"):format(elapsed))
    assert.is_true(elapsed < 8, ("26 requests took %.2f s"):format(elapsed))
  end)

  it("verifies TLS against lua_ssl_trusted_certificate and refuses a stranger", function()
    local _, doc = get(n, "/chat?c=tls&q=secure")
    assert.is_true(doc.ok, doc.err)
    assert.equal("echo: secure", doc.content)
    _, doc = get(n, "/chat?c=stranger&q=x")
    assert.is_false(doc.ok)
    assert.equal("connect", doc.kind)
    assert.truthy(doc.err:find("TLS handshake", 1, true), doc.err)
    -- openssl's verify result, or (when the handshake ended at once) lua-resty-core's assertion, caught
    assert.truthy(doc.err:find("self-signed certificate", 1, true) or doc.err:find("not accepted", 1, true), doc.err)
    -- both, several times: the handshake may end at once or later
    for i = 1, 6 do
      _, doc = get(n, "/chat?c=" .. (i % 2 == 0 and "tls" or "stranger") .. "&q=t" .. i)
      assert.are.equal(i % 2 == 0, doc.ok, doc.err)
    end
  end)

  it("reads answers delimited by the close of the connection, plain and streamed", function()
    local out = sh(("curl -s -D - -o /dev/null --max-time 5 -d '{\"messages\":[{\"content\":\"x\"}]}' '%s/close/v1/chat/completions'")
                     :format(n.base))
    assert.falsy(out:lower():find("content-length", 1, true), out)
    assert.falsy(out:lower():find("chunked", 1, true), out)
    local _, doc = get(n, "/chat?c=closer&q=bye")
    assert.is_true(doc.ok, doc.err)
    assert.equal("closed: bye", doc.content)
    local code, sdoc = get(n, "/stream?c=closer")
    assert.equal(200, code)
    assert.is_nil(sdoc.kind)
    assert.equal("one two three four ", sdoc.text)
  end)

  it("refuses an answer whose headers pass 64 KiB", function()
    local _, doc = get(n, "/chat?c=big&q=x")
    assert.is_false(doc.ok)
    assert.equal("http", doc.kind)
    assert.truthy(doc.err:find("headers exceed 64 KiB", 1, true), doc.err)
  end)

  it("keeps connections alive to the upstream", function()
    good:stats(true)
    for i = 1, 30 do
      local _, doc = get(n, "/chat?c=main&model=m2&q=k" .. i)
      assert.is_true(doc.ok, doc.err)
    end
    local st = good:stats()
    assert.equal(30, st.requests)
    assert.is_true(st.connections <= 4, "30 requests took " .. st.connections .. " connections")
    assert_clean_log(n)
  end)
end)

-- Issue 12, items 1 and 2: the cosocket path reads an answer through the
-- core's HTTP/1.1 decoder (csrc/http1.c), every part capped, every read
-- bounded by the attempt's timeout.total. Hostile upstreams are locations of
-- this nginx that write raw bytes on the request's socket, each for a
-- bounded time; nginx runs under `ulimit -v` so the old unbounded reads
-- could not eat the machine.
describe("OpenResty transport against hostile framing", function()
  local available = nginx.available()
  if not available then return end
  local n, slow

  -- a location writing `head`, then `piece` every `every` seconds, `times` times
  local function raw(path, head, piece, every, times)
    return ([[
          location = /%s/v1/chat/completions { content_by_lua_block {
            ngx.req.read_body()
            local sock = assert(ngx.req.socket(true))
            sock:send(%s)
            for _ = 1, %d do
              if %s > 0 then ngx.sleep(%s) end
              if not sock:send(%s) then break end
            end
          } }
    ]]):format(path, head, times, every, every, piece)
  end

  setup(function()
    slow = mock.start { name = "slow-total", stream_chunk_ms = 700 }
    local function client(name, tmo)
      return ("%s = llmrelay.new { endpoints = { { name = %q, base_url = 'http://127.0.0.1:$PORT/%s/v1' } }, "
              .. "retry = { max_attempts = 1 }, timeout = %s },\n"):format(name, name, name, tmo)
    end
    local T3 = "{ first_byte = 2, idle = 2, total = 3 }"
    local T6 = "{ first_byte = 2, idle = 2, total = 6 }"
    n = nginx.start {
      workers = 2, memory_limit_mb = 1024,
      init = [[
        local llmrelay = require "llmrelay"
        hostile = {
      ]] .. client("ones", T3) .. client("ext", T3) .. client("drip", T3) .. client("continue", T3)
        .. client("trailers", T6) .. ([[
          stream = llmrelay.new { endpoints = { { name = "stream", base_url = %q } },
                                  retry = { max_attempts = 1 }, timeout = { first_byte = 2, idle = 2, total = 2.5 } },
        }
      ]]):format(slow.url),
      http = [[
        lua_socket_log_errors off;
        server {
          listen 127.0.0.1:$PORT;
          location = /t { content_by_lua_block {
            local t0 = ngx.now()
            local resp, err = hostile[ngx.var.arg_c]:chat_completion { model = "m",
              messages = { { role = "user", content = "x" } } }
            ngx.update_time()
            ngx.say(require("cjson").encode { ok = resp ~= nil, kind = err and err.kind,
              message = err and err.message, elapsed = ngx.now() - t0 })
          } }
          location = /s { content_by_lua_block {
            local t0, chunks, failure = ngx.now(), 0, nil
            for chunk, err in hostile.stream:stream { model = "m", messages = { { role = "user",
                content = "one two three four five six seven eight nine ten" } } } do
              if not chunk then failure = err break end
              chunks = chunks + 1
            end
            ngx.update_time()
            ngx.say(require("cjson").encode { chunks = chunks, kind = failure and failure.kind,
              message = failure and failure.message, elapsed = ngx.now() - t0 })
          } }
      ]]
        -- 200, chunked, then 2 MB of '1' with no CRLF (the worker killer, bounded)
        .. raw("ones", [["HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"]],
               [[string.rep("1", 65536)]], 0, 32)
        -- a chunk size, then 2 MB of chunk extension
        .. raw("ext", [["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;"]], [[string.rep("e", 65536)]], 0, 32)
        -- a status line, then one header byte every 0.5 s for 6 s
        .. raw("drip", [["HTTP/1.1 200 OK\r\n"]], [["X"]], 0.5, 12)
        -- 50 interim answers at once, then silence for 4 s
        .. raw("continue", [[string.rep("HTTP/1.1 100 Continue\r\n\r\n", 50)]], [[""]], 4, 1)
        -- a whole chunked body up to its last chunk, then a trailer line every 50 ms for 10 s
        .. raw("trailers", [["HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"]],
               [["X-Trailer: 1\r\n"]], 0.05, 200)
        .. "}\n",
    }
  end)

  teardown(function()
    if n then n:stop() end
    mock.stop_all()
  end)

  local function call(c, path)
    local code, doc, body = get(n, (path or "/t?c=") .. c, 20)
    assert.equal(200, code, body)
    return doc
  end

  it("refuses an endless chunk-size line or extension at its cap, at once", function()
    local doc = call("ones")
    assert.is_false(doc.ok)
    assert.equal("connect", doc.kind, doc.message) -- no answer has such a size: malformed, as libcurl says
    assert.truthy(doc.message:find("answer chunk size overflows 64 bits", 1, true), doc.message)
    assert.is_true(doc.elapsed < 2, ("took %.2f s"):format(doc.elapsed))
    doc = call("ext")
    assert.equal("http", doc.kind, doc.message)
    assert.truthy(doc.message:find("answer chunk-size line longer than 1024 bytes", 1, true), doc.message)
    assert.is_true(doc.elapsed < 2, ("took %.2f s"):format(doc.elapsed))
  end)

  it("ends headers dripped a byte at a time at timeout.total, and says so", function()
    local doc = call("drip")
    assert.equal("timeout", doc.kind, doc.message)
    assert.equal("timeout.total (3 s) reached while reading the answer's headers", doc.message)
    assert.is_true(doc.elapsed >= 2.5 and doc.elapsed < 5, ("took %.2f s"):format(doc.elapsed))
  end)

  it("refuses more than 8 interim (1xx) answers", function()
    local doc = call("continue")
    assert.equal("http", doc.kind, doc.message)
    assert.equal("more than 8 interim (1xx) answers before the final one", doc.message)
    assert.is_true(doc.elapsed < 2, ("took %.2f s"):format(doc.elapsed))
  end)

  it("refuses endless trailers at 32 lines", function()
    local doc = call("trailers")
    assert.equal("http", doc.kind, doc.message)
    assert.equal("the answer has more than 32 trailer lines", doc.message)
    assert.is_true(doc.elapsed < 5, ("took %.2f s"):format(doc.elapsed))
  end)

  it("names timeout.total, not idle, when a live stream outlasts the attempt", function()
    local doc = call("", "/s")
    assert.is_true(doc.chunks >= 1)
    assert.equal("stream_interrupted", doc.kind, doc.message)
    assert.truthy(doc.message:find("timeout.total (2.5 s) reached while reading the answer's body", 1, true), doc.message)
    assert.is_true(doc.elapsed < 4.5, ("took %.2f s"):format(doc.elapsed))
    local log = n:error_log()
    assert.falsy(log:find("[alert]", 1, true), log)
    assert.falsy(log:find("[crit]", 1, true), log)
  end)
end)
