-- A successful stream carries its x-request-id too: st._llmrelay.request_id
-- and chat{stream = true}'s response, on both executors; the gateway's
-- streamed answers pass it on to their caller in the headers it sends before
-- the first event (so the id is known when that event is relayed). The mock
-- names its answers <name>-<n> in x-request-id, streams included.
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"
local load = require "spec.support.load"
local cjson = require "cjson"

local function req(text)
  return { model = "m", messages = { { role = "user", content = text or "one two" } } }
end

local function drain(st)
  for chunk, err in st do
    assert(chunk, err and tostring(err))
  end
end

describe("a stream's request id (libcurl executor)", function()
  after_each(function() mock.stop_all() end)

  it("st._llmrelay.request_id and chat{stream = true}'s response hold the answer's x-request-id", function()
    local m = mock.start { name = "s" }
    local c = llmrelay.new { endpoints = { { base_url = m.url } } }
    local st = c:stream(req())
    drain(st)
    assert.equal("s-1", st._llmrelay.request_id)
    local text, resp = c:chat("three four", { model = "m", stream = true })
    assert.equal("echo: three four", text)
    assert.equal("s-2", resp._llmrelay.request_id)
  end)

  it("after a failover it is the answering attempt's, and a key it quotes is scrubbed", function()
    local bad = mock.start { name = "bad", fail_rate = 1 }
    local key = "sk-test-0123456789abcdef"
    local good = mock.start { name = key, stream_chunk_ms = 5 }
    local c = llmrelay.new { strategy = "priority",
                             endpoints = { { name = "bad", base_url = bad.url }, { name = "good", base_url = good.url,
                                                                                    api_key = key } } }
    local st = c:stream(req())
    drain(st)
    assert.equal(1, bad:stats().requests)
    assert.equal("good", st._llmrelay.endpoint)
    assert.equal("[REDACTED]-1", st._llmrelay.request_id)
  end)

  it("the core's stream_take hands the request id over with the first events", function()
    local m = mock.start { name = "t", stream_chunk_ms = 20 }
    local c = llmrelay.new { endpoints = { { base_url = m.url } } }
    local waiter = { inbox = {} }
    local id = assert(c:_submit(cjson.encode { model = "m", stream = true, messages = { { role = "user",
                                               content = "a b c d" } } }, "m", nil, nil, waiter, nil, true))
    local events, rid
    while not events and #waiter.inbox == 0 do
      c:_wait(waiter)
      if waiter.ready then
        waiter.ready = false
        local evs, r = c:_stream_take(id)
        if evs and #evs > 0 then events, rid = evs, r end
      end
    end
    assert.is_table(events, "the stream ended before its first events were taken")
    assert.equal("t-1", rid)
    c:_cancel(id, true)
  end)
end)

describe("a stream's request id under OpenResty", function()
  if not nginx.required(it, "stream_request_id spec") then return end

  local KEY = "sk-upstream-SECRET-0123456789"
  local m, cut, g
  local function post(path, body)
    return load.request(g.base .. path, { method = "POST", body = body,
                                          headers = { "Content-Type: application/json" } })
  end
  local function chat(text)
    return cjson.encode { model = "gpt-x", stream = true, messages = { { role = "user", content = text } } }
  end

  setup(function()
    m = mock.start { name = "m", stream_chunk_ms = 10 }
    cut = mock.start { name = "cut", stream_cut_after = 2, stream_chunk_ms = 20 }
    g = nginx.start {
      init = ([[
        local llmrelay = require "llmrelay"
        local T = { connect = 2, first_byte = 10, total = 20 }
        main = llmrelay.new { timeout = T, endpoints = { { name = "m", base_url = %q, api_key = %q } } }
        cut = llmrelay.new { timeout = T, retry = { max_attempts = 1 },
          endpoints = { { name = "cut", base_url = %q } } }
        opts = { anonymous = true }
      ]]):format(m.url, KEY, cut.url),
      http = [[
        lua_socket_log_errors off;
        server {
          listen 127.0.0.1:$PORT;
          location /main/ { content_by_lua_block { require("llmrelay.resty.gateway").serve(main, opts) } }
          location /cut/ { content_by_lua_block { require("llmrelay.resty.gateway").serve(cut, opts) } }
          location = /direct {
            content_by_lua_block {
              local cjson = require "cjson"
              local st = main:stream { model = "gpt-x", messages = { { role = "user", content = "one two" } } }
              for chunk, err in st do if not chunk then error(tostring(err)) end end
              local _, resp = main:chat("three", { model = "gpt-x", stream = true })
              ngx.say(cjson.encode { stream = st._llmrelay.request_id, chat = resp._llmrelay.request_id })
            }
          }
        }
      ]],
    }
  end)

  teardown(function()
    if g then g:stop() end
    mock.stop_all()
  end)

  it("the OpenResty executor fills st._llmrelay.request_id and chat{stream = true}'s", function()
    local status, body = load.request(g.base .. "/direct")
    assert.equal(200, status, body .. g:error_log())
    local ids = cjson.decode(body)
    assert.matches("^m%-%d+$", ids.stream)
    assert.matches("^m%-%d+$", ids.chat)
    assert.not_equal(ids.stream, ids.chat)
  end)

  it("the gateway's streamed answer carries the upstream's x-request-id", function()
    local status, body, h = post("/main/v1/chat/completions", chat("one two three"))
    assert.equal(200, status, body)
    assert.truthy(body:find("data: [DONE]", 1, true), body)
    assert.matches("^m%-%d+$", h["x-request-id"])
  end)

  it("sent with the first event: a stream cut after it still has the id in its headers", function()
    -- the answer can only be the events relayed before the cut and an error
    -- event, so its headers went out with the first event
    local status, body, h = post("/cut/v1/chat/completions", chat("one two three four five"))
    assert.equal(200, status, body)
    assert.truthy(body:find('"error"', 1, true), body)
    assert.equal("cut-1", h["x-request-id"])
    assert.is_nil(body:find("SECRET", 1, true))
  end)

  it("leaves no Lua error in the error log", function()
    local log = g:error_log()
    assert.is_nil(log:find("lua entry thread aborted", 1, true), log)
    assert.is_nil(log:find("stack traceback", 1, true), log)
  end)
end)
