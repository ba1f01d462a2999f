-- The OpenResty gateway's routes beyond chat (embeddings, Responses plain and
-- streamed, completions plain and streamed) and its host-wide /metrics, in
-- real nginx with 2 workers and a lua_shared_dict, mock-llm upstreams behind a
-- pool whose first endpoint refuses connections.
-- Run from the repo root (make && make LUA=luajit first):
--   busted --lua=lua5.4 spec/gateway_apis_spec.lua
local cjson = require "cjson"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"
local load = require "spec.support.load"

local req = load.request
local node = require "spec.support.node"

local function decode(body)
  local ok, v = pcall(cjson.decode, body)
  assert(ok and type(v) == "table", "not a JSON object: " .. tostring(body))
  return v
end

-- The events of an SSE body: { event = name or nil, data = text }, in order.
local function sse_events(body)
  local list = {}
  for block in (body .. "\n\n"):gmatch("(.-)\n\n") do
    local ev = {}
    for line in block:gmatch("[^\n]+") do
      local name = line:match("^event: ?(.*)$")
      local d = line:match("^data: ?(.*)$")
      if name then ev.event = name end
      if d then ev.data = (ev.data and ev.data .. "\n" or "") .. d end
    end
    if ev.data then list[#list + 1] = ev end
  end
  return list
end

-- Every counter series of a Prometheus text -> value (but spent_usd_total, host-wide already).
local function counters(text)
  local out, counter = {}, false
  for line in text:gmatch("[^\n]+") do
    local name, kind = line:match("^# TYPE (%S+) (%a+)")
    if name then
      counter = kind == "counter" and name ~= "llmrelay_spent_usd_total"
    elseif counter and line:sub(1, 1) ~= "#" then
      local s, v = line:match("^(.*) (%S+)$")
      if s then out[s] = tonumber(v) end
    end
  end
  return out
end

-- The value of one series in a Prometheus text, or nil.
local function sample(text, series)
  for line in text:gmatch("[^\n]+") do
    local s, v = line:match("^(.*) (%S+)$")
    if s == series then return tonumber(v) end
  end
  return nil
end

describe("gateway beyond chat", function()
  if not nginx.required(it, "gateway apis spec") then return end

  local n, good, cut, dead, sdk_script, sdk_why
  local H = { "Authorization: Bearer gw-key", "Content-Type: application/json" }
  local function url(path, i) return "http://127.0.0.1:" .. n.ports[i or 1] .. path end

  setup(function()
    sdk_script, sdk_why = node.install()
    good = mock.start{ name = "good", models = { "gpt-x" } }
    cut = mock.start{ name = "cut", models = { "gpt-x" }, stream_cut_after = 2, stream_chunk_ms = 20 }
    dead = mock.free_port()
    n = nginx.start{
      workers = 2,
      shared_dicts = { llmrelay = "4m" },
      ports = 2,
      init = ([[
        local llmrelay = require "llmrelay"
        local T = { connect = 2, first_byte = 10, total = 20 }
        clients = {}
        clients.main = llmrelay.new{ name = "main", shared_dict = "llmrelay", timeout = T,
          retry = { max_attempts = 3, base_delay = 0.01 },
          endpoints = {
            { name = "dead", base_url = "http://127.0.0.1:%d/v1", api_key = "sk-upstream-dead" },
            { name = "good", base_url = %q, api_key = "sk-upstream-good", models = { "gpt-x" } } } }
        clients.cut = llmrelay.new{ name = "cut", shared_dict = "llmrelay", timeout = T,
          retry = { max_attempts = 1 },
          endpoints = { { name = "cut", base_url = %q, api_key = "sk-upstream-cut" } } }
      ]]):format(dead, good.url, cut.url),
      http = [[
        lua_socket_log_errors off;
        server {
          listen 127.0.0.1:$PORT reuseport;
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(clients.main, { keys = { "gw-key" } })
          } }
          # this worker's own counters (the client's, not the gateway's sum)
          location = /own { content_by_lua_block {
            ngx.say(ngx.worker.pid())
            ngx.print(clients.main:metrics())
          } }
        }
        server {
          listen 127.0.0.1:$PORT2;
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(clients.cut, { keys = { "gw-key" } })
          } }
        }
      ]],
    }
  end)

  teardown(function()
    if n then n:stop() end
    mock.stop_all()
  end)

  local function post(path, doc, i)
    return req(url(path, i), { method = "POST", headers = H, body = cjson.encode(doc) })
  end

  -- every answer through the pool: the dead endpoint refused, "good" answered with its request id
  -- (a stream's headers go out with its first event, before the attempt has ended: no X-LLMRelay-Endpoint)
  local function assert_good(code, body, headers, streamed)
    assert.equals(200, code, body)
    if not streamed then assert.equals("good", headers["x-llmrelay-endpoint"], body) end
    assert.is_truthy((headers["x-request-id"] or ""):match("^good%-%d+$"), tostring(headers["x-request-id"]))
  end

  it("answers chat, embeddings, Responses and completions through a pool whose first endpoint is down", function()
    local code, body, headers = post("/v1/chat/completions", { model = "gpt-x", messages = { { role = "user", content = "hi" } } })
    assert_good(code, body, headers)
    assert.equals("chat.completion", decode(body).object)

    code, body, headers = post("/v1/embeddings", { model = "gpt-x", input = { "a", "b" } })
    assert_good(code, body, headers)
    local doc = decode(body)
    assert.equals("list", doc.object)
    assert.equals("embedding", doc.data[1].object)
    assert.is_number(doc.data[1].embedding[1])

    code, body, headers = post("/v1/responses", { model = "gpt-x", input = "hello" })
    assert_good(code, body, headers)
    doc = decode(body)
    assert.equals("response", doc.object)
    assert.equals("completed", doc.status)
    assert.equals("echo: hello", doc.output[1].content[1].text)

    code, body, headers = post("/v1/completions", { model = "gpt-x", prompt = "say" })
    assert_good(code, body, headers)
    doc = decode(body)
    assert.equals("text_completion", doc.object)
    assert.equals("echo: say", doc.choices[1].text)
  end)

  it("refuses a body without its route's field, before sending it", function()
    local before = good:stats().requests
    for path, doc in pairs { ["/v1/embeddings"] = { model = "gpt-x" }, ["/v1/responses"] = { model = "gpt-x" },
                             ["/v1/completions"] = { model = "gpt-x", messages = {} } } do
      local code, body = post(path, doc)
      assert.equals(400, code, path)
      assert.equals("invalid_request_error", decode(body).error.type, path)
    end
    assert.equals(before, good:stats().requests)
    local code = req(url("/v1/embeddings"), { headers = H })
    assert.equals(405, code)
    code = req(url("/v1/responses"), { method = "POST", body = '{"input":"x"}' })
    assert.equals(401, code)
  end)

  it("passes the request's own upstream error on with its body, streamed or not", function()
    -- the pool's one endpoint serves every model in its config; its server knows gpt-x only
    for _, t in ipairs {
      { "/v1/embeddings", { model = "nope", input = "x" } },
      { "/v1/responses", { model = "nope", input = "x" } },
      { "/v1/responses", { model = "nope", input = "x", stream = true } },
      { "/v1/completions", { model = "nope", prompt = "x", stream = true } },
    } do
      local code, body, headers = post(t[1], t[2], 2)
      assert.equals(404, code, t[1] .. ": " .. body)
      assert.equals("application/json", headers["content-type"], body)
      local e = decode(body).error
      assert.equals("model_not_found", e.code, body)
      assert.equals("invalid_request_error", e.type, body)
      assert.is_truthy(e.message:find("nope", 1, true), body)
      assert.is_truthy((headers["x-request-id"] or ""):match("^cut%-%d+$"), t[1] .. ": " .. tostring(headers["x-request-id"]))
    end
  end)

  it("relays a streamed Responses answer as named events, ending with response.completed", function()
    local code, body, headers = post("/v1/responses", { model = "gpt-x", input = "streamed words", stream = true })
    assert_good(code, body, headers, true)
    assert.equals("text/event-stream", headers["content-type"])
    local evs = sse_events(body)
    assert.is_true(#evs >= 3, body)
    local text = {}
    for _, ev in ipairs(evs) do
      assert.is_not_equal("[DONE]", ev.data, body)
      local d = decode(ev.data)
      assert.equals(d.type, ev.event, body) -- every event named as its type
      if d.type == "response.output_text.delta" then text[#text + 1] = d.delta end
    end
    assert.equals("response.created", evs[1].event)
    assert.equals("response.completed", evs[#evs].event)
    assert.equals("echo: streamed words", table.concat(text))
  end)

  it("relays a streamed completion as data: chunks ending with [DONE]", function()
    local code, body, headers = post("/v1/completions", { model = "gpt-x", prompt = "more words", stream = true })
    assert_good(code, body, headers, true)
    local evs = sse_events(body)
    assert.equals("[DONE]", evs[#evs].data)
    local text = {}
    for i = 1, #evs - 1 do
      local d = decode(evs[i].data)
      assert.equals("text_completion", d.object)
      text[#text + 1] = d.choices[1].text
    end
    assert.equals("echo: more words", table.concat(text))
  end)

  it("ends a Responses stream cut mid-way with an error event SDKs raise", function()
    local code, body, headers = post("/v1/responses", { model = "gpt-x", input = "a long enough input", stream = true }, 2)
    assert.equals(200, code, body)
    assert.is_truthy((headers["x-request-id"] or ""):match("^cut%-%d+$"), tostring(headers["x-request-id"]))
    local evs = sse_events(body)
    assert.is_true(#evs >= 2, body)
    local last = evs[#evs]
    assert.equals("error", last.event, body)
    local d = decode(last.data)
    assert.equals("error", d.type)
    assert.is_table(d.error, body)
    assert.equals("stream_interrupted", d.error.code, body)
    assert.equals("stream_interrupted", d.code, body)
    for i = 1, #evs - 1 do assert.is_not_equal("response.completed", evs[i].event) end
  end)

  it("serves the official Node SDK's embeddings.create and responses.create (plain and stream: true)", function()
    assert(sdk_script, sdk_why)
    local r, out = node.run(sdk_script, url("/v1"), "gw-key", "gpt-x", "hi there", "apis")
    assert.same({}, r.errors, out)
    assert.is_true(r.embeddings.ok, out)
    assert.equals("list", r.embeddings.object)
    assert.equals(2, r.embeddings.count)
    assert.equals(8, r.embeddings.dims)
    assert.is_truthy(tostring(r.embeddings.request_id):match("^good%-%d+$"), out)
    assert.equals("response", r.responses.object)
    assert.equals("echo: hi there", r.responses.text)
    assert.is_truthy(tostring(r.responses.request_id):match("^good%-%d+$"), out)
    local s = r.responses_stream
    assert.is_true(s.ok, out)
    assert.equals("response.created", s.events[1])
    assert.equals("response.completed", s.events[#s.events])
    assert.equals("echo: hi there", s.text)
    assert.equals("completed", s.status)
    assert.is_truthy(tostring(s.request_id):match("^good%-%d+$"), out)
  end)

  it("makes the Node SDK raise when a streamed Response is cut mid-way", function()
    assert(sdk_script, sdk_why)
    local r, out = node.run(sdk_script, url("/v1", 2), "gw-key", "gpt-x", "a long enough input", "apis")
    assert.is_false(r.responses_stream.ok, out)
    assert.equals(1, #r.errors, out)
    assert.equals("responses_stream", r.errors[1].step, out)
    assert.equals("APIError", r.errors[1].name, out)
    for _, ev in ipairs(r.responses_stream.events) do assert.is_not_equal("response.completed", ev) end
  end)

  it("/metrics counts every worker's traffic, whichever worker answers the scrape", function()
    -- traffic on both workers: parallel connections, spread by reuseport
    local dir = (io.popen("mktemp -d"):read("*l"))
    local f = assert(io.open(dir .. "/body", "wb"))
    f:write(cjson.encode { model = "gpt-x", messages = { { role = "user", content = "count me" } } })
    f:close()
    -- mock.capture: without the sanitizer's LD_PRELOAD (curl deadlocks under it), every request bounded
    local codes = mock.capture(("curl -s --max-time 20 --parallel --parallel-max 8 -H 'Authorization: Bearer gw-key'"
      .. " -H 'Content-Type: application/json' --data-binary @%s -o '%s/r#1' -w '%%{http_code}\\n' '%s'"):format(
      dir .. "/body", dir, url("/v1/chat/completions?i=[1-60]")) .. " 2>/dev/null")
    os.execute("rm -rf '" .. dir .. "'")
    local ok = 0
    for c in codes:gmatch("%d+") do if c == "200" then ok = ok + 1 end end
    assert.equals(60, ok, codes)
    os.execute("sleep 0.3") -- more than the workers' publishing delay (0.1 s)

    -- each worker's own counters, read from both
    local own = {}
    for _ = 1, 200 do
      local text = mock.capture("curl -s --max-time 5 '" .. url("/own") .. "'")
      local pid = text:match("^(%d+)")
      own[pid] = text
      local k = 0
      for _ in pairs(own) do k = k + 1 end
      if k == 2 then break end
    end
    local pids, own_good, own_sent, own_dead = {}, 0, 0, 0
    for pid, text in pairs(own) do
      pids[#pids + 1] = pid
      local g = sample(text, 'llmrelay_successes_total{endpoint="good"}') or 0
      assert.is_true(g > 0, "worker " .. pid .. " served nothing:\n" .. text)
      own_good = own_good + g
      own_sent = own_sent + (sample(text, 'llmrelay_requests_total{endpoint="good"}') or 0)
      own_dead = own_dead + (sample(text, 'llmrelay_requests_total{endpoint="dead"}') or 0)
    end
    assert.equals(2, #pids)
    -- every counter series (requests, successes, failures, throttles, tokens ...), summed by hand
    local want = {}
    for _, text in pairs(own) do
      for series, v in pairs(counters(text)) do want[series] = (want[series] or 0) + v end
    end
    assert.is_true(want['llmrelay_tokens_total{endpoint="good",model="gpt-x",kind="input"}'] > 0)

    -- every scrape, on either worker, sums both
    local served_by = {}
    for _ = 1, 20 do
      local code, text = req(url("/metrics"), { headers = H })
      assert.equals(200, code, text)
      local requests = sample(text, 'llmrelay_requests_total{endpoint="good"}')
      assert.equals(own_good, sample(text, 'llmrelay_successes_total{endpoint="good"}'), text)
      assert.equals(own_sent, requests, text)
      assert.equals(own_dead, sample(text, 'llmrelay_requests_total{endpoint="dead"}'), text)
      assert.equals(good:stats().requests, requests)
      assert.same(want, counters(text))
      local _, h = req(url("/health"), { headers = H })
      served_by[decode(h).worker] = true
    end
    local k = 0
    for _ in pairs(served_by) do k = k + 1 end
    assert.equals(2, k)
    assert.is_nil(load.log_problem(n:error_log()), n:error_log())
  end)
end)
