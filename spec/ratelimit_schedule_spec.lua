-- A server whose limit changes mid-run (issue 13): with bare 429s (no hint at
-- all) the client must follow the limit down without hammering it and find it
-- again when it rises. One mock, --rps-schedule 0:40,3:15,6:40 (clocked from
-- its first request), 20 workers sending for 10 s, library defaults except
-- retry.max_attempts = 10.
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"
local now = require("llmrelay.core").now

local RAISED, LOW_END, RAISE_AT, RUN_S, WORKERS = 40, 6, 6, 10, 20

describe("a rate limit that changes on a schedule, bare 429s", function()
  after_each(function() mock.stop_all() end)

  it("is followed down with few 429s and found again when it rises", function()
    local m = mock.start { name = "sched", rps_schedule = "0:40,3:15,6:40", burst = 10,
                           rl_headers = "none" }
    local client = llmrelay.new { endpoints = { { base_url = m.url, name = "sched" } },
                                  concurrency = WORKERS, retry = { max_attempts = 10 } }
    local done, failed = {}, 0
    local t0 = now()
    llmrelay.run(function()
      for w = 1, WORKERS do
        llmrelay.spawn(function()
          local i = 0
          while now() - t0 < RUN_S do
            i = i + 1
            -- every request ends by RUN_S + 2 s, whatever the backoff says
            local resp = client:chat_completion(
              { model = "m", messages = { { role = "user", content = w .. "-" .. i } } },
              { deadline = math.max(0.1, t0 + RUN_S + 2 - now()) })
            if resp then
              done[#done + 1] = now() - t0
            else -- gave up (the wait it planned ends past the deadline): no busy loop
              failed = failed + 1
              llmrelay.sleep(0.1)
            end
          end
        end)
      end
    end)
    local st = m:stats()
    client:close()
    local low = st.rps_phases[2]
    local low_share = low.limited / math.max(1, low.passed + low.limited)
    -- the raised limit's throughput once the client had 2 s to find it
    local recovered = 0
    for _, t in ipairs(done) do
      if t >= RAISE_AT + 2 and t < RUN_S then recovered = recovered + 1 end
    end
    local rate = recovered / (RUN_S - RAISE_AT - 2)
    print(("ratelimit_schedule_spec: %d ok, %d failed; low phase (15 req/s, 3..%d s): %d passed,"
      .. " %d 429s (%.1f %%); last phase %d..%d s: %.1f req/s = %.2f of %d")
      :format(#done, failed, LOW_END, low.passed, low.limited, 100 * low_share,
              RAISE_AT + 2, RUN_S, rate, rate / RAISED, RAISED))
    assert.is_true(rate >= 0.7 * RAISED,
      ("last phase: %.1f req/s, want >= %.1f"):format(rate, 0.7 * RAISED))
    -- the lower limit is used (a client that stops sending has no 429s either)
    assert.is_true(low.passed >= 0.6 * 15 * 3,
      ("low phase: %d requests passed, want >= %d"):format(low.passed, 0.6 * 15 * 3))
    assert.is_true(low_share <= 0.15,
      ("low phase: %.1f %% of attempts answered 429, want <= 15 %%"):format(100 * low_share))
  end)
end)
