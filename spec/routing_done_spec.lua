-- Issue 16's Done-when as a spec, at full scale (it takes a few seconds): the pool of
-- spec/support/models_pool.lua (cheap 30 req/s burst 10, pricey 100 ms, broken always 500
-- and the only one serving `big`; each with its own upstream name for the model, refusing any
-- other; prices per endpoint; strategy = "cost"; fallbacks = { big = { "gpt-4.1-mini" } }).
-- bench/models.lua measures the same scenario and prints the figures. Also: README's example
-- pool, examples/model_groups.lua, is a config llmrelay.new accepts.
local llmrelay = require "llmrelay"
local pool = require "spec.support.models_pool"

local N, C = 600, 20

describe("issue 16 done when", function()
  local p, figures

  setup(function()
    p = pool.start()
  end)

  teardown(function()
    if p then p:stop() end
  end)

  -- the batch, run once for the cases that read its figures
  local function batch()
    figures = figures or p:batch(N, C)
    return figures
  end

  it("the pool's config is accepted: model maps, prices, strategy cost, fallbacks, budget", function()
    local c = llmrelay.new(p:config { budget = { usd = 1 } })
    c:close()
  end)

  it("at low load 10 of 10 sequential requests go to cheap", function()
    p:reset()
    local low = p:low_load(10, 0.1)
    assert.same({}, low.errors)
    assert.same({ "cheap", "cheap", "cheap", "cheap", "cheap", "cheap", "cheap", "cheap", "cheap", "cheap" },
                low.endpoints)
  end)

  it(N .. " requests for gpt-4.1 at concurrency " .. C .. " all succeed, each upstream seeing only its own names", function()
    local f = batch()
    assert.same({}, f.failed)
    assert.equal(N, f.ok)
    assert.equal(0, f.r404)           -- a mock answers 404 to any name but its own
    assert.equal(0, f.wrong_upstream) -- each answer echoes its endpoint's name for gpt-4.1
    assert.equal(0, f.wrong_logical)  -- and _llmrelay.model is the logical model
  end)

  it("the cost of every answer, of the batch and per endpoint is exact to 1e-9 USD, in status() and metrics()", function()
    local f = batch()
    assert.is_nil(pool.cost_mismatch(f))
    assert.is_true(f.hand.cheap > 0 and f.hand.pricey > 0)
  end)

  it("cheap carries at least 80% of its capacity over the run and the rest spills to pricey", function()
    local f = batch()
    assert.is_true(f.ratio >= 0.8, ("cheap: %d answers, %.3f of its capacity %.1f"):format(f.served.cheap, f.ratio,
                                                                                          f.capacity))
    assert.equal(N, (f.answers.cheap or 0) + (f.answers.pricey or 0))
    assert.is_nil(f.answers.broken)
  end)

  it("a request for big is answered by gpt-4.1-mini on pricey, and an event names the fallback", function()
    p:reset()
    local resp, err, events = p:fallback()
    assert(resp, err and tostring(err))
    assert.equal("gpt-4.1-mini", resp._llmrelay.model)
    assert.equal("pricey", resp._llmrelay.endpoint)
    assert.equal("openai/gpt-4.1-mini", resp.model)
    assert.is_true((p:stats().broken.status["500"] or 0) > 0)
    local seen
    for _, ev in ipairs(events) do
      if ev.type == "fallback" then seen = ev end
    end
    assert.is_table(seen, "no fallback event")
    assert.equal("big", seen.from)
    assert.equal("gpt-4.1-mini", seen.to)
    assert.is_string(seen.kind)
    assert.near(pool.hand_cost("pricey", "gpt-4.1-mini", resp.usage), resp._llmrelay.cost, 1e-9)
  end)

  it("a budget worth 9.5 answers lets about 10 through, then refuses with kind budget, sending nothing", function()
    local b = p:budget(9.5, 20) -- spent >= budget after the 10th answer, whatever the rounding of the sums
    assert.same({}, b.other)
    assert.is_true(b.ok >= 9 and b.ok <= 11, b.ok .. " answered")
    assert.equal(20 - b.ok, b.refused)
    assert.equal(0, b.late_ok)
    assert.equal(0, b.bad_refusal)
    assert.equal(0, b.refused_sent)
    assert.matches("^budget of %$%S+ spent %(%$%S+ so far%)$", b.message)
  end)

  it("examples/model_groups.lua is a config llmrelay.new accepts", function()
    local cfg = assert(loadfile("examples/model_groups.lua"))()
    assert.equal(3, #cfg.endpoints)
    for _, ep in ipairs(cfg.endpoints) do
      assert.is_string(ep.api_key_env)
      -- its keys come from the environment; the same config with keys in place
      ep.api_key_env, ep.api_key = nil, "sk-example-" .. ep.name .. "-0123456789"
      for logical in pairs(ep.models) do assert.is_table(ep.prices[logical], ep.name .. " prices " .. logical) end
    end
    llmrelay.new(cfg):close()
  end)
end)
