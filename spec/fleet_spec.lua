-- A fleet of 4 OS processes on one rate-limited pool, sharing it through one redis-server (issue 15):
-- with Redis the fleet behaves like one client; Redis killed, restarted or flushed mid-run loses
-- nothing. Small and loosely timed: 3 mocks at 50 req/s (burst 10), 4 x 150 requests at concurrency 10
-- (about 4 s a fleet: the 429s of the fleet's first moments weigh less than in a shorter run).
local mock = require "spec.support.mock"
local fleet = require "spec.support.fleet"
local redis = require "spec.support.redis"
local core = require "llmrelay.core"

local K, N1, C = 4, 150, 10
local DEADLINE = 90 -- seconds a fleet may take before its workers are killed

local cjson = require "cjson"

-- starts a fleet on a fresh pool; at = { [seconds into the run] = fn, ... } runs fn then
local function run_fleet(redis_url, n1, at)
  local mocks, urls = fleet.pool(3, { rps = 50, burst = 10, rl_headers = "full" })
  local f = fleet.start { workers = K, endpoints = urls, n = n1, c = C, redis = redis_url, name = "spec-fleet" }
  local times = {}
  for t in pairs(at or {}) do times[#times + 1] = t end
  table.sort(times)
  local marks = {}
  for _, t in ipairs(times) do
    core.sleep(math.max(0, f.start_at + t - core.wall()))
    at[t]()
    marks[t] = core.wall()
  end
  local results = f:wait(DEADLINE)
  local s = fleet.summary(results)
  assert.same({}, s.errors)
  return s, fleet.pool_stats(mocks), results, marks
end

-- all ok, or the failures named
local function all_ok(s, n)
  assert.equal(n, s.ok, ("%d of %d ok; failed by kind: %s; e.g. %s")
    :format(s.ok, n, cjson.encode(s.kinds), table.concat(s.messages, " | ")))
end

describe("a fleet of processes sharing one pool through Redis", function()
  local server
  local reference -- the fleet with Redis, undisturbed: run once, compared against by later tests

  before_each(function()
    server = redis.start()
  end)

  after_each(function()
    fleet.stop_all()
    redis.stop_all()
    mock.stop_all()
  end)

  local function with_redis()
    if not reference then
      local s, p, results = run_fleet(server.url, N1)
      reference = { s = s, p = p, results = results }
    end
    return reference.s, reference.p, reference.results
  end

  it("gets every request through with far fewer 429s than the same fleet without Redis", function()
    local s, p, results = with_redis()
    local alone_s, alone_p = run_fleet(nil, N1)
    all_ok(s, K * N1)
    local why = ("429 share with Redis %.1f %% (%d of %d attempts), without %.1f %% (%d of %d; %d ok)")
      :format(p.share, p.r429, p.attempts, alone_p.share, alone_p.r429, alone_p.attempts, alone_s.ok)
    assert.is_true(p.share < 10, why)
    assert.is_true(p.share < alone_p.share / 2, why)
    assert.is_true(s.all_up, "every process ends with status().redis.up = true")
    assert.is_true(s.round_trips > 0, "status().redis.round_trips counted")
    assert.is_true(s.round_trips / (K * N1) < 1,
      ("%d Redis round trips for %d requests"):format(s.round_trips, K * N1))
    for k, r in ipairs(results) do
      assert.equal(1, r.metrics.llmrelay_redis_up, ("worker %d: llmrelay_redis_up"):format(k))
      -- read after status(): a counter can only have grown since
      assert.is_true(r.metrics.llmrelay_redis_round_trips_total >= r.redis.round_trips)
    end
  end)

  it("loses nothing and waits on nothing when Redis is SIGKILLed mid-run", function()
    local ref = with_redis()
    local s, _, results = run_fleet(server.url, N1, { [0.8] = function() server:kill() end })
    all_ok(s, K * N1)
    for k, r in ipairs(results) do
      assert.is_false(r.redis.up, ("worker %d ends with status().redis.up = false"):format(k))
      assert.is_true(r.redis.fallbacks > 0, ("worker %d: status().redis.fallbacks = %d"):format(k, r.redis.fallbacks))
      assert.equal(0, r.metrics.llmrelay_redis_up, ("worker %d: llmrelay_redis_up"):format(k))
      assert.is_true(r.metrics.llmrelay_redis_fallbacks_total >= r.redis.fallbacks)
    end
    assert.is_true(s.wall <= ref.wall + 3,
      ("the run took %.2f s, the undisturbed one %.2f s"):format(s.wall, ref.wall))
  end)

  it("waits on no hung Redis longer than its timeout (SIGSTOP mid-run)", function()
    local ref = with_redis()
    local stopped = false
    local s, _, results = run_fleet(server.url, N1, { [0.8] = function()
      mock.run("kill -STOP " .. server.pid)
      stopped = true
    end })
    if stopped then mock.run("kill -CONT " .. server.pid) end
    all_ok(s, K * N1)
    for k, r in ipairs(results) do
      assert.is_false(r.redis.up, ("worker %d ends with status().redis.up = false"):format(k))
      assert.is_true(r.redis.errors > 0, ("worker %d: status().redis.errors = %d"):format(k, r.redis.errors))
    end
    assert.is_true(s.wall <= ref.wall + 3,
      ("the run took %.2f s, the undisturbed one %.2f s"):format(s.wall, ref.wall))
  end)

  it("reconnects when Redis restarts mid-run, its scripts gone", function()
    local restarted
    local n1 = 250 -- about 7 s: long enough to run a while after the restart
    local s, _, results = run_fleet(server.url, n1, {
      [1.0] = function() server:kill() end,
      [2.0] = function()
        server:restart()
        restarted = core.wall()
      end,
    })
    all_ok(s, K * n1)
    assert.is_true(s.fallbacks > 0, "the fleet ran on local state while Redis was down")
    for k, r in ipairs(results) do
      assert.is_true(r.redis.up, ("worker %d ends with status().redis.up = true"):format(k))
      local before = fleet.at(r, "round_trips", restarted)
      assert.is_true(r.redis.round_trips > before,
        ("worker %d: %d round trips at the restart, %d at the end"):format(k, before, r.redis.round_trips))
    end
  end)

  it("loses nothing when Redis is flushed mid-run", function()
    local s = run_fleet(server.url, N1, { [1.0] = function() server:cli("FLUSHALL") end })
    all_ok(s, K * N1)
    assert.is_true(s.all_up, "every process ends with status().redis.up = true")
  end)

  it("authenticates as an ACL user, and never shows the password, right or wrong", function()
    redis.stop_all()
    local pw = "fleet-secret-7d1c"
    server = redis.start { acl_user = { name = "app", password = pw } }
    local good = server.url:gsub("^redis://", "redis://app:" .. pw .. "@")
    local s, _, results = run_fleet(good, 25)
    all_ok(s, K * 25)
    assert.is_true(s.all_up, "every process ends with status().redis.up = true")
    assert.is_true(s.round_trips > 0)
    local text = cjson.encode(results)
    assert.is_nil(text:find(pw, 1, true), "the password shows in a worker's result")
    assert.truthy(results[1].redis.url:find(server.port, 1, true))

    local bad = server.url:gsub("^redis://", "redis://app:wrong-" .. pw .. "@")
    -- Redis refuses from the start: no share of the fleet is known, the processes run as if alone
    s, _, results = run_fleet(bad, 25)
    assert.equal(K * 25, s.ok + s.failed)
    text = cjson.encode(results)
    for k, r in ipairs(results) do
      assert.is_false(r.redis.up, ("worker %d: status().redis.up with a wrong password"):format(k))
      assert.is_string(r.redis.last_error)
    end
    assert.is_nil(text:find(pw, 1, true), "the password shows in a worker's result: " .. text)
  end)
end)
