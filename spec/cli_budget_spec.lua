-- `llmrelay batch --budget USD` and `--dry-run` (lua/llmrelay/cli_budget.lua,
-- cli_plan.lua) against real mock processes, stopped by PID after each test.
-- Costs are worked out by hand from the mock's usage rule (prompt_tokens = body
-- bytes / 4, completion_tokens = answer content bytes / 4, both rounded down)
-- and the prices in the configs below.

local mock = require "spec.support.mock"
local cli = require "spec.support.cli"
local cjson = require "cjson.safe"
local budgets = require "llmrelay.cli_budget"
local plans = require "llmrelay.cli_plan"
local jsonl = require "llmrelay.cli_jsonl"

local q = mock.quote
local EXACT = 1e-9

local dir

local function path(name) return dir .. "/" .. name end

-- every CLI and mock a test started, stopped by PID; its files removed
local function cleanup()
  cli.stop_all()
  mock.stop_all()
  mock.run("rm -rf " .. q(dir))
end

local write = cli.write

local function near(want, got, what)
  assert.is_number(got, what)
  assert.is_true(math.abs(want - got) < EXACT, ("%s: want %.12g, got %.12g"):format(what or "USD", want, got))
end

-- line i asks model m for "msg <i, two digits>": every body is 61 bytes -> 15 prompt
-- tokens; "echo: msg 01" -> 3 completion tokens
local function body(m, i) return ('{"model":"%s","messages":[{"role":"user","content":"msg %02d"}]}'):format(m, i) end
local function line(cid, b) return ('{"custom_id":"%s","method":"POST","url":"/v1/chat/completions","body":%s}'):format(cid, b) end

local function input(n)
  local t = {}
  for i = 1, n do t[i] = line(("req-%02d"):format(i), body("m", i)) end
  return table.concat(t, "\n") .. "\n"
end

-- $1000 per 1M input tokens, $2000 per 1M output tokens: each answer costs
-- (15 * 1000 + 3 * 2000) / 1e6 = $0.021
local PER_LINE = 0.021

local function one_endpoint(m)
  write(path("conf.lua"), ([[
return { endpoints = { { name = "a", base_url = %q, prices = { m = { input = 1000, output = 2000 } } } } }
]]):format(m.url))
end

local function batch(args) return cli.run(dir, ("batch %s -o %s -c %s %s"):format(
  q(path("in.jsonl")), q(path("out.jsonl")), q(path("conf.lua")), args)) end

-- the output's lines, decoded, and the count per custom_id
local function output()
  local docs, ids = {}, {}
  for l in (mock.read_file(path("out.jsonl")) or ""):gmatch("([^\n]*)\n") do
    local doc = assert(cjson.decode(l), l)
    docs[#docs + 1] = doc
    ids[doc.custom_id] = (ids[doc.custom_id] or 0) + 1
  end
  return docs, ids
end

describe("llmrelay batch --budget", function()
  before_each(function()
    dir = mock.capture("mktemp -d /tmp/llmrelay-budget.XXXXXX"):match("%S+")
  end)
  after_each(cleanup)

  it("stops taking lines once spent, writes the answers paid for, exit 1; a resume with a larger budget finishes each line once", function()
    local m = mock.start { name = "a" }
    one_endpoint(m)
    write(path("in.jsonl"), input(10))
    -- $0.0525: two answers ($0.042) are under it, the third ($0.063) reaches it
    local rc, _, err = batch("--budget 0.0525 --concurrency 1")
    assert.are.equal(1, rc, err)
    assert.is_truthy(err:find("llmrelay: budget of $0.052500 spent ($0.063000); 7 of 10 lines left; "
      .. "re-run with a larger --budget to continue\n", 1, true), err)
    assert.is_truthy(err:find(", spent $0.063000 of $0.052500", 1, true), err) -- the job's spend on the progress line
    local docs = output()
    assert.are.equal(3, #docs)
    assert.are.equal(3, m:stats().requests)
    for _, d in ipairs(docs) do
      assert.are.equal(200, d.response.status_code)
      near(PER_LINE, d.cost, d.custom_id) -- each line records what its answer cost
    end

    -- the same budget again: the output says $0.063 is spent already; nothing is sent
    rc, _, err = batch("--budget 0.0525 --concurrency 1")
    assert.are.equal(1, rc, err)
    assert.is_truthy(err:find("budget $0.052500: $0.063000 spent by earlier runs", 1, true), err)
    assert.is_truthy(err:find("budget of $0.052500 spent ($0.063000); 7 of 10 lines left", 1, true), err)
    assert.are.equal(3, m:stats().requests)
    assert.are.equal(3, #output())

    -- $0.1155 allows three more ($0.126 after them)
    rc, _, err = batch("--budget 0.1155 --concurrency 1")
    assert.are.equal(1, rc, err)
    assert.is_truthy(err:find("budget of $0.115500 spent ($0.126000); 4 of 10 lines left", 1, true), err)
    assert.are.equal(6, #output())

    rc, _, err = batch("--budget 5")
    assert.are.equal(0, rc, err)
    assert.is_nil(err:find("budget of", 1, true))
    local all, ids = output()
    assert.are.equal(10, #all)
    for i = 1, 10 do assert.are.equal(1, ids[("req-%02d"):format(i)]) end
    assert.are.equal(10, m:stats().requests) -- every line sent exactly once over the four runs
  end)

  it("answers in flight when the budget is reached are written: every answer paid for is in the output", function()
    local m = mock.start { name = "a", latency_ms = 100 }
    one_endpoint(m)
    write(path("in.jsonl"), input(10))
    local rc, _, err = batch("--budget 0.0525 --concurrency 4")
    assert.are.equal(1, rc, err)
    local docs = output()
    local sent = m:stats().requests
    assert.are.equal(sent, #docs)          -- nothing paid for is missing, nothing unsent is written
    assert.is_true(sent >= 3 and sent < 10, tostring(sent))
    assert.is_truthy(err:find(("spent ($%.6f); %d of 10 lines left"):format(sent * PER_LINE, 10 - sent), 1, true), err)
  end)

  it("a model without a price where it may go is refused at start (exit 2): nothing sent, nothing written", function()
    local a, b = mock.start { name = "a" }, mock.start { name = "b" }
    write(path("conf.lua"), ([[
return { endpoints = {
  { name = "a", base_url = %q, models = { "m" }, prices = { m = { input = 1, output = 1 } } },
  { name = "b", base_url = %q, models = { "m", "other" }, prices = { other = { input = 1, output = 1 } } },
} }
]]):format(a.url, b.url))
    write(path("in.jsonl"), input(3))
    local rc, _, err = batch("--budget 1")
    assert.are.equal(2, rc, err)
    assert.is_truthy(err:find('llmrelay: --budget: requests for model "m" (3 lines) may go to endpoint "b", '
      .. 'which has no price for it: give endpoints[2].prices["m"] (or prices["*"]), or leave out --budget', 1, true), err)
    assert.is_nil(mock.read_file(path("out.jsonl")))
    rc, _, err = cli.run(dir, ("batch %s -o %s --endpoint %s --budget 1"):format(q(path("in.jsonl")),
      q(path("out.jsonl")), a.url))
    assert.are.equal(2, rc, err)
    assert.is_truthy(err:find("which has no price for it", 1, true), err)
    assert.are.equal(0, a:stats().requests + b:stats().requests)
    -- without --budget the same run goes ahead (and prices nothing it cannot)
    rc, _, err = batch("")
    assert.are.equal(0, rc, err)
  end)

  it("bad --budget values are usage errors (exit 2)", function()
    write(path("in.jsonl"), input(1))
    for _, v in ipairs { "0", "-1", "abc", "1e3", "$5", "5x", "", "2000000000" } do
      local rc, _, err = cli.run(dir, ("batch %s -o %s --endpoint http://127.0.0.1:9/v1 --budget %s"):format(
        q(path("in.jsonl")), q(path("out.jsonl")), q(v)))
      assert.are.equal(2, rc, v)
      assert.is_truthy(err:find("--budget must be a positive number of USD", 1, true), err)
    end
    local _, out = cli.run(dir, "batch --help")
    assert.is_truthy(out:find("--budget USD", 1, true))
    assert.is_truthy(out:find("--dry-run", 1, true))
  end)
end)

describe("the budget tracker and the price check", function()
  it("a result of kind budget was not sent: not written, and it stops the run", function()
    local b = budgets.new(nil, 0)
    assert.is_false(b:spent_out())
    assert.are.equal("sent", b:result { ok = true, cost = 0.5 })
    assert.are.equal("sent", b:result { ok = false, error = { kind = "server_error" } })
    assert.is_false(b:spent_out())
    assert.are.equal("unsent", b:result { ok = false, attempts = 0,
                                          error = { kind = "budget", message = "budget of $1 spent ($1.2 so far)" } })
    assert.is_true(b:spent_out())
    assert.are.equal("the client's budget refused requests (budget of $1 spent ($1.2 so far)); 4 of 9 lines left, "
      .. "not sent; raise the config's budget.usd to continue", b:message(4, 9))
    local c = budgets.new(1, 0.75)
    assert.is_false(c:spent_out())
    c:result { ok = true, cost = 0.25 }
    assert.is_true(c:spent_out())
    c:result { ok = true } -- no usage reported: $0, and said
    assert.are.equal("warning: 1 answers reported no usage: counted as $0 against --budget", c:warning())
  end)

  it("checks the fallbacks of the models in use too", function()
    -- as config.validate gives it: a map's logical names in models, the map itself in upstream
    local norm = { endpoints = { { name = "a", models = { "m" }, prices = { m = { input = 1, output = 1 } } },
                                 { name = "b", models = { "big", "small" },
                                   upstream = { big = "big-v2", small = "small-v1" },
                                   prices = { big = { input = 1, output = 1 } } } },
                   fallbacks = { big = { "small" } } }
    local pool = plans.pool(norm)
    local plan = { models = { big = { lines = 2 } } }
    assert.are.equal('--budget: model "small" (a fallback of "big", 2 lines) may go to endpoint "b", which has '
      .. 'no price for it: give endpoints[2].prices["small"] (or prices["*"]), or leave out --budget',
      budgets.check_prices(pool, plan))
    norm.endpoints[2].prices["*"] = { input = 1, output = 1 }
    assert.is_nil(budgets.check_prices(pool, plan))
    plan.models = { [""] = { lines = 1 } } -- no model: every endpoint serves it; a has no "*"
    assert.is_truthy(budgets.check_prices(pool, plan):find('requests naming no model (1 line) may go to endpoint "a"', 1, true))
  end)

  it("a resume adds up the cost the output's answers record", function()
    dir = mock.capture("mktemp -d /tmp/llmrelay-budget.XXXXXX"):match("%S+")
    write(path("out.jsonl"), table.concat({
      '{"id":"x1","custom_id":"a","response":{"status_code":200,"body":{}},"error":null,"cost":0.125}',
      '{"id":"x2","custom_id":"b","response":{"status_code":200,"body":{}},"error":null,"cost":0.25}',
      '{"id":"x3","custom_id":"c","response":{"status_code":200,"body":{}},"error":null}',
      '{"id":"x4","custom_id":"d","response":null,"error":{"code":"timeout","message":"t"}}',
      '{"id":"x5","custom_id":"a","response":{"status_code":200,"body":{}},"error":null,"cost":7}', -- a duplicate
    }, "\n") .. "\n")
    local ledger = assert(jsonl.scan_output(path("out.jsonl"), false, nil))
    near(0.375, ledger.spent)
    assert.are.equal(1, ledger.uncosted)
    mock.run("rm -rf " .. q(dir))
  end)
end)

describe("llmrelay batch --dry-run", function()
  local a, b
  before_each(function()
    dir = mock.capture("mktemp -d /tmp/llmrelay-dry.XXXXXX"):match("%S+")
    a, b = mock.start { name = "a" }, mock.start { name = "b" }
    -- a serves m1 and m3 (m1 priced, m3 not); b serves m1, m2 and m9 (m2 and m9 priced by "*");
    -- a request naming no model may go to either (a has no price for it)
    write(path("conf.lua"), ([[
return { endpoints = {
  { name = "a", base_url = %q, models = { "m1", "m3" }, prices = { m1 = { input = 2, output = 8 } } },
  { name = "b", base_url = %q, models = { "m1", "m2", "m9" },
    prices = { m1 = { input = 4, output = 16 }, ["*"] = { input = 1, output = 3 } } },
} }
]]):format(a.url, b.url))
  end)
  after_each(cleanup)

  local BODIES = {
    { "r1", '{"model":"m1","messages":[{"role":"user","content":"hello"}],"max_tokens":100}' },
    { "r2", '{"model":"m1","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":50,"max_tokens":10}' },
    { "r3", '{"model":"m2","messages":[{"role":"user","content":"a longer question for m2"}]}' },
    { nil, "{not json" },
    { "r5", '{"model":"m3","messages":[{"role":"user","content":"hi"}],"max_tokens":7}' },
    { "r6", '{"model":"m9","messages":[{"role":"user","content":"hi"}],"max_tokens":20}' },
    { "r7", '{"messages":[{"role":"user","content":"no model"}],"max_tokens":5}' },
  }

  local function write_input()
    local t = {}
    for i, l in ipairs(BODIES) do t[i] = l[1] and line(l[1], l[2]) or l[2] end
    write(path("in.jsonl"), table.concat(t, "\n") .. "\n")
  end

  local function tok(i) return math.floor(#BODIES[i][2] / 4) end

  -- the report's row for a model: lines, input tokens, output tokens, cost text
  local function row(out, model)
    local l, i, o, c = out:match("\n  " .. model:gsub("%p", "%%%0") .. " +(%d+) +(%d+) +(%d+)  ([^\n]*)")
    return { tonumber(l), tonumber(i), tonumber(o), c }
  end

  local function usd(x) return ("$%.6f"):format(x) end

  local function dry(args) return cli.run(dir, ("batch %s -c %s --dry-run %s"):format(q(path("in.jsonl")),
    q(path("conf.lua")), args or "")) end

  it("counts lines, tokens and cost per model by hand, sends nothing, exit 0", function()
    write_input()
    local rc, out, err = dry()
    assert.are.equal(0, rc, err)
    assert.are.equal("", err)
    local in_m1, out_m1 = tok(1) + tok(2), 100 + 50
    assert.are.same({ 2, in_m1, out_m1, usd((in_m1 * 2 + out_m1 * 8) / 1e6) .. ".." .. usd((in_m1 * 4 + out_m1 * 16) / 1e6) },
                    row(out, "m1"))
    assert.are.same({ 1, tok(3), 256, usd((tok(3) * 1 + 256 * 3) / 1e6) }, row(out, "m2")) -- 256: no max_tokens
    assert.are.same({ 1, tok(5), 7, "no price on a" }, row(out, "m3"))
    assert.are.same({ 1, tok(6), 20, usd((tok(6) + 20 * 3) / 1e6) }, row(out, "m9"))
    assert.are.same({ 1, tok(7), 5, usd((tok(7) + 5 * 3) / 1e6) .. " (no price on a)" }, row(out, "(none)"))
    local lo = (in_m1 * 2 + out_m1 * 8 + tok(3) + 256 * 3 + tok(6) + 60 + tok(7) + 15) / 1e6
    local hi = (in_m1 * 4 + out_m1 * 16 + tok(3) + 256 * 3 + tok(6) + 60 + tok(7) + 15) / 1e6
    local total_in = in_m1 + tok(3) + tok(5) + tok(6) + tok(7)
    assert.are.same({ 6, total_in, out_m1 + 256 + 7 + 20 + 5, usd(lo) .. ".." .. usd(hi) .. " (+1 line not priced)" },
                    row(out, "total"))
    assert.is_truthy(out:find("nothing sent; 6 requests would be sent", 1, true), out)
    assert.is_truthy(out:find("1 bad input line would be answered with invalid_request errors, not sent", 1, true), out)
    assert.is_truthy(out:find("else 256 (assumed for 1 line)", 1, true), out)
    assert.are.equal(0, a:stats().requests + b:stats().requests)
    assert.are.equal(0, a:stats().connections + b:stats().connections)
    assert.is_nil(mock.read_file(path("out.jsonl")))
    local rc2, out2 = dry("-o " .. q(path("out.jsonl"))) -- an output not there yet is not created
    assert.are.equal(0, rc2)
    assert.is_truthy(out2:find(path("out.jsonl") .. " answers no line yet", 1, true), out2)
    assert.are.same(row(out, "total"), row(out2, "total"))
    assert.is_nil(mock.read_file(path("out.jsonl")))
  end)

  it("leaves out what -o already answers, changes nothing there, and compares with --budget", function()
    write_input()
    local answered = table.concat({
      '{"id":"x1","custom_id":"r1","response":{"status_code":200,"body":{}},"error":null,"cost":0.25}',
      '{"id":"x2","custom_id":"r3","response":{"status_code":200,"body":{}},"error":null,"cost":0.125}',
      '{"id":"x3","custom_id":"r9"', -- torn: a real run would cut it; a dry run leaves the file alone
    }, "\n")
    write(path("out.jsonl"), answered)
    local rc, out, err = dry("-o " .. q(path("out.jsonl")) .. " --budget 1")
    assert.are.equal(0, rc, err)
    assert.are.equal(answered, mock.read_file(path("out.jsonl")))
    assert.is_truthy(out:find("resuming " .. path("out.jsonl") .. ": 2 lines already answered there, not counted", 1, true), out)
    assert.are.same({ 1, tok(2), 50, usd((tok(2) * 2 + 50 * 8) / 1e6) .. ".." .. usd((tok(2) * 4 + 50 * 16) / 1e6) },
                    row(out, "m1"))
    assert.is_nil(row(out, "m2")[1])
    assert.is_truthy(out:find("--budget $1.00: $0.375000 already spent (recorded in the output), $0.625000 left; "
      .. "this estimate fits", 1, true), out)
    assert.are.equal(0, a:stats().requests + b:stats().requests)
  end)

  it("with --shard K/N counts that shard's lines only: the shards add up to the whole", function()
    write_input()
    local sent, bad, took = 0, 0, 0
    for k = 1, 2 do
      local rc, out, err = dry("--shard " .. k .. "/2")
      assert.are.equal(0, rc, err)
      local s = tonumber(out:match("nothing sent; (%d+) request"))
      local t, all = out:match("shard " .. k .. "/2: (%d+) of the input's (%d+) lines")
      assert.are.equal(7, tonumber(all))
      sent, took = sent + s, took + tonumber(t)
      bad = bad + tonumber(out:match("(%d+) bad input line") or 0)
      assert.are.equal(s, row(out, "total")[1])
    end
    assert.are.same({ 6, 1, 7 }, { sent, bad, took })
    assert.are.equal(0, a:stats().requests + b:stats().requests)
  end)
end)
