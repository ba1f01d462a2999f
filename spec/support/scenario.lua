-- A client scenario for memory checkers (make valgrind): every path of the
-- core once — success, failover, breaker, 429 wait, 400, timeouts, deadline,
-- body cap, close and collection. Plain Lua, no busted, so valgrind stays fast.
-- Prints "N passed, N failed".
package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"

local passed, failed = 0, 0
local function check(name, cond, detail)
  if cond then
    passed = passed + 1
  else
    failed = failed + 1
    io.stderr:write("FAIL ", name, ": ", tostring(detail), "\n")
  end
end

local function req(text)
  return { model = "m", messages = { { role = "user", content = text or "hi" } } }
end

local ok, err = pcall(function()
  local healthy = mock.start { name = "healthy" }
  local flaky = mock.start { name = "flaky", fail_rate = 0.5 }
  local limited = mock.start { name = "limited", throttle_first = 2, throttle_ms = 50, bad_marker = "BAD" }
  local hang = mock.start { name = "hang", hang_rate = 1 }
  local big = mock.start { name = "big", pad_bytes = 4096 }
  local dead = "http://127.0.0.1:" .. mock.free_port() .. "/v1"

  local events = 0
  local c = llmrelay.new {
    endpoints = { { base_url = dead, name = "dead" }, { base_url = flaky.url, name = "flaky" },
                  { base_url = healthy.url, name = "healthy", api_key = "sk-scenario" } },
    on_event = function() events = events + 1 end,
  }
  local good = 0
  for i = 1, 60 do
    local resp = c:chat_completion(req("n" .. i))
    if resp then good = good + 1 end
  end
  check("pool serves every request", good == 60, good)
  check("events were emitted", events > 0, events)
  check("dead endpoint opened", c:status()[1].state == "open", c:status()[1].state)
  c:close()

  local l = llmrelay.new { endpoints = { { base_url = limited.url } } }
  local resp, e = l:chat_completion(req())
  check("429 waits then succeeds", resp and resp._llmrelay.attempts == 3, e)
  resp, e = l:chat_completion(req("BAD"))
  check("400 is final", not resp and e.kind == "invalid_request" and e.attempts == 1, e)

  local h = llmrelay.new { endpoints = { { base_url = hang.url }, { base_url = healthy.url } },
                           strategy = "priority", timeout = { first_byte = 0.2 } }
  resp, e = h:chat_completion(req())
  check("first-byte timeout fails over", resp and resp._llmrelay.attempts == 2, e)
  local d = llmrelay.new { endpoints = { { base_url = hang.url } } }
  resp, e = d:chat_completion(req(), { deadline = 0.2 })
  check("deadline", not resp and e.kind == "deadline", e)

  local b = llmrelay.new { endpoints = { { base_url = big.url } }, max_response_bytes = 2048 }
  resp, e = b:chat_completion(req())
  check("body cap", not resp and e.kind == "http", e)

  -- coroutines and a batch share the loop
  local cb = llmrelay.new { endpoints = { { base_url = healthy.url }, { base_url = flaky.url } } }
  local n = 0
  llmrelay.run(function()
    for i = 1, 20 do
      llmrelay.spawn(function() if cb:chat_completion(req("co" .. i)) then n = n + 1 end end)
    end
    llmrelay.spawn(function() llmrelay.sleep(0.01) end)
  end)
  check("20 coroutines", n == 20, n)
  local list = {}
  for i = 1, 30 do list[i] = req("b" .. i) end
  list[31] = "bad"
  local res, sum = cb:batch(list, { concurrency = 8 })
  check("batch", sum.ok == 30 and res[30].ok and not res[31].ok, sum.ok)

  -- streams: whole, failed over, cut, silent, an error event, left early, many at once
  local cut = mock.start { name = "cut", stream_cut_after = 3, stream_chunk_ms = 5 }
  local stall = mock.start { name = "stall", stream_stall_after = 2 }
  local errev = mock.start { name = "errev", stream_error_after = 2, stream_chunk_ms = 5 }
  local sc = llmrelay.new { endpoints = { { base_url = dead }, { base_url = hang.url }, { base_url = healthy.url } },
                            strategy = "priority", timeout = { first_byte = 0.2 } }
  local text = {}
  for chunk, se in sc:stream(req("stream me")) do
    if not chunk then text = { tostring(se) } break end
    local c1 = chunk.choices[1]
    if c1 and type(c1.delta.content) == "string" then text[#text + 1] = c1.delta.content end
  end
  check("stream fails over and completes", table.concat(text) == "echo: stream me", table.concat(text))
  local function interrupted(url, opts)
    local cl = llmrelay.new { endpoints = { { base_url = url } }, timeout = opts }
    local st = cl:stream(req("a b c d e"))
    local n = 0
    while true do
      local chunk, se = st:next()
      if not chunk then cl:close() return n, se end
      n = n + 1
    end
  end
  local nc, ce = interrupted(cut.url)
  check("cut stream", nc == 3 and ce and ce.kind == "stream_interrupted" and ce.partial == "echo: a ", ce)
  local ns, se2 = interrupted(stall.url, { idle = 0.2 })
  check("stalled stream", ns == 2 and se2 and se2.kind == "stream_interrupted", se2)
  local ne, ee = interrupted(errev.url)
  check("error event", ne == 2 and ee and ee.kind == "stream_interrupted", ee)
  local early = sc:stream(req("x y z"))
  early:next()
  early:close()
  check("stream left early", sc:pending() == 0, sc:pending())
  -- a stream dropped while its server stalls: only its collection can free the call
  -- (LuaJIT runs no __gc of a table: the stream carries a userdata that has one)
  local dc = llmrelay.new { endpoints = { { base_url = stall.url } } }
  local left = dc:stream(req("dropped"))
  left:next()
  left = nil
  collectgarbage()
  collectgarbage()
  local after = dc:chat_completion(req("after a dropped stream")) -- a step hands the cancelled call back
  check("a dropped stream is collected and frees its call", after ~= nil and dc:pending() == 0, dc:pending())
  dc:close()
  local streamed = 0
  local ms = llmrelay.new { endpoints = { { base_url = healthy.url }, { base_url = flaky.url } } }
  llmrelay.run(function()
    for i = 1, 20 do
      llmrelay.spawn(function()
        local st = ms:stream(req("s" .. i))
        while st:next() do end
        if st:text() == "echo: s" .. i then streamed = streamed + 1 end
      end)
    end
  end)
  check("20 streams in coroutines", streamed == 20, streamed)
  sc, ms = nil, nil

  -- the bare relay and stream decoder the OpenResty executor drives (csrc/l_relay.c)
  local core = require "llmrelay.core"
  local cfg = require("llmrelay.config").validate {
    endpoints = { { base_url = "http://127.0.0.1:1/v1", name = "a" }, { base_url = "http://127.0.0.1:2/v1", name = "b",
                  models = { "m" } } },
    breaker = { failure_threshold = 2 },
  }
  local rl = core.relay(cfg, 100)
  rl:enable_events(true)
  local buf, done = {}, 0
  for i = 1, 50 do rl:submit(i % 5 == 0 and "zz" or "m", 10, nil, i % 7 == 0 and 100.5 or nil) end
  for round = 1, 20 do
    local t = 100 + round * 0.01
    local n = rl:poll(t, buf)
    for k = 0, n - 1 do
      local id, ep = buf[4 * k + 1], buf[4 * k + 2]
      if ep == 0 then
        if rl:result(id) then done = done + 1 end
      elseif id % 3 == 0 then
        rl:report(id, t, 500, nil, false, "Retry-After: 1\r\nX-Other: y\r\n", nil, false, nil, false, false)
      elseif id % 11 == 0 then
        rl:unsend(id, t, t + 0.005)
      else
        rl:report(id, t, 200, nil, true, "x-ratelimit-remaining-requests: 5\r\n", nil, false, 12, false, false)
      end
    end
    rl:import(1, t, 1, 0, 0, t + 0.01, 0, true)
    rl:admit(2, t, false, 0, 0, 0, 0, 3, true)
    rl:export(1, t)
  end
  rl:events()
  rl:status(101)
  for id = 1, 50 do rl:cancel(id, 101) end
  check("bare relay", done >= 10 and rl:active() == 0, done .. " done, " .. rl:active() .. " active")
  rl:close()
  local dec = core.stream_decoder(96)
  local evs = dec:feed('data: {"a":1}\n\ndata: {"choices":[{"finish_reason":"stop"}],"usage":{"total_tokens":7}}\n\ndata: [DO')
  dec:feed("NE]\n\n")
  local sd, sf, su = dec:state()
  check("stream decoder", #evs == 2 and sd and sf and su == 7 and dec:complete(), #evs)
  local _, fault = dec:feed(("data: " .. ("x"):rep(100) .. "\n"))
  check("stream decoder cap", fault ~= nil, fault)
  dec:reset()
  local _, f2 = dec:feed('event: error\ndata: {"error":{}}\n\n')
  check("stream decoder error event", f2 == "error_event", f2)
  rl, dec = nil, nil

  -- clients dropped without close() are collected with their transfers
  h, d, b, l = nil, nil, nil, nil
  collectgarbage()
  collectgarbage()
  check("collected", true)
end)
mock.stop_all()
check("scenario ran without an error", ok, err)
print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1, true)
