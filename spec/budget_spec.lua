-- budget = { usd = N }: once the client has spent N (what its answers cost, from the
-- endpoints' prices), every new request fails at once with kind "budget" and nothing is
-- sent; requests in flight finish and are charged. Every path: chat_completion, chat,
-- stream, batch, the CLI, the gateway (402, code "budget_exceeded"); one total for the
-- workers of an nginx (shared_dict) and for the members of a fleet (redis).
-- The mock's usage rule (prompt_tokens = body bytes / 4, completion_tokens = answer
-- content bytes / 4) at $1000 per 1M tokens makes one request cost a few cents.
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"
local cjson = require "cjson"

local PRICES = { ["*"] = { input = 1000, output = 1000 } }
-- {"model":"m","messages":[{"role":"user","content":"hi"}]}: 57 bytes, 14 prompt tokens;
-- "echo: hi": 2 completion tokens
local ONE = 16 / 1000
local BUDGET = 9.5 * ONE -- about 10 requests: the 10th starts at 9 x ONE spent

local function near(want, got, what)
  assert.is_number(got, what)
  assert.is_true(math.abs(want - got) < 1e-9, ("%s: want %.12g, got %.12g"):format(what or "usd", want, got))
end

local function req(text)
  return { model = "m", messages = { { role = "user", content = text or "hi" } } }
end

local function pool(m, usd, extra)
  local cfg = { endpoints = { { name = "a", base_url = m.url, prices = PRICES } }, budget = usd and { usd = usd },
                retry = { max_attempts = 1 } }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return llmrelay.new(cfg)
end

local function is_budget(err, what)
  assert.is_table(err, what)
  assert.equal("budget", err.kind, what .. ": " .. tostring(err))
  assert.equal(0, err.attempts)
  assert.truthy(err.message:find("^budget of %$[%d.]+ spent %(%$[%d.]+ so far%)$"), err.message)
end

describe("budget", function()
  it("is a table { usd = N }, checked at new()", function()
    local url = "http://127.0.0.1:9/v1"
    local function refused(budget, text)
      local ok, e = pcall(llmrelay.new, { endpoints = { { base_url = url } }, budget = budget })
      assert.is_false(ok)
      assert.truthy(tostring(e):find(text, 1, true), tostring(e))
    end
    refused(5, "budget must be a table (got 5)")
    refused({}, "budget.usd is required")
    refused({ usd = -1 }, "budget.usd must be a number >= 0 (USD) (got -1)")
    refused({ usd = "10" }, "budget.usd must be a number >= 0 (USD)")
    refused({ usd = 1 / 0 }, "budget.usd must be a number >= 0 (USD)")
    refused({ usd = 1, eur = 2 }, "budget")
    local c = llmrelay.new { endpoints = { { base_url = url } } }
    assert.is_nil(c:status().budget)
    assert.is_nil(c:metrics():find("llmrelay_budget_usd", 1, true))
    c:close()
  end)
end)

describe("budget (one client)", function()
  after_each(function() mock.stop_all() end)

  it("lets about 10 requests through, then refuses every new one with kind budget, sending nothing", function()
    local m = mock.start { name = "a" }
    local c = pool(m, BUDGET)
    for i = 1, 10 do
      local resp, err = c:chat_completion(req())
      assert.is_nil(err, "request " .. i)
      near(ONE, resp._llmrelay.cost, "request " .. i)
    end
    for i = 1, 3 do
      local resp, err = c:chat_completion(req())
      assert.is_nil(resp)
      is_budget(err, "chat_completion " .. i)
    end
    assert.equal("llmrelay: budget: after 0 attempts: budget of $0.152 spent ($0.16 so far)",
                 tostring((select(2, c:chat_completion(req())))))
    local text, err = c:chat("hi", { model = "m" })
    assert.is_nil(text)
    is_budget(err, "chat")
    text, err = c:chat("hi", { model = "m", stream = true })
    assert.is_nil(text)
    is_budget(err, "chat stream")
    local seen
    for chunk, serr in c:stream(req()) do
      assert.is_false(chunk)
      seen = serr
    end
    is_budget(seen, "stream")
    local results, summary = c:batch({ req(), req("x"), req("y") }, { concurrency = 2 })
    assert.equal(0, summary.ok)
    assert.equal(3, summary.failed)
    assert.equal(0, summary.attempts)
    for i = 1, 3 do
      assert.is_false(results[i].ok)
      is_budget(results[i].error, "batch " .. i)
    end
    assert.equal(10, m:stats().requests)
    local st = c:status()
    assert.same({ usd = BUDGET, spent = st.budget.spent }, st.budget)
    near(10 * ONE, st.budget.spent, "status().budget.spent")
    near(10 * ONE, st[1].cost, "status()[1].cost")
    local metrics = c:metrics()
    assert.truthy(metrics:find("# TYPE llmrelay_budget_usd gauge\n", 1, true), metrics)
    assert.truthy(metrics:find("# TYPE llmrelay_spent_usd_total counter\n", 1, true), metrics)
    near(BUDGET, tonumber(metrics:match("\nllmrelay_budget_usd (%S+)\n")), "llmrelay_budget_usd")
    near(10 * ONE, tonumber(metrics:match("\nllmrelay_spent_usd_total (%S+)\n")), "llmrelay_spent_usd_total")
    c:close()
  end)

  it("charges streams from their usage chunk, and a budget of 0 sends nothing at all", function()
    local m = mock.start { name = "a" }
    local probe = pool(m)
    local st = probe:stream(req())
    while st:next() do end
    local one = st._llmrelay.cost -- a streamed request's body is longer: it costs more than ONE
    assert.is_true(one > ONE)
    probe:close()
    m:stats(true)
    local c = pool(m, 2.5 * one)
    for i = 1, 3 do
      local text, err = c:chat("hi", { model = "m", stream = true })
      assert.equal("echo: hi", text, tostring(err) .. " (stream " .. i .. ")")
    end
    local _, err = c:chat("hi", { model = "m", stream = true })
    is_budget(err, "the 4th stream")
    near(3 * one, c:status().budget.spent, "spent")
    assert.equal(3, m:stats().requests)
    c:close()
    local zero = pool(m, 0)
    _, err = zero:chat_completion(req())
    is_budget(err, "budget 0")
    assert.equal(3, m:stats().requests)
    zero:close()
  end)

  it("batch: requests in flight finish and are charged, each refused one is a recorded error", function()
    local m = mock.start { name = "a", latency_ms = 30 }
    local c = pool(m, BUDGET)
    local reqs = {}
    for i = 1, 30 do reqs[i] = req() end
    local refused_seen = 0
    local results, summary = c:batch(reqs, { concurrency = 4, on_result = function(_, res)
      if not res.ok and res.error.kind == "budget" then refused_seen = refused_seen + 1 end
    end })
    -- the 10th starts with 9 spent; up to 3 more were in flight then
    assert.is_true(summary.ok >= 10 and summary.ok <= 13, "ok " .. summary.ok)
    assert.equal(30 - summary.ok, summary.failed)
    assert.equal(summary.failed, refused_seen)
    for i = 1, 30 do
      if not results[i].ok then is_budget(results[i].error, "batch " .. i) end
    end
    assert.equal(summary.ok, m:stats().requests)
    near(summary.ok * ONE, summary.cost, "summary.cost")
    near(summary.ok * ONE, c:status().budget.spent, "spent")
    c:close()
    -- one at a time: exactly ten
    m:stats(true)
    c = pool(m, BUDGET)
    _, summary = c:batch(reqs, { concurrency = 1 })
    assert.equal(10, summary.ok)
    assert.equal(20, summary.failed)
    assert.equal(10, m:stats().requests)
    c:close()
  end)
end)

describe("budget in the CLI (config budget)", function()
  local cli = require "spec.support.cli"
  local dir
  before_each(function() dir = mock.capture("mktemp -d"):gsub("%s+$", "") end)
  after_each(function()
    cli.stop_all()
    mock.stop_all()
    mock.run("rm -rf " .. mock.quote(dir))
  end)

  it("writes the answers paid for, not the refused lines (a re-run sends them), and exits 1 naming budget.usd", function()
    local m = mock.start { name = "a" }
    local f = assert(io.open(dir .. "/conf.lua", "wb"))
    f:write(("return { endpoints = { { name = \"a\", base_url = %q, prices = { [\"*\"] = { input = 1000, "
             .. "output = 1000 } } } }, budget = { usd = %.17g } }\n"):format(m.url, BUDGET))
    f:close()
    f = assert(io.open(dir .. "/in.jsonl", "wb"))
    for i = 1, 15 do
      f:write(('{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":'
               .. '{"model":"m","messages":[{"role":"user","content":"hi"}]}}\n'):format(i))
    end
    f:close()
    local rc, _, err = cli.run(dir, ("batch %s/in.jsonl -o %s/out.jsonl -c %s/conf.lua --concurrency 1"):format(dir, dir, dir))
    assert.equal(1, rc, err)
    assert.truthy(err:find("budget of $0.152 spent", 1, true), err)
    assert.truthy(err:find("5 of 15 lines left", 1, true), err)
    assert.truthy(err:find("budget.usd", 1, true), err)
    local ok = 0
    for line in io.lines(dir .. "/out.jsonl") do
      local doc = cjson.decode(line)
      assert.equal(cjson.null, doc.error, line)
      ok = ok + 1
    end
    assert.equal(10, ok, err)
    assert.equal(10, m:stats().requests)
  end)
end)

describe("budget shared by nginx workers (shared_dict)", function()
  local nginx = require "spec.support.nginx"
  local load = require "spec.support.load"
  if not nginx.required(it, "budget spec") then return end
  after_each(function()
    nginx.stop_all()
    mock.stop_all()
  end)

  it("one total for both workers: about 10 answers, then 402 budget_exceeded from either", function()
    local m = mock.start { name = "a" }
    local n = nginx.start {
      workers = 2,
      shared_dicts = { llmrelay = "1m" },
      init = ([[
        client = require("llmrelay").new{ name = "bud", shared_dict = "llmrelay", budget = { usd = %.17g },
          endpoints = { { name = "a", base_url = %q, prices = { ["*"] = { input = 1000, output = 1000 } } } } }
      ]]):format(BUDGET, m.url),
      http = [[
        server {
          listen 127.0.0.1:$PORT reuseport;
          add_header X-Worker $pid always;
          location = /spent { content_by_lua_block {
            ngx.say(require("cjson").encode({ worker = ngx.worker.pid(), budget = client:status().budget }))
          } }
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(client, { anonymous = true })
          } }
        }
      ]],
    }
    local body = '{"model":"m","messages":[{"role":"user","content":"hi"}]}'
    local codes, workers, refusals = {}, {}, {}
    for _ = 1, 16 do
      local code, text, head = load.request(n.base .. "/v1/chat/completions", {
        method = "POST", body = body, headers = { "Content-Type: application/json" } })
      codes[code] = (codes[code] or 0) + 1
      workers[head["x-worker"]] = true
      if code == 402 then refusals[#refusals + 1] = text end
    end
    assert.equal(10, codes[200], load.show(codes))
    assert.equal(6, codes[402], load.show(codes))
    local e = cjson.decode(refusals[1]).error
    assert.equal("budget_exceeded", e.code)
    assert.equal("insufficient_quota", e.type)
    assert.truthy(e.message:find("budget of $0.152 spent ($0.16 so far)", 1, true), e.message)
    -- a stream is refused before anything streams
    local code, text = load.request(n.base .. "/v1/chat/completions", {
      method = "POST", body = body:sub(1, -2) .. ',"stream":true}', headers = { "Content-Type: application/json" } })
    assert.equal(402, code, text)
    assert.equal(10, m:stats().requests)
    -- both workers see the one total
    local seen, count = {}, 0
    for _ = 1, 60 do
      local _, s = load.request(n.base .. "/spent")
      local doc = cjson.decode(s)
      near(10 * ONE, doc.budget.spent, "worker " .. doc.worker)
      assert.equal(BUDGET, doc.budget.usd)
      if not seen[doc.worker] then seen[doc.worker], count = true, count + 1 end
      if count == 2 then break end
    end
    assert.equal(2, count, "workers that answered /spent")
    local _, health = load.request(n.base .. "/health")
    near(10 * ONE, cjson.decode(health).budget.spent, "/health")
    local _, metrics = load.request(n.base .. "/metrics")
    near(10 * ONE, tonumber(metrics:match("\nllmrelay_spent_usd_total (%S+)\n")), "/metrics")
    assert.is_nil(n:error_log():find("%[error%]"), n:error_log())
    -- both workers answered (reuseport spreads the connections): the count above is theirs together
    local w = 0
    for _ in pairs(workers) do w = w + 1 end
    assert.equal(2, w, "workers that answered")
  end)
end)

describe("budget shared through Redis (two members in one process)", function()
  local server = require "spec.support.redis"
  local r
  setup(function() r = server.start() end)
  teardown(function()
    if r then r:stop() end
    mock.stop_all()
  end)

  it("the members' spend adds up: about 10 answers between them, then both refuse", function()
    r:cli("FLUSHALL")
    local m = mock.start { name = "a", latency_ms = 60 }
    local a = pool(m, BUDGET, { name = "bud", redis = r.url })
    local b = pool(m, BUDGET, { name = "bud", redis = r.url })
    local reqs = {}
    for i = 1, 12 do reqs[i] = req() end
    local sums = {}
    llmrelay.run(function()
      for k, c in ipairs { a, b } do
        llmrelay.spawn(function()
          local _, s = c:batch(reqs, { concurrency = 1 })
          sums[k] = s
        end)
      end
    end)
    local ok = sums[1].ok + sums[2].ok
    -- each alone would stop at 10 (20 in all); a member learns the other's spend at its
    -- exchanges (every 80 ms while busy), a request of 60 ms each: 12 seen, 2 over
    assert.is_true(ok >= 10 and ok <= 14, "answers " .. ok .. " (" .. sums[1].ok .. " + " .. sums[2].ok .. ")")
    assert.is_true(sums[1].ok >= 2 and sums[2].ok >= 2, sums[1].ok .. " + " .. sums[2].ok)
    assert.equal(ok, m:stats().requests)
    for k, c in ipairs { a, b } do
      near(ok * ONE, c:status().budget.spent, "member " .. k)
      local _, err = c:chat_completion(req())
      is_budget(err, "member " .. k)
    end
    near(ok * ONE, tonumber(r:cli("GET", "llmrelay:bud:spent")), "the fleet's key")
    a:close(); b:close()
  end)

  it("a new member reads the fleet's spend before its first request; close() tells what is left", function()
    r:cli("FLUSHALL")
    local m = mock.start { name = "a" }
    local a = pool(m, BUDGET, { name = "bud2", redis = r.url })
    for i = 1, 10 do assert.is_table((a:chat_completion(req())), "request " .. i) end
    a:close() -- its last answers' spend goes to Redis now
    near(10 * ONE, tonumber(r:cli("GET", "llmrelay:bud2:spent")), "the fleet's key after close")
    local b = pool(m, BUDGET, { name = "bud2", redis = r.url })
    local _, err = b:chat_completion(req())
    is_budget(err, "a new member")
    assert.equal(10, m:stats().requests)
    -- a larger budget goes on from the fleet's total
    local c = pool(m, BUDGET + 2 * ONE, { name = "bud2", redis = r.url })
    for i = 1, 2 do assert.is_table((c:chat_completion(req())), "request " .. i .. " of the larger budget") end
    _, err = c:chat_completion(req())
    is_budget(err, "the larger budget spent")
    b:close(); c:close()
  end)
end)
