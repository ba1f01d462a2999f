-- bench/models.lua: issue 16's Done-when, measured on the pool of spec/support/models_pool.lua:
-- cheap (30 req/s, burst 10, x-ratelimit-* headers), pricey (healthy, 100 ms per answer) and
-- broken (always 500, the only one serving `big`), each with its own upstream name for the
-- model, its prices, strategy = "cost", fallbacks = { big = { "gpt-4.1-mini" } }.
--   lua5.4 bench/models.lua            (./bench/run models)
-- MODELS_N requests (600) for gpt-4.1 through client:batch at concurrency MODELS_C (20). Bars:
--   all:      N/N answered
--   names:    every mock saw only its own names (no 404 in its /stats; every answer echoes its
--             endpoint's name for gpt-4.1, and _llmrelay.model is the logical gpt-4.1)
--   cost:     every answer's _llmrelay.cost, summary.cost, summary.endpoints[name].cost,
--             status()[i].cost and metrics()' llmrelay_cost_usd_total equal (to 1e-9 USD) the
--             hand computation from the usage each answer carried and the endpoint's prices
--   capacity: cheap answers >= 80 % of its capacity over the run (capacity = burst + rate x
--             the batch's elapsed time) and the rest goes to pricey
--   low load: 10 of 10 sequential requests (0.1 s apart) go to cheap
--   fallback: a request for `big` is answered by gpt-4.1-mini on pricey, a fallback event said so
--   budget:   budget = { usd = 9.5 answers' worth } lets about 10 (9 to 11) through, then every
--             request fails at once with kind "budget", sending nothing
package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local mock = require "spec.support.mock"
local pool = require "spec.support.models_pool"

local N = tonumber(os.getenv("MODELS_N") or 600)
local C = tonumber(os.getenv("MODELS_C") or 20)
-- 9.5 answers' worth: spent >= budget after the 10th answer, whatever the rounding of the sums
local BUDGET_ANSWERS, BUDGET_TRIES = 9.5, 20

local results = {} -- { name, state ("PASS" "FAIL"), why }
local function bar(name, pass, why)
  results[#results + 1] = { name, pass and "PASS" or "FAIL", why }
end

local function kinds(t)
  local parts = {}
  for k, n in pairs(t) do parts[#parts + 1] = ("%s %d"):format(k, n) end
  table.sort(parts)
  return #parts > 0 and (" (failed: " .. table.concat(parts, ", ") .. ")") or ""
end

local function bench()
  local p = pool.start()

  -- low load first, on fresh mocks
  p:reset()
  local low = p:low_load(10, 0.1)
  local to_cheap = 0
  for _, name in ipairs(low.endpoints) do if name == "cheap" then to_cheap = to_cheap + 1 end end
  print(("low load: %d of 10 sequential requests went to cheap (%s)%s")
    :format(to_cheap, table.concat(low.endpoints, " "), #low.errors > 0 and (", " .. #low.errors .. " failed") or ""))
  bar("low load", to_cheap == 10, to_cheap .. " of 10 to cheap")

  -- the batch
  local f = p:batch(N, C)
  print(("batch: %d/%d ok%s in %.2f s at concurrency %d (%.1f req/s); answers: cheap %d, pricey %d, broken %d")
    :format(f.ok, N, kinds(f.failed), f.elapsed, C, f.ok / f.elapsed, f.answers.cheap or 0, f.answers.pricey or 0,
            f.answers.broken or 0))
  print(("  cheap: %d answers = %.3f of its capacity (%d + %d req/s x %.2f s = %.1f); 429s over the mocks %d")
    :format(f.served.cheap, f.ratio, pool.BURST, pool.RATE, f.elapsed, f.capacity, f.r429))
  print(("  names: 404s %d, answers echoing another name %d, answers whose _llmrelay.model is not gpt-4.1 %d")
    :format(f.r404, f.wrong_upstream, f.wrong_logical))
  local mismatch = pool.cost_mismatch(f)
  print(("  cost: by hand $%.9f (cheap $%.9f, pricey $%.9f); summary.cost $%s; largest error of an answer %.3g;"
    .. " status/metrics/summary per endpoint %s")
    :format(f.hand_total, f.hand.cheap or 0, f.hand.pricey or 0, tostring(f.summary_cost), f.cost_err,
            mismatch or "exact"))
  bar("all", f.ok == N, f.ok .. "/" .. N)
  bar("names", f.r404 == 0 and f.wrong_upstream == 0 and f.wrong_logical == 0,
      ("404s %d, wrong upstream %d, wrong logical %d"):format(f.r404, f.wrong_upstream, f.wrong_logical))
  bar("cost", mismatch == nil, mismatch or "exact to 1e-9")
  local spill = (f.answers.cheap or 0) + (f.answers.pricey or 0) == f.ok
  bar("capacity", f.ratio >= 0.8 and spill, ("%.3f of capacity, the rest to pricey: %s"):format(f.ratio, tostring(spill)))

  -- a request for big
  do
    p:reset()
    local resp, err, events, seconds = p:fallback()
    local seen
    for _, ev in ipairs(events) do
      if ev.type == "fallback" and ev.from == "big" and ev.to == "gpt-4.1-mini" then seen = ev end
    end
    local st = p:stats()
    local info = resp and resp._llmrelay or {}
    local hand = resp and pool.hand_cost("pricey", "gpt-4.1-mini", resp.usage)
    print(("fallback: big -> %s on %s (upstream %s) in %.2f s; broken answered %d x 500; fallback event %s;"
      .. " cost $%s (by hand $%s)%s")
      :format(tostring(info.model), tostring(info.endpoint), tostring(resp and resp.model), seconds,
              st.broken.status["500"] or 0, seen and ("kind " .. tostring(seen.kind)) or "none",
              tostring(info.cost), tostring(hand), err and (": " .. tostring(err)) or ""))
    bar("fallback", resp ~= nil and info.model == "gpt-4.1-mini" and info.endpoint == "pricey"
          and resp.model == "openai/gpt-4.1-mini" and seen ~= nil and (st.broken.status["500"] or 0) > 0
          and info.cost ~= nil and hand ~= nil and math.abs(info.cost - hand) <= 1e-9,
        err and tostring(err) or "")
  end

  -- the budget
  do
    local b = p:budget(BUDGET_ANSWERS, BUDGET_TRIES)
    print(("budget: $%.9f = %g answers of $%.9f: %d answered, %d refused with kind budget%s; refusals that sent"
      .. " something %d, with attempts ~= 0 %d, answers after a refusal %d; message %q")
      :format(b.budget, BUDGET_ANSWERS, b.unit, b.ok, b.refused,
              #b.other > 0 and (", other failures: " .. table.concat(b.other, " ")) or "", b.refused_sent,
              b.bad_refusal, b.late_ok, tostring(b.message)))
    bar("budget", b.ok >= 9 and b.ok <= 11 and b.refused == BUDGET_TRIES - b.ok
          and b.refused_sent == 0 and b.bad_refusal == 0 and b.late_ok == 0 and #b.other == 0,
        ("%d through"):format(b.ok))
  end
  p:stop()
end

local okb, err = pcall(bench)
mock.stop_all()
local pass = okb
if not okb then io.stderr:write("models: " .. tostring(err) .. "\n") end
for _, r in ipairs(results) do
  print(("  bar %-9s %s%s"):format(r[1], r[2], r[3] and r[3] ~= "" and (": " .. r[3]) or ""))
  if r[2] ~= "PASS" then pass = false end
end
print(("models: %s"):format(pass and "PASS" or "FAIL"))
os.exit(pass and 0 or 1)
