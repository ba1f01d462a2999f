-- What answers cost: endpoints[i].prices validated, resp._llmrelay.cost from the usage the
-- server returned, status()[i].cost, metrics, a batch's summary.cost and the CLI's spend.
-- Expected costs are worked out here by hand from the mock's usage rule (prompt_tokens =
-- request body bytes / 4, completion_tokens = answer content bytes / 4), to 1e-9 USD.
local llmrelay = require "llmrelay"
local config = require "llmrelay.config"
local cost = require "llmrelay.cost"
local mock = require "spec.support.mock"
local cli = require "spec.support.cli"

local EXACT = 1e-9

local function near(want, got, what)
  assert.is_number(got, what)
  assert.is_true(math.abs(want - got) < EXACT, ("%s: want %.12g, got %.12g"):format(what or "cost", want, got))
end

local function chat(model, content)
  return { model = model, messages = { { role = "user", content = content } } }
end

-- a serves m1 (priced, no "*") and m3 (no price); b serves m2 (priced) and m4 (b's "*").
local A_PRICES = { m1 = { input = 2, output = 8, cached_input = 0.5 } }
local B_PRICES = { m2 = { input = 7.5, output = 30 }, ["*"] = { input = 0.15, output = 0.6 } }

local function pool(a, b)
  return llmrelay.new { endpoints = {
    { name = "a", base_url = a.url, models = { "m1", "m3" }, prices = A_PRICES },
    { name = "b", base_url = b.url, models = { "m2", "m4" }, prices = B_PRICES },
  } }
end

local function refused(cfg, pattern)
  local ok, err = pcall(llmrelay.new, cfg)
  assert.is_false(ok)
  assert.is_truthy(tostring(err):find(pattern, 1, true), tostring(err))
end

describe("prices", function()
  local function with(prices)
    return { endpoints = { { base_url = "http://127.0.0.1:9", prices = prices } } }
  end

  it("are validated, every refusal naming the field", function()
    refused(with(42), "endpoints[1].prices must be a table of model = prices (got 42)")
    refused(with({}), "endpoints[1].prices must not be empty")
    refused(with({ { input = 1, output = 1 } }), "endpoints[1].prices must map model names to prices (got a number key)")
    refused(with({ [""] = { input = 1, output = 1 } }), "(got an empty key)")
    refused(with({ m = 3 }), 'endpoints[1].prices["m"] must be a table { input =, output =, cached_input = } (got 3)')
    refused(with({ m = { input = -1, output = 1 } }), 'endpoints[1].prices["m"].input must be a number >= 0 (USD per 1M tokens) (got -1)')
    refused(with({ m = { input = 1, output = "2" } }), 'endpoints[1].prices["m"].output must be a number >= 0 (USD per 1M tokens) (got string)')
    refused(with({ m = { input = 1, output = 0 / 0 } }), 'endpoints[1].prices["m"].output must be a number >= 0')
    refused(with({ m = { input = 1, output = 1, cached_input = math.huge } }), 'endpoints[1].prices["m"].cached_input must be')
    refused(with({ m = { input = 1 } }), 'endpoints[1].prices["m"].output is required (USD per 1M tokens)')
    refused(with({ m = { input = 1, output = 1, cached_inptu = 1 } }),
            "unknown field 'endpoints[1].prices[\"m\"].cached_inptu' (did you mean 'endpoints[1].prices[\"m\"].cached_input'?)")
  end)

  it("normalize: cached_input left out is input's; none at all is nil", function()
    local n = config.validate(with({ ["*"] = { input = 0, output = 0 }, m = { input = 1.25, output = 10, cached_input = 0.125 } }))
    assert.are.same({ ["*"] = { input = 0, output = 0, cached_input = 0 },
                      m = { input = 1.25, output = 10, cached_input = 0.125 } }, n.endpoints[1].prices)
    assert.is_nil(config.validate(with(nil)).endpoints[1].prices)
  end)
end)

describe("cost arithmetic", function()
  local p = { input = 2, output = 8, cached_input = 0.5 }

  it("charges cached prompt tokens at cached_input, the rest at input, completion at output", function()
    local t = cost.tokens('{"id":"x","usage":{"prompt_tokens":1000,"completion_tokens":100,'
      .. '"prompt_tokens_details":{"cached_tokens":400},"total_tokens":1100}}')
    assert.are.same({ input = 600, output = 100, cached_input = 400 }, t)
    near((600 * 2 + 400 * 0.5 + 100 * 8) / 1e6, cost.usd(p, t))
    -- cached_input not given: normalized to input's price, so cached tokens cost as much as the rest
    near((1000 * 2 + 100 * 8) / 1e6, cost.usd({ input = 2, output = 8, cached_input = 2 }, t))
  end)

  it("reads what servers send: no details, null details, more cached than prompt, no usage", function()
    assert.are.same({ input = 7, output = 3, cached_input = 0 },
                    cost.tokens('{"usage":{"prompt_tokens":7,"completion_tokens":3}}'))
    assert.are.same({ input = 7, output = 0, cached_input = 0 },
                    cost.tokens('{"usage":{"prompt_tokens":7,"prompt_tokens_details":null}}'))
    assert.are.same({ input = 0, output = 1, cached_input = 5 },
      cost.tokens('{"usage":{"prompt_tokens":5,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":9}}}'))
    assert.is_nil(cost.tokens('{"choices":[],"usage":null}'))
    assert.is_nil(cost.tokens('{"choices":[{"text":"\\"usage\\""}]}'))
    assert.is_nil(cost.tokens(""))
    assert.is_nil(cost.tokens(nil))
  end)

  it("takes a stream's last usage, a null usage being none", function()
    local u1 = '{"choices":[],"usage":{"prompt_tokens":1}}'
    local u2 = '{"choices":[],"usage":{"prompt_tokens":2}}'
    assert.are.equal(u2, cost.usage_event({ u1, '{"choices":[],"usage":null}', u2, '{"usage":null}' }, nil))
    assert.are.equal(u1, cost.usage_event({ '{"choices":[{"delta":{"content":"\\"usage\\""}}]}' }, u1))
    assert.are.equal(u1, cost.usage_event(nil, u1))
  end)

  it("a ledger charges each result once, and keeps a bounded number of models", function()
    local eps = config.validate({ endpoints = { { base_url = "http://127.0.0.1:9", prices = { ["*"] = p } } } }).endpoints
    local l = cost.ledger(eps)
    local body = '{"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}'
    l:remember(1, "m")
    local r = { id = 1, endpoint = 1 }
    local want = (6 * 2 + 4 * 0.5 + 2 * 8) / 1e6
    near(want, l:charge(r, body))
    near(want, l:charge(r, body)) -- the same result again: no second charge
    assert.are.equal("m", r.model)
    local st = { {} }
    l:fill_status(st)
    near(want, st[1].cost)
    for i = 1, cost.MAX_MODELS_KEPT + 5 do
      l:remember(100 + i, "model-" .. i)
      l:charge({ id = 100 + i, endpoint = 1 }, body)
    end
    local out = {}
    l:metrics(out, { "e" }, function(s) return s end)
    local text = table.concat(out)
    local other = text:match('llmrelay_cost_usd_total{endpoint="e",model="' .. cost.OTHER .. '"} (%S+)')
    near(6 * want, tonumber(other), "the models past the cap") -- m took one of the kept places
    l:fill_status(st)
    near((cost.MAX_MODELS_KEPT + 6) * want, st[1].cost)
  end)
end)

describe("resp._llmrelay.cost", function()
  after_each(function() mock.stop_all() end)

  it("prices each answer by its endpoint and model; status, metrics and batches add them up", function()
    local a, b = mock.start { name = "a" }, mock.start { name = "b" }
    local client = pool(a, b)
    -- body {"model":"m1","messages":[{"role":"user","content":"hi"}]}: 58 bytes, 14 prompt
    -- tokens; the answer "echo: hi": 8 bytes, 2 completion tokens; "price me": 64 bytes -> 16,
    -- "echo: price me" -> 3; the longer question: 95 bytes -> 23, its echo -> 11
    local long = "a somewhat longer question about tokens"
    local cases = {
      { chat("m1", "hi"), "a", 14, 2, (14 * 2 + 2 * 8) / 1e6 },
      { chat("m1", "price me"), "a", 16, 3, (16 * 2 + 3 * 8) / 1e6 },
      { chat("m2", "hi"), "b", 14, 2, (14 * 7.5 + 2 * 30) / 1e6 },
      { chat("m4", long), "b", 23, 11, (23 * 0.15 + 11 * 0.6) / 1e6 }, -- b's "*"
      { chat("m3", "hi"), "a", 14, 2, nil },                             -- a has no price for m3
    }
    for i, c in ipairs(cases) do
      local resp, err = client:chat_completion(c[1])
      assert.is_nil(err)
      assert.are.equal(c[2], resp._llmrelay.endpoint)
      assert.are.same({ c[3], c[4] }, { resp.usage.prompt_tokens, resp.usage.completion_tokens }, "request " .. i)
      if c[5] then near(c[5], resp._llmrelay.cost, "request " .. i) else assert.is_nil(resp._llmrelay.cost) end
    end
    local spent_a, spent_b = (44 + 56) / 1e6, (165 + 10.05) / 1e6
    local st = client:status()
    near(spent_a, st[1].cost, "status a")
    near(spent_b, st[2].cost, "status b")

    local text = client:metrics()
    local function sample(pattern)
      local v = text:match(pattern:gsub("[{}]", "%%%0") .. " (%S+)\n")
      assert.is_truthy(v, pattern .. " in\n" .. text)
      return tonumber(v)
    end
    assert.is_truthy(text:find("# TYPE llmrelay_cost_usd_total counter\n", 1, true))
    assert.is_truthy(text:find("# TYPE llmrelay_tokens_total counter\n", 1, true))
    near(spent_a, sample('llmrelay_cost_usd_total{endpoint="a",model="m1"}'))
    near(165 / 1e6, sample('llmrelay_cost_usd_total{endpoint="b",model="m2"}'))
    near(10.05 / 1e6, sample('llmrelay_cost_usd_total{endpoint="b",model="m4"}'))
    assert.is_nil(text:find('llmrelay_cost_usd_total{endpoint="a",model="m3"}', 1, true))
    local tokens = {
      { "a", "m1", 30, 5 }, { "a", "m3", 14, 2 }, { "b", "m2", 14, 2 }, { "b", "m4", 23, 11 },
    }
    for _, t in ipairs(tokens) do
      local at = ('llmrelay_tokens_total{endpoint="%s",model="%s",kind="%%s"}'):format(t[1], t[2])
      assert.are.equal(t[3], sample(at:format("input")))
      assert.are.equal(t[4], sample(at:format("output")))
      assert.are.equal(0, sample(at:format("cached_input")))
    end

    -- the same five as a batch: the summary adds up this batch's answers only
    local reqs = {}
    for i, c in ipairs(cases) do reqs[i] = c[1] end
    local progress
    local results, summary = client:batch(reqs, { concurrency = 3, on_progress = function(p) progress = p end })
    for i, c in ipairs(cases) do
      if c[5] then near(c[5], results[i].response._llmrelay.cost) else assert.is_nil(results[i].response._llmrelay.cost) end
    end
    near(spent_a + spent_b, summary.cost, "summary.cost")
    near(spent_a + spent_b, progress.cost, "progress.cost")
    near(spent_a, summary.endpoints.a.cost, "summary a")
    near(spent_b, summary.endpoints.b.cost, "summary b")
    near(spent_a, summary.spend.a.m1)
    near(165 / 1e6, summary.spend.b.m2)
    near(10.05 / 1e6, summary.spend.b.m4)
    assert.is_nil(summary.spend.a.m3)
    st = client:status()
    near(2 * spent_a, st[1].cost, "status a after the batch")
    near(2 * spent_b, st[2].cost, "status b after the batch")
    local _, err = client:chat_completion(chat("m5", "served by none"))
    assert.is_table(err)
    local b2 = mock.start { name = "b2", fail_rate = 1 }
    local failing = llmrelay.new { endpoints = { { name = "x", base_url = b2.url, prices = B_PRICES } },
                                   retry = { max_attempts = 1 } }
    _, err = failing:chat_completion(chat("m2", "hi"))
    assert.are.equal("server_error", err.kind)
    assert.are.equal(0, failing:status()[1].cost)
    -- a request's model is kept only until its result is in
    assert.are.same({}, client._ledger.model_of)
    assert.are.same({}, failing._ledger.model_of)
    failing:close()
    client:close()
  end)

  it("a request naming no model is priced by '*'; an endpoint without prices costs nothing known", function()
    local a = mock.start { name = "a" }
    local priced = llmrelay.new { endpoints = { { name = "a", base_url = a.url, prices = B_PRICES } } }
    -- {"messages":[{"role":"user","content":"hi"}]}: 45 bytes -> 11 prompt tokens
    local resp = assert(priced:chat_completion { messages = { { role = "user", content = "hi" } } })
    assert.are.same({ 11, 2 }, { resp.usage.prompt_tokens, resp.usage.completion_tokens })
    near((11 * 0.15 + 2 * 0.6) / 1e6, resp._llmrelay.cost)
    assert.is_truthy(priced:metrics():find('llmrelay_cost_usd_total{endpoint="a",model=""}', 1, true))
    local _, summary = priced:batch { chat("m9", "hi") }
    near((14 * 0.15 + 2 * 0.6) / 1e6, summary.spend.a.m9)

    local free = llmrelay.new { endpoints = { { name = "a", base_url = a.url } } }
    resp = assert(free:chat_completion(chat("m1", "hi")))
    assert.is_nil(resp._llmrelay.cost)
    assert.are.equal(0, free:status()[1].cost)
    local text = free:metrics()
    assert.is_nil(text:find("llmrelay_cost_usd_total{", 1, true))
    assert.is_truthy(text:find('llmrelay_tokens_total{endpoint="a",model="m1",kind="input"} 14\n', 1, true))
    _, summary = free:batch { chat("m1", "hi") }
    assert.is_nil(summary.cost)
    assert.is_nil(summary.endpoints.a.cost)
    priced:close()
    free:close()
  end)

  it("streams: from the usage chunk when the stream had one; a server that did not stream, from its body", function()
    local a, b = mock.start { name = "a" }, mock.start { name = "b", ignore_stream = 1 }
    local client = pool(a, b)
    -- {"model":"m2","messages":[...hi],"stream":true,"stream_options":{"include_usage":true}}:
    -- 112 bytes -> 28 prompt tokens; "echo: hi" -> 2
    local text, resp = client:chat("hi", { model = "m2", stream = true })
    assert.are.equal("echo: hi", text)
    assert.are.same({ 28, 2 }, { resp.usage.prompt_tokens, resp.usage.completion_tokens })
    near((28 * 7.5 + 2 * 30) / 1e6, resp._llmrelay.cost, "b ignored stream")

    local st = client:stream(chat("m1", "hi"))
    local usage
    for chunk, err in st do
      assert.is_nil(err)
      if chunk.usage ~= nil and chunk.usage ~= require("cjson").null then usage = chunk.usage end
    end
    assert.are.same({ 28, 2 }, { usage.prompt_tokens, usage.completion_tokens })
    near((28 * 2 + 2 * 8) / 1e6, st._llmrelay.cost, "a's usage chunk")

    -- no usage chunk asked for: no cost known, nothing charged
    -- ({"model":"m1",...,"stream":true,"stream_options":{"include_usage":false}})
    local req = chat("m1", "hi")
    req.stream_options = { include_usage = false }
    st = client:stream(req)
    for _, err in st do assert.is_nil(err) end
    assert.are.equal("a", st._llmrelay.endpoint)
    assert.is_nil(st._llmrelay.cost)
    local s = client:status()
    near((28 * 2 + 2 * 8) / 1e6, s[1].cost, "status a")
    near((28 * 7.5 + 2 * 30) / 1e6, s[2].cost, "status b")
    client:close()
  end)
end)

describe("llmrelay batch (CLI) spend", function()
  local dir
  before_each(function()
    dir = mock.capture("mktemp -d"):gsub("%s+$", "")
  end)
  after_each(function()
    cli.stop_all()
    mock.stop_all()
    mock.run("rm -rf " .. mock.quote(dir))
  end)

  it("shows the spend so far on the progress line and per endpoint and model in the summary", function()
    local a, b = mock.start { name = "a" }, mock.start { name = "b" }
    local f = assert(io.open(dir .. "/conf.lua", "wb"))
    f:write(([[
return { endpoints = {
  { name = "a", base_url = %q, models = { "m1", "m3" }, prices = { m1 = { input = 2, output = 8 } } },
  { name = "b", base_url = %q, models = { "m2", "m4" },
    prices = { m2 = { input = 7.5, output = 30 }, ["*"] = { input = 0.15, output = 0.6 } } },
} }
]]):format(a.url, b.url))
    f:close()
    f = assert(io.open(dir .. "/in.jsonl", "wb"))
    local lines = { { "r1", "m1", "hi" }, { "r2", "m1", "price me" }, { "r3", "m2", "hi" }, { "r4", "m3", "hi" } }
    for _, l in ipairs(lines) do
      -- the body is sent as written: {"model":"m1","messages":[{"role":"user","content":"hi"}]} is 58 bytes
      f:write(('{"custom_id":"%s","method":"POST","url":"/v1/chat/completions","body":'
        .. '{"model":"%s","messages":[{"role":"user","content":"%s"}]}}\n'):format(l[1], l[2], l[3]))
    end
    f:close()
    local rc, _, err = cli.run(dir, ("batch %s/in.jsonl -o %s/out.jsonl -c %s/conf.lua"):format(dir, dir, dir))
    assert.are.equal(0, rc, err)
    -- a: (14*2 + 2*8) + (16*2 + 3*8) = 100 micro-USD; b: 14*7.5 + 2*30 = 165; m3: no price
    assert.is_truthy(err:find("spent $0.000265 this run (USD, from the endpoints' prices)", 1, true), err)
    assert.is_truthy(err:find(", spent $0.000265", 1, true), err) -- the last progress line
    assert.is_truthy(err:find("\n  endpoint model  spent\n  a        m1     $0.000100\n  b        m2     $0.000165\n",
                              1, true), err)
    assert.is_nil(err:find("m3", 1, true))
  end)

  it("prints no spend when no endpoint has prices", function()
    local a = mock.start { name = "a" }
    local f = assert(io.open(dir .. "/in.jsonl", "wb"))
    f:write('{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"m1","messages":[{"role":"user","content":"hi"}]}}\n')
    f:close()
    local rc, _, err = cli.run(dir, ("batch %s/in.jsonl -o %s/out.jsonl --endpoint %s"):format(dir, dir, a.url))
    assert.are.equal(0, rc, err)
    assert.is_nil(err:find("spent", 1, true), err)
  end)
end)

describe("the gateway's spend (nginx)", function()
  local nginx = require "spec.support.nginx"
  if not nginx.required(it, "cost gateway spec") then return end
  after_each(function()
    nginx.stop_all()
    mock.stop_all()
  end)

  it("charges answers and streams it relays: /health's cost and /metrics", function()
    local a = mock.start { name = "a" }
    local n = nginx.start {
      shared_dicts = { llmrelay = "1m" },
      init = ([[
        client = require("llmrelay").new{ name = "cost", shared_dict = "llmrelay",
          endpoints = { { name = "a", base_url = %q, prices = { m1 = { input = 2, output = 8 } } } } }
      ]]):format(a.url),
      http = [[
        server {
          listen 127.0.0.1:$PORT;
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(client, { anonymous = true })
          } }
        }
      ]],
    }
    local body = '{"model":"m1","messages":[{"role":"user","content":"hi"}]}' -- 58 bytes: 14 tokens
    local status = nginx.curl(n.base .. "/v1/chat/completions", { method = "POST", body = body,
                                                                    headers = { "Content-Type: application/json" } })
    assert.are.equal(200, status)
    -- the same with "stream":true,"stream_options":{"include_usage":true}: 112 bytes, 28 tokens
    local streamed = body:sub(1, -2) .. ',"stream":true,"stream_options":{"include_usage":true}}'
    local sse
    status, sse = nginx.curl(n.base .. "/v1/chat/completions", { method = "POST", body = streamed,
                                                                 headers = { "Content-Type: application/json" } })
    assert.are.equal(200, status)
    assert.is_truthy(sse:find('"prompt_tokens":28,"completion_tokens":2', 1, true), sse)
    local want = ((14 * 2 + 2 * 8) + (28 * 2 + 2 * 8)) / 1e6
    local _, health = nginx.curl(n.base .. "/health")
    near(want, require("cjson").decode(health).endpoints[1].cost, "/health")
    local _, text = nginx.curl(n.base .. "/metrics")
    near(want, tonumber(text:match('llmrelay_cost_usd_total{endpoint="a",model="m1"} (%S+)\n')), "/metrics")
    assert.is_truthy(text:find('llmrelay_tokens_total{endpoint="a",model="m1",kind="input"} 42\n', 1, true), text)
    assert.is_truthy(text:find('llmrelay_tokens_total{endpoint="a",model="m1",kind="output"} 4\n', 1, true), text)
  end)
end)
