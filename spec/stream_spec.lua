-- client:stream and chat{stream = true}: SSE decoded natively, failover until
-- the first event reached the caller, honest interruptions after it.
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"
local now = require("llmrelay.core").now

local function req(text)
  return { model = "m", messages = { { role = "user", content = text } } }
end

-- The mock streams "echo: <content>" as a role chunk (""), one chunk per
-- word (the word and the spaces after it), a finish chunk, a usage chunk.
local function words(text)
  local out = { "", "echo: " }
  for w in text:gmatch("%S+%s*") do out[#out + 1] = w end
  return out
end

-- Reads a whole stream: the text of each chunk, and the error if any.
local function collect(st)
  local texts, err = {}, nil
  for chunk, e in st do
    if not chunk then
      err = e
      break
    end
    local c = chunk.choices[1]
    if c then texts[#texts + 1] = type(c.delta.content) == "string" and c.delta.content or "" end
  end
  return texts, err
end

describe("client:stream", function()
  after_each(function() mock.stop_all() end)

  it("yields decoded chunks whose text is the whole answer, ends cleanly, and counts the usage", function()
    local m = mock.start { name = "s" }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local st = client:stream(req("one two three"))
    local texts, chunks, finish, usage = {}, 0, nil, nil
    for chunk, err in st do
      assert.is_nil(err)
      assert.are.equal("chat.completion.chunk", chunk.object)
      chunks = chunks + 1
      local c = chunk.choices[1]
      if c then
        if type(c.delta.content) == "string" then texts[#texts + 1] = c.delta.content end
        if type(c.finish_reason) == "string" then finish = c.finish_reason end
      end
      if type(chunk.usage) == "table" then usage = chunk.usage end
    end
    assert.are.equal("echo: one two three", table.concat(texts))
    assert.are.equal("stop", finish)
    -- role + "echo: " + 3 words + finish + usage
    assert.are.equal(7, chunks)
    assert.is_table(usage)
    assert.is_true(usage.total_tokens > 0)
    assert.are.same(usage, st.usage)
    assert.are.equal("echo: one two three", st:text())
    assert.are.equal(1, st._llmrelay.attempts)
    -- the stream stays ended
    assert.is_nil(st:next())
    assert.is_nil(st())
    assert.are.equal(1, m:stats().streams)
  end)

  it("calls opts.on_delta with each piece of text, and chat{stream = true} returns the whole text", function()
    local m = mock.start { name = "s" }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local pieces = {}
    local st = client:stream(req("a b"), { on_delta = function(t) pieces[#pieces + 1] = t end })
    collect(st)
    assert.are.same({ "echo: ", "a ", "b" }, pieces)
    local got = {}
    local text, info = client:chat("hello there", { stream = true, on_delta = function(t) got[#got + 1] = t end })
    assert.are.equal("echo: hello there", text)
    assert.are.same({ "echo: ", "hello ", "there" }, got)
    assert.is_true(info.usage.total_tokens > 0)
    -- on_delta alone streams too
    local n = 0
    assert.are.equal("echo: x", client:chat("x", { on_delta = function() n = n + 1 end }))
    assert.are.equal(2, n)
    assert.are.equal(3, m:stats().streams)
  end)

  it("fails over before the first event: refused, 500, 429 and silent endpoints are replaced transparently", function()
    local dead = mock.free_port()
    local e500 = mock.start { name = "e500", fail_rate = 1 }
    local e429 = mock.start { name = "e429", throttle_first = 1000 }
    local silent = mock.start { name = "silent", hang_first = 1000 }
    local good = mock.start { name = "good" }
    local client = llmrelay.new {
      strategy = "priority",
      endpoints = {
        { base_url = "http://127.0.0.1:" .. dead .. "/v1", name = "dead" },
        { base_url = e500.url, name = "e500" },
        { base_url = e429.url, name = "e429" },
        { base_url = silent.url, name = "silent" },
        { base_url = good.url, name = "good" },
      },
      timeout = { first_byte = 0.3 },
      retry = { max_attempts = 6 },
    }
    local st = client:stream(req("fail over"))
    local texts, err = collect(st)
    assert.is_nil(err)
    assert.are.same(words("fail over"), { table.unpack(texts, 1, 4) })
    assert.are.equal("echo: fail over", st:text())
    assert.are.equal("good", st._llmrelay.endpoint)
    assert.are.equal(5, st._llmrelay.attempts)
    assert.are.equal(1, e500:stats().requests)
    assert.are.equal(1, e429:stats().requests)
    assert.are.equal(1, silent:stats().requests)
  end)

  it("a stream cut after 3 chunks yields the 3 chunks, then nil, err (stream_interrupted, partial = their text)", function()
    local m = mock.start { name = "cut", stream_cut_after = 3, stream_chunk_ms = 20 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local st = client:stream(req("alpha beta gamma delta"))
    local got = {}
    for _ = 1, 3 do
      local chunk, err = st:next()
      assert.is_table(chunk, tostring(err))
      got[#got + 1] = chunk.choices[1].delta.content
    end
    assert.are.same({ "", "echo: ", "alpha " }, got)
    local chunk, err = st:next()
    assert.is_nil(chunk)
    assert.is_table(err)
    assert.are.equal("stream_interrupted", err.kind)
    assert.are.equal("echo: alpha ", err.partial)
    assert.matches("stream_interrupted", tostring(err))
    assert.is_nil(st:next()) -- reported once, then ended
    assert.is_nil(st())
    assert.are.equal(1, m:stats().requests) -- after a delivered event, never a second attempt
  end)

  it("in a for loop the body sees the interruption (chunk == false, err), never a silent end", function()
    local m = mock.start { name = "cut", stream_cut_after = 3, stream_chunk_ms = 20 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    -- both spellings: the call in the loop header, and a stream made before the loop
    for _, make in ipairs { function() return client:stream(req("alpha beta gamma delta")) end,
                            function() local st = client:stream(req("alpha beta gamma delta")); return st end } do
      local n, seen = 0, nil
      for chunk, err in make() do
        if chunk then
          n = n + 1
        else
          assert.are.equal(false, chunk)
          seen = err
        end
      end
      assert.are.equal(3, n)
      assert.are.equal("stream_interrupted", seen.kind)
      assert.are.equal("echo: alpha ", seen.partial)
    end
  end)

  it("a stream cut before anything reached the caller is retried, and the last attempt's events are delivered", function()
    -- no pause between chunks: the whole attempt (3 events and the cut) lands in one step
    local m = mock.start { name = "cutfast", stream_cut_after = 3 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } }, retry = { max_attempts = 2, base_delay = 0.01 } }
    local texts, err = collect(client:stream(req("alpha beta gamma")))
    assert.are.equal("stream_interrupted", err.kind)
    assert.are.same({ "", "echo: ", "alpha " }, texts)
    assert.are.equal("echo: alpha ", err.partial)
    local attempts = m:stats().requests
    assert.is_true(attempts == 1 or attempts == 2, "attempts " .. attempts)
    assert.are.equal(attempts, err.attempts)
  end)

  it("a stream that stalls ends after timeout.idle with stream_interrupted", function()
    local m = mock.start { name = "stall", stream_stall_after = 3, stream_chunk_ms = 10 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } }, timeout = { idle = 0.3 } }
    local t0 = now()
    local texts, err = collect(client:stream(req("alpha beta gamma")))
    local dt = now() - t0
    assert.are.equal("stream_interrupted", err.kind)
    assert.matches("idle", err.message)
    assert.are.equal("echo: alpha ", err.partial)
    assert.are.equal(3, #texts)
    assert.is_true(dt >= 0.29 and dt < 2, "took " .. dt)
  end)

  it("a stream that ends without [DONE] or a finish_reason is interrupted, not a success", function()
    local m = mock.start { name = "short", stream_end_after = 4, stream_chunk_ms = 20 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local texts, err = collect(client:stream(req("alpha beta gamma")))
    assert.is_table(err)
    assert.are.equal("stream_interrupted", err.kind)
    assert.matches("without %[DONE%]", err.message)
    assert.are.same({ "", "echo: ", "alpha ", "beta " }, texts)
    assert.are.equal("echo: alpha beta ", err.partial)
  end)

  it("an error event before anything was delivered fails over; after, it interrupts with the server's message", function()
    local bad = mock.start { name = "bad", stream_error_after = 0 }
    local good = mock.start { name = "good" }
    local client = llmrelay.new { strategy = "priority",
                                  endpoints = { { base_url = bad.url }, { base_url = good.url } } }
    local texts, err = collect(client:stream(req("x y")))
    assert.is_nil(err)
    assert.are.equal("echo: x y", table.concat(texts))
    assert.are.equal(1, bad:stats().requests)

    local late = mock.start { name = "late", stream_error_after = 3, stream_chunk_ms = 20 }
    local c2 = llmrelay.new { endpoints = { { base_url = late.url } } }
    texts, err = collect(c2:stream(req("p q r")))
    assert.are.equal("stream_interrupted", err.kind)
    assert.matches("mock stream error", err.message)
    assert.are.equal("echo: p ", err.partial)
  end)

  it("a server that ignores stream = true and answers one JSON body gives one chunk with the whole text", function()
    local m = mock.start { name = "nostream", ignore_stream = 1 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local st = client:stream(req("all at once"))
    local chunks = {}
    for chunk, err in st do
      assert.is_nil(err)
      chunks[#chunks + 1] = chunk
    end
    assert.are.equal(1, #chunks)
    assert.are.equal("chat.completion.chunk", chunks[1].object)
    assert.are.equal("stop", chunks[1].choices[1].finish_reason)
    assert.are.equal("echo: all at once", st:text())
    assert.is_true(st.usage.total_tokens > 0)
    assert.are.equal(0, m:stats().streams)
  end)

  it("leaving the loop early stops the stream and frees its slot", function()
    local m = mock.start { name = "slow", stream_chunk_ms = 50 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    for chunk in client:stream(req("a b c d e f g h")) do
      if chunk.choices[1].delta.content == "echo: " then break end
    end
    assert.are.equal(0, client:pending())
    assert.are.equal(0, client:status()[1].in_flight)
  end)

  it("runs 200 concurrent streams inside llmrelay.run against 3 mocks, one refusing: all complete", function()
    local a = mock.start { name = "a", stream_chunk_ms = 5 }
    local b = mock.start { name = "b", stream_chunk_ms = 5 }
    local client = llmrelay.new {
      endpoints = { { base_url = "http://127.0.0.1:" .. mock.free_port() .. "/v1" }, { base_url = a.url },
                    { base_url = b.url } },
      concurrency = 200,
    }
    local ok, bad = 0, {}
    local t0 = now()
    llmrelay.run(function()
      for i = 1, 200 do
        llmrelay.spawn(function()
          local text = "stream " .. i .. " of many words"
          local st = client:stream(req(text))
          local _, err = collect(st)
          if not err and st:text() == "echo: " .. text then ok = ok + 1 else bad[#bad + 1] = tostring(err) end
        end)
      end
    end)
    assert.are.equal(200, ok, table.concat(bad, "\n"))
    -- 8 chunks 5 ms apart per stream: concurrent, not one after another (200 x 40 ms = 8 s)
    assert.is_true(now() - t0 < 4, "took " .. (now() - t0))
    assert.are.equal(200, a:stats().streams + b:stats().streams)
  end)

  it("rejects bad input with errors that name the field", function()
    local m = mock.start { name = "s" }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    assert.has_error(function() client:stream { model = "m" } end,
                     "stream: request.messages must be an array of messages (got nil)")
    assert.has_error(function() client:stream(req("x"), { on_delta = 1 }) end, "stream: opts.on_delta must be a function")
    assert.has_error(function() client:stream(req("x"), { bogus = 1 }) end, "stream: unknown option 'bogus'")
    assert.has_error(function() client:stream { model = "m", messages = {}, stream = false } end,
                     "stream: request.stream must be true or nil")
    assert.has_error(function() client:chat("x", { stream = "yes" }) end, "chat: opts.stream must be a boolean")
    assert.has_error(function() client:chat_completion { model = "m", messages = {}, stream = true } end,
                     "chat_completion: request.stream is set; use client:stream for streamed answers")
  end)
end)
