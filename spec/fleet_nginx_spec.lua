-- Issue 15: two nginx instances (two "hosts"), 2 workers each, run the gateway
-- for one pool against one redis-server: together they stay within the
-- upstreams' limits (where, without Redis, each host believes it owns the
-- pool), every worker shows the fleet in client:status().redis, Redis killed
-- in the middle of the load costs no request, and Redis restarted empty
-- (scripts gone) is taken up again. Real nginx, redis-server (with
-- requirepass) and mock-llm, all on 127.0.0.1, stopped by PID.
-- The tests run in order on one Redis, one set of mocks and (from the second
-- on) the same two gateways. The 429 shares are the mocks' counts over a load
-- that follows a short warm-up (printed apart): the first requests of a pool
-- go out before any host knows the upstreams' rate.
-- Run from the repo root (make && make LUA=luajit first):
--   busted --lua=lua5.4 spec/fleet_nginx_spec.lua
local cjson = require "cjson"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"
local load = require "spec.support.load"
local server = require "spec.support.redis"
local fleet = require "llmrelay.fleet"

local q, capture = mock.quote, mock.capture

-- The Redis password: no answer, header, status or log line may hold it.
local PASSWORD = "Fleet-SECRET-pw-7d3e"
local KEY = "gw-fleet-key"
local MOCK = { rps = 50, burst = 10, rl_headers = "full" }
local N, C = 300, 20 -- requests per gateway, and its curl's concurrency

local function assert_clean_log(log, who)
  local p = load.log_problem(log)
  assert.is_nil(p, who .. "'s error log matches '" .. tostring(p) .. "':\n" .. log)
end

local function assert_no_password(text, where)
  assert.is_nil(text:find(PASSWORD, 1, true), where .. " holds the Redis password")
  assert.is_nil(text:find("SECRET", 1, true), where .. " holds part of the Redis password")
end

local show = load.show

local function sleep(s) mock.run("sleep " .. s) end

-- A gateway "host": 2 workers, the shared dict, one client for the 3 mocks,
-- with `redis` when redis_url is given. /fleet answers the serving worker's
-- client:status().redis (false without Redis) as JSON.
local function gateway(mocks, redis_url)
  local eps = {}
  for i, m in ipairs(mocks) do
    eps[i] = ("{ name = %q, base_url = %q, api_key = \"sk-upstream-%d\" }"):format("m" .. i, m.url, i)
  end
  return nginx.start{
    workers = 2,
    shared_dicts = { llmrelay = "10m" },
    log_level = "info",
    init = ([[
      local llmrelay = require "llmrelay"
      client = llmrelay.new{ name = "fleet", shared_dict = "llmrelay", redis = %s,
        timeout = { connect = 2, first_byte = 10, total = 30 },
        endpoints = { %s } }
    ]]):format(redis_url and ("%q"):format(redis_url) or "nil", table.concat(eps, ", ")),
    http = [[
      lua_socket_log_errors off;
      server {
        listen 127.0.0.1:$PORT reuseport;
        add_header X-Worker $pid always;
        location / { content_by_lua_block {
          require("llmrelay.resty.gateway").serve(client, { keys = { "]] .. KEY .. [[" } })
        } }
        location = /fleet { content_by_lua_block {
          ngx.header["Content-Type"] = "application/json"
          ngx.say(require("cjson").encode({ worker = ngx.worker.pid(), redis = client:status().redis or false }))
        } }
      }
    ]],
  }
end

local function chat_body(prompt)
  return cjson.encode{ model = "gpt-x", messages = { { role = "user", content = prompt } } }
end

-- Starts n requests at concurrency c on gateway g in the background; every
-- body and header is scanned for the password into seen.leaks.
local function start_load(g, tag, n, c, seen)
  return load.start{
    url = g.base .. "/v1/chat/completions", n = n, c = c,
    headers = { "Authorization: Bearer " .. KEY, "Content-Type: application/json" },
    body = function(i) return chat_body(tag .. " " .. i) end,
    expect = function(i) return '"content":"echo: ' .. tag .. " " .. i .. '"' end,
    scan = function(body, head)
      if (body .. head):find("SECRET", 1, true) then seen.leaks = (seen.leaks or 0) + 1 end
    end,
  }
end

-- 429s and attempts the mocks saw since their last reset (and resets them).
local function mock_figures(mocks)
  local attempts, limited = 0, 0
  for _, m in ipairs(mocks) do
    local st = m:stats(true)
    attempts = attempts + st.requests
    limited = limited + (st.status["429"] or 0)
  end
  return { attempts = attempts, limited = limited, share = attempts > 0 and limited / attempts or 0 }
end

local function assert_all_ok(r, n, who)
  assert.equal(0, r.rc, who .. ": curl failed: " .. tostring(r.stderr))
  assert.equal(n, r.lines, who .. ": curl reported " .. r.lines .. " transfers")
  assert.equal(n, r.codes[200] or 0, who .. ": statuses " .. show(r.codes) .. "; e.g.\n" .. table.concat(r.bad, "\n"))
  assert.equal(n, r.ok_bodies, who .. ": answers that echo their own prompt")
end

-- Asks each gateway's /fleet until both its workers answered (at most 40
-- asks each): -> a list of { host = i, pid =, st = status().redis }, and the
-- raw answers (headers and bodies) for the password check.
local function workers_status(gs)
  local list, raw = {}, {}
  for i, g in ipairs(gs) do
    local seen, n, want = {}, 0, #g:worker_pids()
    for _ = 1, 40 do
      local code, body, _, head = load.request(g.base .. "/fleet", { timeout = 10 })
      assert.equal(200, code, "/fleet: " .. tostring(body))
      raw[#raw + 1] = head .. body
      local doc = cjson.decode(body)
      if not seen[doc.worker] then
        seen[doc.worker], n = true, n + 1
        list[#list + 1] = { host = i, pid = ("%d"):format(doc.worker), st = doc.redis }
      end
      if n >= want then break end
    end
    assert.equal(2, n, "gateway " .. i .. ": workers that answered /fleet")
  end
  return list, table.concat(raw, "\n")
end

-- After a disturbance: each host has the workers it started with, and an
-- error log with no Lua error, alert or password.
local function assert_hosts_fine(gs, pids)
  for i, g in ipairs(gs) do
    assert.same(pids[i], g:worker_pids(), "gateway " .. i .. "'s workers changed")
    assert_clean_log(g:error_log(), "gateway " .. i)
    assert_no_password(g:error_log(), "gateway " .. i .. "'s error log")
  end
end

-- Both loads side by side; returns their results.
local function both(gs, tag, n, c, seen, during)
  local a, b = start_load(gs[1], tag .. "-a", n, c, seen), start_load(gs[2], tag .. "-b", n, c, seen)
  local ok, err = pcall(during or function() end)
  local ra, rb = a:wait(), b:wait()
  if not ok then error(err, 0) end
  return ra, rb
end

-- A warm-up (WARM requests per gateway), then the N x C load on both hosts at
-- once: -> their results, the mocks' figures of the load, and of the warm-up.
-- The warm-up holds the start, when no host knows the upstreams' rate yet
-- and the first leases go out unbounded; the load measures the sharing.
local WARM = 20
local function measure(gs, mocks, tag, seen, during)
  mock_figures(mocks)
  both(gs, tag .. "-warm", WARM, 5, seen)
  local warm = mock_figures(mocks)
  local ra, rb = both(gs, tag, N, C, seen, during)
  return ra, rb, mock_figures(mocks), warm
end

describe("two nginx gateways (two hosts) against one Redis", function()
  if not nginx.required(it, "fleet nginx spec") then return end

  local r, mocks, gs, pids = nil, {}, {}, {}
  local without -- the 429 share of the same load without Redis
  local seen = {} -- password leaks seen in load answers
  local function url() return ("redis://:%s@127.0.0.1:%d"):format(PASSWORD, r.port) end
  local function masked() return ("redis://:***@127.0.0.1:%d"):format(r.port) end

  setup(function()
    r = server.start{ requirepass = PASSWORD }
    for i = 1, 3 do
      local o = { name = "m" .. i }
      for k, v in pairs(MOCK) do o[k] = v end
      mocks[i] = mock.start(o)
    end
  end)

  teardown(function()
    load.stop_all()
    for _, g in ipairs(gs) do g:stop() end
    for _, m in ipairs(mocks) do m:stop() end
    if r then r:stop() end
  end)

  it("without Redis, two hosts that each believe they own the pool earn many 429s (the comparison)", function()
    local local_gs = {}
    local ok, err = pcall(function()
      local_gs[1] = gateway(mocks)
      local_gs[2] = gateway(mocks)
      local ra, rb, warm
      ra, rb, without, warm = measure(local_gs, mocks, "alone", seen)
      print(("\nfleet nginx, no Redis: 2 hosts x %d requests at C=%d (%.1f s, %.1f s) after %d each to warm up;"
        .. " statuses %s, %s; the mocks saw %d attempts, %d answered 429 (%.1f%%); the warm-up's 429s %d of %d")
        :format(N, C, ra.elapsed, rb.elapsed, WARM, show(ra.codes), show(rb.codes), without.attempts,
                without.limited, 100 * without.share, warm.limited, warm.attempts))
      for _, x in ipairs{ ra, rb } do
        assert.equal(0, x.rc, "curl failed: " .. tostring(x.stderr))
        assert.equal(N, x.lines)
      end
      for _, g in ipairs(local_gs) do assert_clean_log(g:error_log(), "a gateway without Redis") end
    end)
    for _, g in ipairs(local_gs) do g:stop() end
    if not ok then error(err, 0) end
  end)

  it("with Redis: every request answers 200 and the mocks' 429 share stays low, far below the share without", function()
    gs[1] = gateway(mocks, url())
    gs[2] = gateway(mocks, url())
    for i, g in ipairs(gs) do pids[i] = g:worker_pids() end
    local members = 0
    local ra, rb, with, warm = measure(gs, mocks, "fleet", seen, function()
      -- while both hosts are busy: the fleet's member count, as each host sees it
      for _ = 1, 20 do
        for _, g in ipairs(gs) do
          local code, body = load.request(g.base .. "/fleet", { timeout = 10 })
          if code == 200 then
            local st = cjson.decode(body).redis
            if st and st.members and st.members > members then members = st.members end
          end
        end
        if members >= 4 then break end
        sleep(0.1)
      end
    end)
    local trips = 0
    for _, w in ipairs(workers_status(gs)) do trips = trips + w.st.round_trips end
    print(("\nfleet nginx, one Redis: 2 hosts x %d requests at C=%d (%.1f s, %.1f s) after %d each to warm up;"
      .. " statuses %s, %s; the mocks saw %d attempts, %d answered 429 (%.1f%%; without Redis %s);"
      .. " the warm-up's 429s %d of %d; members seen %d;"
      .. " Redis round trips of the 4 workers %d (%.2f a request, warm-up and status asks included)")
      :format(N, C, ra.elapsed, rb.elapsed, WARM, show(ra.codes), show(rb.codes), with.attempts, with.limited,
              100 * with.share, without and ("%.1f%%"):format(100 * without.share) or "not measured",
              warm.limited, warm.attempts, members, trips, trips / (2 * (N + WARM))))
    assert_all_ok(ra, N, "gateway 1")
    assert_all_ok(rb, N, "gateway 2")
    assert.is_nil(seen.leaks, "answers holding the Redis password")
    assert.is_true(with.share <= 0.05, ("%.1f%% of the attempts were answered 429"):format(100 * with.share))
    assert(without, "the run without Redis (the test before) did not measure its share")
    assert.is_true(with.share < without.share / 2,
      ("with Redis %.1f%% 429s, without %.1f%%: not under half"):format(100 * with.share, 100 * without.share))
    assert.is_true(members >= 2, "members seen while both hosts were busy: " .. members)
  end)

  it("status().redis in every worker of both hosts: up, members, round trips, the url without its password", function()
    assert(gs[2], "the gateways did not start")
    -- a short load on both at once, so that every worker has exchanged within the last seconds
    local ra, rb = both(gs, "status", 40, 10, seen)
    assert_all_ok(ra, 40, "gateway 1")
    assert_all_ok(rb, 40, "gateway 2")
    local members = 0
    local list, raw = workers_status(gs)
    local texts = { raw }
    for _, w in ipairs(list) do
      local st, who = w.st, "gateway " .. w.host .. " worker " .. w.pid
      assert.is_table(st, who .. " has no status().redis")
      assert.is_true(st.up, who .. ": " .. show(st))
      assert.equal(masked(), st.url)
      assert.is_true(st.members >= 2, who .. ": " .. show(st))
      assert.is_true(st.round_trips > 0, who .. ": " .. show(st))
      if st.members > members then members = st.members end
    end
    for _, g in ipairs(gs) do
      local code, text, _, head = load.request(g.base .. "/metrics", { headers = { "Authorization: Bearer " .. KEY } })
      assert.equal(200, code, text)
      texts[#texts + 1] = head .. text
      assert.truthy(text:find("\nllmrelay_redis_up 1\n", 1, true), text)
      assert.truthy(text:find("\nllmrelay_redis_round_trips_total %d"), text)
      -- /health: the endpoints stay an array, the fleet's Redis goes beside them
      local code2, health, _, head2 = load.request(g.base .. "/health", { headers = { "Authorization: Bearer " .. KEY } })
      assert.equal(200, code2, health)
      texts[#texts + 1] = head2 .. health
      local doc = cjson.decode(health)
      assert.equal(3, #doc.endpoints, health)
      assert.equal("m1", doc.endpoints[1].name, health)
      assert.is_nil(doc.endpoints.redis, health)
      assert.is_true(doc.redis.up, health)
      assert.equal(masked(), doc.redis.url)
    end
    print(("\nfleet nginx status: members %d (2 hosts x 2 workers)"):format(members))
    assert_no_password(table.concat(texts, "\n"), "a status, metrics or health answer")
    assert_hosts_fine(gs, pids)
  end)

  it("Redis killed (SIGKILL) in the middle of the load: every request 200, then up = false and fallbacks > 0", function()
    assert(gs[2], "the gateways did not start")
    local killed_at
    local ra, rb = both(gs, "kill", N, C, seen, function()
      -- kill once the mocks have seen a good part of the load (bounded wait)
      for _ = 1, 200 do
        local sum = 0
        for _, m in ipairs(mocks) do sum = sum + m:stats().requests end
        if sum >= N / 2 then break end
        sleep(0.05)
      end
      r:kill()
      killed_at = 0
      for _, m in ipairs(mocks) do killed_at = killed_at + m:stats().requests end
    end)
    local figures = mock_figures(mocks)
    print(("\nfleet nginx, Redis killed after %d of the mocks' attempts: statuses %s, %s;"
      .. " %d attempts, %d answered 429 (%.1f%%)")
      :format(killed_at, show(ra.codes), show(rb.codes), figures.attempts, figures.limited, 100 * figures.share))
    assert_all_ok(ra, N, "gateway 1")
    assert_all_ok(rb, N, "gateway 2")
    assert.is_true(killed_at < figures.attempts, "no attempt after the kill: Redis was killed after the load")
    local list, raw = workers_status(gs)
    for _, w in ipairs(list) do
      local st, who = w.st, "gateway " .. w.host .. " worker " .. w.pid
      assert.is_false(st.up, who .. ": " .. show(st))
      assert.is_true(st.fallbacks > 0, who .. ": " .. show(st))
      assert.is_true(st.errors > 0, who .. ": " .. show(st))
      assert.is_string(st.last_error)
      assert.equal(masked(), st.url)
      print("  " .. who .. ": " .. show(st))
    end
    assert_hosts_fine(gs, pids)
    assert_no_password(raw, "a /fleet answer")
    assert.is_nil(seen.leaks, "answers holding the Redis password")
  end)

  it("Redis restarted empty on the same port: a new load goes through, the script is loaded again, up = true", function()
    assert(gs[2], "the gateways did not start")
    r:restart()
    assert.equal("0", (r:cli("DBSIZE") or ""):match("%d+"))
    local sha = capture("printf %s " .. q(fleet.SCRIPT) .. " | sha1sum"):match("^(%x+)")
    assert.equal("0", (r:cli("SCRIPT", "EXISTS", sha) or ""):match("%d+"))
    -- a short, gentle load right away: the workers come back one by one after their backoff (the
    -- first back takes the fresh bucket while the others still pace on their local share)
    local ra, rb = both(gs, "again", 40, 4, seen)
    local figures = mock_figures(mocks)
    print(("\nfleet nginx, the load right after the restart: statuses %s, %s; %d attempts, %d answered 429 (%.1f%%)")
      :format(show(ra.codes), show(rb.codes), figures.attempts, figures.limited, 100 * figures.share))
    assert_all_ok(ra, 40, "gateway 1")
    assert_all_ok(rb, 40, "gateway 2")
    -- the workers reconnect after their backoff (at most 2 s): ask until every one is up
    local list, raw
    for _ = 1, 30 do
      list, raw = workers_status(gs)
      local all = true
      for _, w in ipairs(list) do all = all and w.st.up end
      if all then break end
      sleep(0.3)
    end
    local round_trips = 0
    for _, w in ipairs(list) do
      assert.is_true(w.st.up, "gateway " .. w.host .. " worker " .. w.pid .. ": " .. show(w.st))
      round_trips = round_trips + w.st.round_trips
    end
    print(("fleet nginx after the restart: every worker up again; round trips of the 4 workers %d"):format(round_trips))
    -- the workers' exchanges ran the fleet's script again (NOSCRIPT, SCRIPT LOAD) on the empty server
    assert.equal("1", (r:cli("SCRIPT", "EXISTS", sha) or ""):match("%d+"))
    assert.truthy((r:cli("KEYS", "llmrelay:fleet:*") or ""):find("llmrelay:fleet:ep:m1", 1, true))
    assert_hosts_fine(gs, pids)
    assert_no_password(raw, "a /fleet answer")
    assert.is_nil(seen.leaks, "answers holding the Redis password")
  end)
end)
