-- Behaviour tests of the C mock server (tools/mock_*.c) through the curl CLI.
-- Run from the repo root: busted --lua=lua5.4 spec/mock_spec.lua
local cjson = require "cjson"
local mock = require "spec.support.mock"

local q, read_file, capture = mock.quote, mock.read_file, mock.capture

-- curl(url, {body=, headers={}, timeout=, args=}) -> {status, headers
-- (lower-cased names), body, rc (curl exit code), time}
local function curl(url, o)
  o = o or {}
  local hf, bf, df = os.tmpname(), os.tmpname(), os.tmpname()
  local cmd = { "curl -s --max-time", o.timeout or 5, "-D", q(hf), "-o", q(bf),
                "-w '%{http_code} %{time_total}'" }
  for _, h in ipairs(o.headers or {}) do cmd[#cmd + 1] = "-H " .. q(h) end
  if o.body then
    local f = io.open(df, "wb")
    f:write(o.body)
    f:close()
    cmd[#cmd + 1] = "--data-binary @" .. q(df)
    if not (o.args or ""):find("Content%-Type") then
      cmd[#cmd + 1] = "-H 'Content-Type: application/json'"
    end
  end
  if o.args then cmd[#cmd + 1] = o.args end
  cmd[#cmd + 1] = q(url) .. "; echo \" $?\""
  local out = capture(table.concat(cmd, " "))
  local code, t, rc = out:match("(%d+) ([%d.]+)%s+(%d+)")
  local raw = read_file(hf) or ""
  -- keep the last header block (skips "100 Continue")
  local last = raw
  for block in raw:gmatch("(HTTP/[^\r\n]*\r\n.-\r\n\r\n)") do last = block end
  local headers = {}
  for k, v in last:gmatch("([%w%-]+):%s*([^\r\n]*)") do headers[k:lower()] = v end
  local res = { status = tonumber(code), time = tonumber(t), rc = tonumber(rc),
                headers = headers, body = read_file(bf) or "" }
  os.remove(hf); os.remove(bf); os.remove(df)
  return res
end

local function chat_body(content, extra)
  local t = { model = "gpt-test", messages = {
    { role = "system", content = "be brief" },
    { role = "user", content = content or "hello" } } }
  for k, v in pairs(extra or {}) do t[k] = v end
  return cjson.encode(t)
end

local function chat(m, o)
  o = o or {}
  o.body = o.body or chat_body(o.content)
  return curl(m.url .. "/chat/completions", o)
end

describe("mock-llm", function()
  local m
  after_each(function()
    if m then m:stop() end
    m = nil
  end)
  teardown(mock.stop_all)

  it("answers a chat completion that echoes the last content", function()
    m = mock.start{ name = "a" }
    local r = chat(m, { content = 'say "hi"\nnow' })
    assert.equal(200, r.status)
    assert.equal("application/json", r.headers["content-type"])
    assert.equal("a-1", r.headers["x-request-id"])
    local j = cjson.decode(r.body)
    assert.equal("chatcmpl-a-1", j.id)
    assert.equal("chat.completion", j.object)
    assert.equal("gpt-test", j.model)
    assert.is_number(j.created)
    assert.equal("assistant", j.choices[1].message.role)
    assert.equal('echo: say "hi"\nnow', j.choices[1].message.content)
    assert.equal("stop", j.choices[1].finish_reason)
    assert.is_true(j.usage.prompt_tokens >= 1)
    assert.equal(j.usage.prompt_tokens + j.usage.completion_tokens, j.usage.total_tokens)
    -- no content, no model
    r = chat(m, { body = '{"messages":[]}' })
    j = cjson.decode(r.body)
    assert.equal("hello from a", j.choices[1].message.content)
    assert.equal("mock", j.model)
    -- long content is cut at <= 200 bytes without breaking escapes
    r = chat(m, { content = string.rep("\"é😀", 100) })
    j = cjson.decode(r.body)
    assert.is_true(#j.choices[1].message.content <= 6 + 200)
    assert.equal(1, j.choices[1].message.content:find("echo: \"é😀", 1, true))
    -- chunked request body
    r = chat(m, { content = "chunky", args = "-H 'Transfer-Encoding: chunked'" })
    assert.equal("echo: chunky", cjson.decode(r.body).choices[1].message.content)
  end)

  it("serves health, models, 404 and stats", function()
    m = mock.start{ name = "b" }
    local r = curl(m.base .. "/health")
    assert.same({ status = "ok", name = "b" }, cjson.decode(r.body))
    r = curl(m.url .. "/models")
    assert.equal("mock-model", cjson.decode(r.body).data[1].id)
    r = curl(m.base .. "/nope")
    assert.equal(404, r.status)
    assert.is_table(cjson.decode(r.body).error)
    local s = m:stats()
    assert.equal(0, s.requests)
    assert.equal(0, s.connections)
    assert.equal("b", s.name)
  end)

  it("keeps connections alive", function()
    m = mock.start{ name = "k" }
    local f = os.tmpname()
    local h = io.open(f, "wb"); h:write(chat_body("x")); h:close()
    local out = capture("curl -s --max-time 5 -H 'Content-Type: application/json' " ..
      "--data-binary @" .. q(f) .. " -o /dev/null -o /dev/null " ..
      "-w '%{http_code}:%{num_connects}\\n' " ..
      q(m.url .. "/chat/completions") .. " " .. q(m.url .. "/chat/completions"))
    os.remove(f)
    assert.equal("200:1\n200:0\n", out)
    local s = m:stats()
    assert.equal(2, s.requests)
    assert.equal(1, s.connections)
    assert.equal(2, s.status["200"])
  end)

  it("fails the first N requests", function()
    m = mock.start{ fail_first = 1 }
    local r = chat(m)
    assert.equal(500, r.status)
    assert.equal("server_error", cjson.decode(r.body).error.type)
    assert.equal(200, chat(m).status)
    local s = m:stats()
    assert.equal(1, s.status["500"])
    assert.equal(1, s.status["200"])
  end)

  it("fails with an HTML body and a chosen status", function()
    m = mock.start{ fail_rate = 1, fail_status = 502, fail_body = "html" }
    local r = chat(m)
    assert.equal(502, r.status)
    assert.truthy(r.headers["content-type"]:find("text/html", 1, true))
    assert.truthy(r.body:find("<html>", 1, true))
  end)

  it("throttles the first N requests", function()
    m = mock.start{ throttle_first = 1, throttle_ms = 1500 }
    local r = chat(m)
    assert.equal(429, r.status)
    assert.equal("1500", r.headers["retry-after-ms"])
    assert.equal("2", r.headers["retry-after"])
    local e = cjson.decode(r.body).error
    assert.equal("rate_limit_exceeded", e.code)
    assert.equal("requests", e.type)
    assert.equal(200, chat(m).status)
  end)

  it("rate limits with a token bucket and full headers", function()
    m = mock.start{ rps = 1, burst = 2 }
    local r1, r2, r3 = chat(m), chat(m), chat(m)
    assert.equal(200, r1.status)
    assert.equal("60", r1.headers["x-ratelimit-limit-requests"])
    assert.equal("1", r1.headers["x-ratelimit-remaining-requests"])
    assert.truthy(r1.headers["x-ratelimit-reset-requests"]:match("^[%d.]+m?s$"))
    assert.equal(200, r2.status)
    assert.equal("0", r2.headers["x-ratelimit-remaining-requests"])
    assert.equal(429, r3.status)
    local ms = tonumber(r3.headers["retry-after-ms"])
    assert.is_true(ms > 0 and ms <= 1000)
    assert.is_true(tonumber(r3.headers["retry-after"]) >= 1)
    assert.equal("0", r3.headers["x-ratelimit-remaining-requests"])
    assert.truthy(r3.headers["x-ratelimit-reset-requests"]:match("^[%d.]+m?s$"))
    assert.equal("rate_limit_exceeded", cjson.decode(r3.body).error.code)
    assert.equal(1, m:stats().status["429"])
  end)

  it("honours --rl-headers retry-after and none", function()
    m = mock.start{ rps = 0.5, burst = 1, rl_headers = "retry-after" }
    assert.equal(200, chat(m).status)
    local r = chat(m)
    assert.equal(429, r.status)
    assert.equal("1", r.headers["retry-after"])
    assert.is_nil(r.headers["retry-after-ms"])
    m:stop()
    m = mock.start{ rps = 0.5, burst = 1, rl_headers = "none" }
    r = chat(m)
    assert.is_nil(r.headers["x-ratelimit-remaining-requests"])
    r = chat(m)
    assert.equal(429, r.status)
    assert.is_nil(r.headers["retry-after"])
    assert.is_nil(r.headers["retry-after-ms"])
  end)

  it("changes its rate on --rps-schedule, counted from the first chat request", function()
    m = mock.start{ rps_schedule = "0:50,2:10", burst = 5 }
    local s = m:stats()
    assert.equal(50, s.rps)
    assert.equal(-1, s.rps_clock)
    assert.same({ { from = 0, rps = 50, passed = 0, limited = 0 },
                  { from = 2, rps = 10, passed = 0, limited = 0 } }, s.rps_phases)
    mock.run("sleep 0.3")
    assert.equal(-1, m:stats().rps_clock) -- the clock waits for a chat request
    local r = chat(m)
    assert.equal(200, r.status)
    assert.equal("3000", r.headers["x-ratelimit-limit-requests"])
    local first_429
    for _ = 1, 10 do -- 4 tokens left: a 429 soon, at 50 req/s
      r = chat(m)
      if r.status == 429 then first_429 = r break end
    end
    assert.is_truthy(first_429)
    assert.is_true(tonumber(first_429.headers["retry-after-ms"]) <= 20)
    s = m:stats(true) -- zeroes the phase counters, not the clock
    assert.is_true(s.rps_clock > 0 and s.rps_clock < 2, tostring(s.rps_clock))
    assert.is_true(s.rps_phases[1].passed >= 5 and s.rps_phases[1].limited >= 1)
    mock.run("sleep " .. (2.05 - m:stats().rps_clock))
    s = m:stats()
    assert.equal(10, s.rps)
    assert.same({ passed = 0, limited = 0 },
                { passed = s.rps_phases[1].passed, limited = s.rps_phases[1].limited })
    local codes = {}
    for i = 1, 40 do codes[i] = chat(m) end -- far more than 10 req/s + a burst of 5
    s = m:stats()
    local p2 = s.rps_phases[2]
    assert.equal(40, p2.passed + p2.limited)
    -- at most the burst plus 10 req/s since the change (slowness only lowers it)
    assert.is_true(p2.passed >= 5 and p2.passed <= 5 + 10 * (s.rps_clock - 2) + 1,
      ("passed %d in %.2f s"):format(p2.passed, s.rps_clock - 2))
    assert.is_true(p2.limited >= 1)
    for _, x in ipairs(codes) do
      if x.status == 429 then
        assert.equal("600", x.headers["x-ratelimit-limit-requests"])
        local ms = tonumber(x.headers["retry-after-ms"])
        assert.is_true(ms > 0 and ms <= 100, tostring(ms))
      end
    end
    m:stop()
    for _, bad in ipairs{ "--rps-schedule 5:10", "--rps-schedule 0:10,0:5", "--rps-schedule 0:0",
                          "--rps-schedule 0:10,", "--rps 1 --rps-schedule 0:1" } do
      local rc = capture(q(mock.bin) .. " " .. bad .. " >/dev/null 2>&1; echo $?")
      assert.equal("2", rc:match("%d+"), bad)
    end
  end)

  it("checks the API key and echoes a wrong one", function()
    m = mock.start{ auth_key = "sk-good" }
    local r = chat(m, { headers = { "Authorization: Bearer sk-wrong-123" } })
    assert.equal(401, r.status)
    local e = cjson.decode(r.body).error
    assert.equal("Incorrect API key provided: sk-wrong-123", e.message)
    assert.equal("invalid_api_key", e.code)
    assert.equal(401, chat(m).status)
    assert.equal(200, chat(m, { headers = { "Authorization: Bearer sk-good" } }).status)
    assert.equal(2, m:stats().auth_failures)
  end)

  it("rejects bodies with the bad marker", function()
    m = mock.start{ bad_marker = "POISON" }
    local r = chat(m, { content = "this is POISON" })
    assert.equal(400, r.status)
    assert.equal("bad request marker found", cjson.decode(r.body).error.message)
    assert.equal(200, chat(m).status)
  end)

  it("knows only the --models list", function()
    m = mock.start{ models = { "gpt-a", "gpt-b" } }
    local r = chat(m, { body = '{"model":"gpt-x","messages":[]}' })
    assert.equal(404, r.status)
    local e = cjson.decode(r.body).error
    assert.equal("model_not_found", e.code)
    assert.equal("The model `gpt-x` does not exist", e.message)
    assert.equal(200, chat(m, { body = '{"model":"gpt-b","messages":[]}' }).status)
    local l = cjson.decode(curl(m.url .. "/models").body)
    assert.equal("gpt-a", l.data[1].id)
    assert.equal("gpt-b", l.data[2].id)
  end)

  it("resets connections", function()
    m = mock.start{ reset_rate = 1 }
    local r = chat(m)
    assert.is_true(r.rc == 52 or r.rc == 56, "curl exit " .. tostring(r.rc))
    assert.equal(1, m:stats().resets)
  end)

  it("hangs the first N requests", function()
    m = mock.start{ hang_first = 1 }
    local r = chat(m, { timeout = 1 })
    assert.equal(28, r.rc)
    assert.equal(200, chat(m).status)
    local s = m:stats()
    assert.equal(1, s.hangs)
    assert.equal(2, s.requests)
  end)

  it("delays answers with --latency-ms", function()
    m = mock.start{ latency_ms = 200, fail_first = 1 }
    local r = chat(m)
    assert.equal(500, r.status)
    assert.is_true(r.time >= 0.2, "took " .. r.time)
    r = chat(m)
    assert.equal(200, r.status)
    assert.is_true(r.time >= 0.2, "took " .. r.time)
  end)

  it("streams server-sent events", function()
    m = mock.start{ name = "s" }
    local plain = cjson.decode(chat(m, { content = "one two  three" }).body)
    local r = chat(m, { body = chat_body("one two  three",
      { stream = true, stream_options = { include_usage = true } }), args = "-N" })
    assert.equal(200, r.status)
    assert.equal("text/event-stream", r.headers["content-type"])
    assert.equal("chunked", r.headers["transfer-encoding"])
    local datas = {}
    for d in r.body:gmatch("data: ([^\n]*)\n\n") do datas[#datas + 1] = d end
    assert.equal("[DONE]", datas[#datas])
    local text, finish, usage = {}, nil, nil
    for i = 1, #datas - 1 do
      local c = cjson.decode(datas[i])
      assert.equal("chat.completion.chunk", c.object)
      assert.equal("chatcmpl-s-2", c.id)
      if #c.choices == 0 then
        usage = c.usage
      else
        text[#text + 1] = c.choices[1].delta.content or ""
        if c.choices[1].finish_reason ~= cjson.null then finish = c.choices[1].finish_reason end
      end
    end
    assert.equal(plain.choices[1].message.content, table.concat(text))
    assert.equal("stop", finish)
    assert.is_table(usage)
    assert.equal(usage.prompt_tokens + usage.completion_tokens, usage.total_tokens)
    assert.equal(1, m:stats().streams)
    -- "stream" : true with spaces, no usage chunk
    r = chat(m, { body = '{"messages":[{"content":"a b"}], "stream" : true}', args = "-N" })
    assert.falsy(r.body:find('"usage"', 1, true))
    assert.truthy(r.body:find("data: [DONE]\n\n", 1, true))
  end)

  it("injects stream faults", function()
    m = mock.start{ stream_cut_after = 2 }
    local body = chat_body("a b c d", { stream = true })
    local r = chat(m, { body = body, args = "-N" })
    assert.equal(18, r.rc) -- transfer closed with outstanding read data
    m:stop()
    m = mock.start{ stream_stall_after = 2 }
    r = chat(m, { body = body, args = "-N", timeout = 1 })
    assert.equal(28, r.rc)
    assert.equal(1, m:stats().hangs)
    m:stop()
    m = mock.start{ stream_chunk_ms = 50 }
    r = chat(m, { body = body, args = "-N" })
    assert.equal(0, r.rc)
    assert.is_true(r.time >= 0.3, "took " .. r.time) -- 8 events
  end)

  it("handles large bodies, Expect: 100-continue and the 16 MiB cap", function()
    m = mock.start{}
    local big = chat_body(string.rep("x", 2 * 1024 * 1024))
    local r = chat(m, { body = big, args = "-H 'Expect: 100-continue'" })
    assert.equal(200, r.status)
    r = chat(m, { body = string.rep("y", 16 * 1024 * 1024 + 1) })
    assert.equal(413, r.status)
  end)

  it("resets /stats with ?reset=1", function()
    m = mock.start{ fail_first = 1 }
    chat(m); chat(m)
    local s = m:stats(true)
    assert.equal(2, s.requests)
    assert.equal(2, s.connections)
    s = m:stats()
    assert.equal(0, s.requests)
    assert.equal(0, s.connections)
    assert.same({}, s.status)
    local final = m:stop()
    assert.equal(0, final.requests)
  end)

  it("gives a free port and exits 2 on bad flags", function()
    local port = mock.free_port()
    local r = curl("http://127.0.0.1:" .. port .. "/health", { timeout = 2 })
    assert.equal(7, r.rc) -- connection refused
    local rc = capture(q(mock.bin) .. " --nope 1 >/dev/null 2>&1; echo $?")
    assert.equal("2", rc:match("%d+"))
    rc = capture(q(mock.bin) .. " --fail-rate 2 >/dev/null 2>&1; echo $?")
    assert.equal("2", rc:match("%d+"))
  end)
end)

-- --abuse MODE: hostile framing, read with a raw TCP client (bash's
-- /dev/tcp) for a bounded time and number of bytes.
describe("mock-llm --abuse", function()
  local now = require("llmrelay.core").now
  local m
  after_each(function()
    if m then m:stop() end
    m = nil
  end)
  teardown(mock.stop_all)

  local CHUNKED_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" ..
    "Transfer-Encoding: chunked\r\n"

  -- A shell command: one chat request to port, then what the mock sends is
  -- written to out, read for at most o.seconds and o.max_bytes (after
  -- o.idle seconds of not reading at all).
  local function raw_cmd(port, out, o)
    local body = chat_body("hi")
    local req = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" ..
      "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " ..
      #body .. "\r\n\r\n" .. body
    local script = "exec 3<>/dev/tcp/127.0.0.1/" .. port .. " || exit 1; " ..
      "printf '%s' " .. q(req) .. " >&3; " ..
      (o.idle and ("sleep " .. o.idle .. "; ") or "") ..
      -- cat writes what it reads at once: killed by timeout, nothing is lost
      "timeout " .. o.seconds .. " cat <&3 | head -c " .. o.max_bytes .. " >" .. q(out)
    return "bash -c " .. q(script)
  end

  -- -> the bytes read, the seconds it took
  local function raw(port, o)
    local out = os.tmpname()
    local t0 = now()
    capture(raw_cmd(port, out, o))
    local text = read_file(out) or ""
    os.remove(out)
    return text, now() - t0
  end

  -- the mock's open sockets drop to 1 (the /stats request itself) within ~3 s
  local function wait_closed()
    local s
    for _ = 1, 30 do
      s = m:stats()
      if s.open_sockets == 1 then return s end
      capture("sleep 0.1")
    end
    return s
  end

  it("chunk-size-endless: '1's with no CRLF as fast as the peer reads, bounded when it does not", function()
    m = mock.start{ abuse = "chunk-size-endless" }
    local text = raw(m.port, { seconds = 10, max_bytes = 4 * 1024 * 1024 })
    assert.equal(4 * 1024 * 1024, #text)
    assert.equal(1, text:find(CHUNKED_HEAD, 1, true))
    local body_at = assert(text:find("\r\n\r\n", 1, true)) + 4
    assert.is_nil(text:find("[^1]", body_at), "only '1's after the head")
    assert.is_true(#text - body_at > 4 * 1024 * 1024 - 1024)
    -- a peer that reads nothing for 1 s: the mock queues a bounded amount
    raw(m.port, { idle = 1, seconds = 2, max_bytes = 100 })
    local hwm = tonumber(read_file("/proc/" .. m.pid .. "/status"):match("VmHWM:%s*(%d+)"))
    assert.is_true(hwm < 64 * 1024, "mock VmHWM " .. hwm .. " kB")
    local s = wait_closed()
    assert.equal(1, s.open_sockets) -- both abused connections ended with their peers
    assert.equal(2, s.abuses)
    assert.equal(2, s.requests)
    assert.same({}, s.status)
  end)

  it("headers-drip: the status line, then one header byte every 2 s; other connections are served", function()
    m = mock.start{ abuse = "headers-drip" }
    local out = os.tmpname()
    local t0 = now()
    local res = capture(raw_cmd(m.port, out, { seconds = 4.5, max_bytes = 200 }) ..
      " & sleep 0.5; curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 3 " ..
      q(m.base .. "/health") .. "; wait")
    local elapsed = now() - t0
    local text = read_file(out) or ""
    os.remove(out)
    local code, t = res:match("(%d+) ([%d.]+)")
    assert.equal("200", code, "the mock served /health while dripping")
    assert.is_true(tonumber(t) < 2, "/health took " .. t .. " s")
    assert.is_true(elapsed >= 4.4, "the drip ended after " .. elapsed .. " s")
    local head = "HTTP/1.1 200 OK\r\n"
    assert.equal(1, text:find(head, 1, true), text)
    local drip = text:sub(#head + 1)
    assert.is_true(#drip >= 1 and #drip <= 4, "dripped " .. #drip .. " bytes in 4.5 s")
    assert.equal(drip, ("X-Drip: y\r\n"):sub(1, #drip))
    local s = wait_closed()
    assert.equal(1, s.abuses)
    assert.equal(1, s.open_sockets)
  end)

  it("continue-endless: a 100 Continue every 50 ms", function()
    m = mock.start{ abuse = "continue-endless" }
    local text, elapsed = raw(m.port, { seconds = 1.5, max_bytes = 100000 })
    local one = "HTTP/1.1 100 Continue\r\n\r\n"
    local n = #text // #one
    assert.equal(text, one:rep(n), "nothing but 100 Continue")
    assert.is_true(n >= 2 and n <= 40, n .. " answers in " .. elapsed .. " s")
    assert.equal(1, wait_closed().abuses)
  end)

  it("trailers-endless: a chunked chat answer up to 0\\r\\n, then a trailer every 100 ms", function()
    m = mock.start{ abuse = "trailers-endless" }
    local text, elapsed = raw(m.port, { seconds = 1.5, max_bytes = 100000 })
    assert.equal(1, text:find(CHUNKED_HEAD, 1, true), text)
    local size, json, rest = text:match("\r\n\r\n(%x+)\r\n(.-)\r\n0\r\n(.*)$")
    assert.equal(tonumber(size, 16), #json)
    assert.equal("chat.completion", cjson.decode(json).object)
    local n = #rest // #"X-T: y\r\n"
    assert.equal(rest, ("X-T: y\r\n"):rep(n), "nothing but trailer lines")
    assert.is_true(n >= 2 and n <= 20, n .. " trailers in " .. elapsed .. " s")
    local s = wait_closed()
    assert.equal(1, s.abuses)
    assert.same({}, s.status)
  end)

  it("header-line-huge: a 200 KiB header line, then the normal answer", function()
    m = mock.start{ abuse = "header-line-huge" }
    local text = raw(m.port, { seconds = 5, max_bytes = 1024 * 1024 })
    local head, body = text:match("^(.-\r\n)\r\n(.*)$")
    assert.is_string(head)
    assert.equal(1, head:find("HTTP/1.1 200 OK\r\n", 1, true))
    assert.is_truthy(head:find("\r\nX-Huge: " .. ("a"):rep(200 * 1024) .. "\r\n", 1, true))
    assert.equal(tonumber(head:match("Content%-Length: (%d+)")), #body)
    assert.equal("echo: hi", cjson.decode(body).choices[1].message.content)
    local s = wait_closed()
    assert.equal(1, s.abuses)
    assert.same({ ["200"] = 1 }, s.status)
    -- other requests are abused too; a bad mode is a usage error
    local rc = capture(q(mock.bin) .. " --abuse nope >/dev/null 2>&1; echo $?")
    assert.equal("2", rc:match("%d+"))
  end)
end)

-- SSE text -> { {event = name|nil, data = decoded|raw}, ... }
local function sse(body)
  local evs = {}
  for block in (body .. "\n\n"):gmatch("(.-)\n\n") do
    if block ~= "" then
      local name = block:match("^event: ([^\n]*)")
      local data = block:match("data: (.*)$")
      local ok, v = pcall(cjson.decode, data or "")
      evs[#evs + 1] = { event = name, data = ok and v or data }
    end
  end
  return evs
end

describe("mock-llm beyond chat", function()
  local m
  after_each(function()
    if m then m:stop() end
    m = nil
  end)

  local function post(path, t, o)
    o = o or {}
    o.body = cjson.encode(t)
    return curl(m.url .. path, o)
  end

  it("embeddings: one vector per input, dimensions, usage = body bytes / 4", function()
    m = mock.start{ name = "emb" }
    local body = cjson.encode{ model = "text-embedding-3-small", input = { "a", "bb" },
                               dimensions = 3 }
    local r = curl(m.url .. "/embeddings", { body = body })
    assert.equal(200, r.status)
    assert.equal("emb-1", r.headers["x-request-id"])
    local v = cjson.decode(r.body)
    assert.equal("list", v.object)
    assert.equal("text-embedding-3-small", v.model)
    assert.equal(2, #v.data)
    for i, d in ipairs(v.data) do
      assert.equal("embedding", d.object)
      assert.equal(i - 1, d.index)
      assert.equal(3, #d.embedding)
      for _, x in ipairs(d.embedding) do assert.is_true(x >= -1 and x < 1) end
    end
    assert.same({ prompt_tokens = #body // 4, total_tokens = #body // 4 }, v.usage)
    -- deterministic: the same input gives the same vectors
    local again = cjson.decode(curl(m.url .. "/embeddings", { body = body }).body)
    assert.same(v.data, again.data)
    assert.equal(1, #cjson.decode(post("/embeddings", { input = "one" }).body).data)
    assert.equal(1, #cjson.decode(post("/embeddings", { input = { 1, 2, 3 } }).body).data)
    local toks = cjson.decode(post("/embeddings", { input = { { 1 }, { 2 }, { 3 } } }).body)
    assert.equal(3, #toks.data)
    assert.equal(8, #toks.data[1].embedding)
    -- the vectors hash the input only; base64 (the Node SDK's default) is
    -- the same values as little-endian float32
    local plain = cjson.decode(post("/embeddings", { input = "same", dimensions = 4 }).body)
    local b64 = cjson.decode(post("/embeddings", { model = "x", input = "same", dimensions = 4,
                                                   encoding_format = "base64" }).body)
    local A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    local bits = b64.data[1].embedding:gsub("=", ""):gsub(".", function(c)
      local v, t = A:find(c, 1, true) - 1, {}
      for k = 5, 0, -1 do t[#t + 1] = (v >> k) & 1 end
      return table.concat(t)
    end)
    bits = bits:sub(1, #bits // 8 * 8)
    local bytes = bits:gsub("%d%d%d%d%d%d%d%d", function(b) return string.char(tonumber(b, 2)) end)
    assert.equal(16, #bytes)
    for d = 1, 4 do
      local f = string.unpack("<f", bytes, 4 * d - 3)
      assert.is_true(math.abs(f - plain.data[1].embedding[d]) < 1e-6, d)
    end
  end)

  it("responses: plain, with input items, failed and incomplete", function()
    m = mock.start{ name = "rs" }
    local body = cjson.encode{ model = "gpt-r", input = "hi there" }
    local r = curl(m.url .. "/responses", { body = body })
    assert.equal(200, r.status)
    assert.equal("rs-1", r.headers["x-request-id"])
    local v = cjson.decode(r.body)
    assert.equal("resp_rs-1", v.id)
    assert.equal("response", v.object)
    assert.equal("completed", v.status)
    assert.equal("gpt-r", v.model)
    assert.equal("message", v.output[1].type)
    assert.equal("assistant", v.output[1].role)
    assert.same("output_text", v.output[1].content[1].type)
    assert.equal("echo: hi there", v.output[1].content[1].text)
    local out = #"echo: hi there" // 4
    assert.same({ input_tokens = #body // 4, output_tokens = out,
                  total_tokens = #body // 4 + out }, v.usage)
    local items = post("/responses", { model = "gpt-r", instructions = "be brief", input = {
      { role = "user", content = { { type = "input_text", text = "from items" } } } } })
    assert.equal("echo: from items", cjson.decode(items.body).output[1].content[1].text)
    m:stop()
    m = mock.start{ responses_status = "failed" }
    v = cjson.decode(post("/responses", { input = "x" }).body)
    assert.equal("failed", v.status)
    assert.same({}, v.output)
    assert.equal("server_error", v.error.code)
    m:stop()
    m = mock.start{ responses_status = "incomplete" }
    v = cjson.decode(post("/responses", { input = "x" }).body)
    assert.equal("incomplete", v.status)
    assert.equal("max_output_tokens", v.incomplete_details.reason)
    local rc = capture(q(mock.bin) .. " --responses-status nope >/dev/null 2>&1; echo $?")
    assert.equal("2", rc:match("%d+"))
  end)

  it("responses stream: named events, sequence numbers, no [DONE]", function()
    m = mock.start{ name = "rs" }
    local body = cjson.encode{ model = "gpt-r", input = "one two", stream = true }
    local r = curl(m.url .. "/responses", { body = body })
    assert.equal(200, r.status)
    assert.equal("rs-1", r.headers["x-request-id"])
    assert.matches("text/event%-stream", r.headers["content-type"])
    assert.is_nil(r.body:find("[DONE]", 1, true))
    local evs = sse(r.body)
    local names, text = {}, ""
    for i, e in ipairs(evs) do
      names[i] = e.event
      assert.equal(e.event, e.data.type)
      assert.equal(i - 1, e.data.sequence_number)
      if e.data.delta then text = text .. e.data.delta end
    end
    assert.same({ "response.created", "response.output_text.delta", "response.output_text.delta",
                  "response.output_text.delta", "response.output_text.done",
                  "response.completed" }, names)
    assert.equal("echo: one two", text)
    assert.equal("in_progress", evs[1].data.response.status)
    assert.equal("echo: one two", evs[5].data.text)
    local fin = evs[6].data.response
    assert.equal("completed", fin.status)
    assert.equal("resp_rs-1", fin.id)
    assert.equal("echo: one two", fin.output[1].content[1].text)
    assert.equal(#body // 4, fin.usage.input_tokens)
    assert.equal(#"echo: one two" // 4, fin.usage.output_tokens)
    assert.equal(1, m:stats().streams)
  end)

  it("responses stream faults: cut, error event, end, failed/incomplete terminal", function()
    local body = cjson.encode{ input = "one two", stream = true }
    m = mock.start{ stream_cut_after = 2 }
    local r = curl(m.url .. "/responses", { body = body })
    local evs = sse(r.body)
    assert.equal(2, #evs)
    assert.equal("response.output_text.delta", evs[2].event)
    assert.equal(1, m:stats().stream_cuts)
    m:stop()
    m = mock.start{ stream_error_after = 1 }
    evs = sse(curl(m.url .. "/responses", { body = body }).body)
    assert.equal(2, #evs)
    assert.equal("error", evs[2].event)
    assert.same({ type = "error", sequence_number = 1, code = "server_error",
                  message = "mock stream error", param = cjson.null }, evs[2].data)
    m:stop()
    m = mock.start{ stream_end_after = 3 }
    r = curl(m.url .. "/responses", { body = body })
    assert.equal(0, r.rc)
    assert.equal(3, #sse(r.body))
    m:stop()
    for _, st in ipairs{ "failed", "incomplete" } do
      m = mock.start{ responses_status = st }
      evs = sse(curl(m.url .. "/responses", { body = body }).body)
      assert.equal("response." .. st, evs[#evs].event)
      assert.equal(st, evs[#evs].data.response.status)
      m:stop()
    end
    m = mock.start{ ignore_stream = 1 }
    assert.equal("response", cjson.decode(curl(m.url .. "/responses", { body = body }).body).object)
  end)

  it("completions: plain and streamed", function()
    m = mock.start{ name = "cp" }
    local body = cjson.encode{ model = "gpt-i", prompt = "say x" }
    local r = curl(m.url .. "/completions", { body = body })
    assert.equal("cp-1", r.headers["x-request-id"])
    local v = cjson.decode(r.body)
    assert.equal("text_completion", v.object)
    assert.equal("echo: say x", v.choices[1].text)
    assert.equal("stop", v.choices[1].finish_reason)
    assert.same({ prompt_tokens = #body // 4, completion_tokens = #"echo: say x" // 4,
                  total_tokens = #body // 4 + #"echo: say x" // 4 }, v.usage)
    r = post("/completions", { prompt = "say x", stream = true,
                               stream_options = { include_usage = true } })
    local evs, text = sse(r.body), ""
    assert.equal("[DONE]", evs[#evs].data)
    for i = 1, #evs - 2 do
      assert.equal("text_completion", evs[i].data.object)
      text = text .. evs[i].data.choices[1].text
    end
    assert.equal("echo: say x", text)
    assert.equal("stop", evs[#evs - 2].data.choices[1].finish_reason)
    assert.equal(#"echo: say x" // 4, evs[#evs - 1].data.usage.completion_tokens)
  end)

  it("fault flags apply to the new paths; /stats counts them per path", function()
    m = mock.start{ name = "ff", fail_first = 1, auth_key = "k1", models = "a,b",
                    bad_marker = "BAD", bad_code = "nope" }
    local auth = { headers = { "Authorization: Bearer k1" } }
    local function st(path, t, o)
      local r = post(path, t, o or auth)
      assert.is_truthy(r.headers["x-request-id"], path)
      return r.status, r
    end
    assert.equal(401, (st("/embeddings", { input = "x" }, {})))
    assert.equal(400, (st("/responses", { input = "BAD" })))
    assert.equal(404, (st("/completions", { model = "zzz", prompt = "p" })))
    assert.equal(500, (st("/responses", { model = "a", input = "x" })))
    assert.equal(200, (st("/responses", { model = "a", input = "x" })))
    assert.equal(200, (st("/embeddings", { model = "b", input = "x" })))
    assert.equal(200, (st("/completions", { prompt = "x" })))
    assert.equal(200, (st("/chat/completions", { messages = { { role = "user", content = "x" } } })))
    local s = m:stats(true)
    assert.equal(8, s.requests)
    assert.same({ ["/v1/embeddings"] = 2, ["/v1/responses"] = 3, ["/v1/completions"] = 2,
                  ["/v1/chat/completions"] = 1 }, s.paths)
    assert.same({ ["401"] = 1, ["400"] = 1, ["404"] = 1, ["500"] = 1, ["200"] = 4 }, s.status)
    assert.same({}, m:stats().paths)
    m:stop()
    m = mock.start{ rps = 1, burst = 1, rl_headers = "retry-after" }
    assert.equal(200, post("/embeddings", { input = "x" }).status)
    local r = post("/responses", { input = "x" })
    assert.equal(429, r.status)
    assert.is_truthy(r.headers["retry-after"])
    m:stop()
    m = mock.start{ hang_first = 1 }
    assert.equal(28, post("/responses", { input = "x" }, { timeout = 1 }).rc)  -- curl timeout
    assert.equal(200, post("/responses", { input = "x" }).status)
    m:stop()
    m = mock.start{ latency_ms = 300 }
    r = post("/embeddings", { input = "x" })
    assert.is_true(r.time >= 0.3, r.time)
  end)
end)
