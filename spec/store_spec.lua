-- llmrelay.store: the shared-state store is an interface over a backend of five
-- methods, not tied to nginx. Here two relays (two "processes") share one
-- plain Lua backend; the rules they follow are the core's (csrc/shared.c).
local core = require "llmrelay.core"
local config = require "llmrelay.config"
local store = require "llmrelay.store"

local huge = math.huge

-- A backend with the semantics of a lua_shared_dict (ttl ignored: time is simulated).
local function table_backend()
  local t, calls = {}, {}
  local b = {}
  function b:get(k) calls.get = (calls.get or 0) + 1 return t[k] end
  function b:set(k, v) t[k] = v end
  function b:add(k, v)
    if t[k] ~= nil then return nil, "exists" end
    t[k] = v
    return true
  end
  function b:incr(k, d, init)
    if t[k] == nil then
      if init == nil then return nil, "not found" end
      t[k] = init
    end
    t[k] = t[k] + d
    return t[k]
  end
  function b:delete(k) t[k] = nil end
  return b, t, calls
end

local function process(backend, n, breaker, owner)
  local eps = {}
  for i = 1, n do eps[i] = { base_url = "http://127.0.0.1:1/v1", name = "e" .. i } end
  local cfg = config.validate { endpoints = eps, strategy = "priority", retry = { budget = false },
                                breaker = breaker }
  return core.relay(cfg, 0), store.new(backend, "p", cfg.endpoints, owner)
end

-- submits one request and hands its first send action back: id, endpoint
local function send(rl, st, now)
  local id = rl:submit("m", 10)
  st:import(rl, now, true)
  local out = {}
  local n = rl:poll(now, out) -- flat: id, endpoint, attempt, timeout per action
  assert.are.equal(1, n, "one send action expected")
  assert.are.equal(id, out[1])
  return id, out[2]
end

describe("llmrelay.store over a backend of five methods", function()
  it("one process's failures open the breaker for the other: failure_threshold for both together", function()
    local backend = table_backend()
    local rl1, st1 = process(backend, 2, { failure_threshold = 2, cooldown = 10 }, 1)
    local rl2, st2 = process(backend, 2, { failure_threshold = 2, cooldown = 10 }, 2)
    -- each process sends one attempt to e1 and both fail: two failures in all
    for _, p in ipairs { { rl1, st1 }, { rl2, st2 } } do
      local rl, st = p[1], p[2]
      local id, ep = send(rl, st, 1)
      assert.are.equal(1, ep)
      local ok = st:admit(rl, ep, id, 10, 1, 5)
      assert.is_true(ok)
      local verdict = rl:report(id, 1.1, 500)
      st:release(rl, ep, verdict, false, 500, 1.1)
    end
    assert.are.equal(2, st1:view(1).fails)
    -- process 1 now sees e1 open (its own breaker saw one failure, the store two)
    st1:import(rl1, 1.2, true)
    local id = rl1:submit("m", 10)
    local out = {}
    rl1:poll(1.2, out)
    assert.are.equal(2, out[2])
    local status = rl1:status(1.2)
    assert.are.equal("open", status[1].state)
    assert.is_true(st1:view(1).open_until > 1.2)
    rl1:cancel(id, 1.2)
  end)

  it("counts attempts in flight across processes and gives each back on release", function()
    local backend, t = table_backend()
    local rl1, st1 = process(backend, 1, nil, 1)
    local rl2, st2 = process(backend, 1, nil, 2)
    local a = send(rl1, st1, 1)
    local b = send(rl2, st2, 1)
    assert.is_true((st1:admit(rl1, 1, a, 10, 1, 5)))
    assert.is_true((st2:admit(rl2, 1, b, 10, 1, 5)))
    assert.are.equal(2, st1:view(1).in_flight)
    st1:release(rl1, 1, rl1:report(a, 1.1, 200, nil, true), false, 200, 1.1)
    st2:release(rl2, 1, rl2:report(b, 1.1, 200, nil, true), false, 200, 1.1)
    assert.are.equal(0, st2:view(1).in_flight)
    assert.is_true(t["llmrelay:p:e1:proven"]) -- an answer proved it for every process
  end)

  it("lets one process hold the half-open probe; the other is told when to look again", function()
    local backend, t = table_backend()
    local rl1, st1 = process(backend, 1, { failure_threshold = 1, cooldown = 1 }, 1)
    local rl2, st2 = process(backend, 1, { failure_threshold = 1, cooldown = 1 }, 2)
    local id = send(rl1, st1, 0)
    assert.is_true((st1:admit(rl1, 1, id, 10, 0, 5)))
    st1:release(rl1, 1, rl1:report(id, 0.1, 500), false, 500, 0.1)
    -- after the cool-down both may probe; only one holds the lock
    local p1 = send(rl1, st1, 5)
    local p2 = send(rl2, st2, 5)
    assert.is_true(rl1:is_probe(p1) and rl2:is_probe(p2))
    local ok1, probe1 = st1:admit(rl1, 1, p1, 10, 5, 5)
    local ok2, at2 = st2:admit(rl2, 1, p2, 10, 5, 5)
    assert.is_true(ok1 and probe1)
    assert.is_false(ok2)
    assert.is_true(at2 > 5 and at2 < huge)
    assert.are.equal(1, t["llmrelay:p:e1:probe"]) -- the holder's owner id
    st1:release(rl1, 1, rl1:report(p1, 5.1, 200, nil, true), true, 200, 5.1)
    assert.is_nil(t["llmrelay:p:e1:probe"])
    assert.is_nil(t["llmrelay:p:e1:open"]) -- the probe closed it for everyone
  end)

  it("open() finds no store when the config names none", function()
    local cfg = config.validate { endpoints = { { base_url = "http://127.0.0.1:1/v1" } } }
    assert.is_nil(store.open(cfg))
  end)
end)
