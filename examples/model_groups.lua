-- examples/model_groups.lua: one logical model, three providers at different prices.
-- GPT-4.1 costs $8 per 1M output tokens on the official API, $7.5 on one relay and $9 on
-- another; each names the model its own way and has its own rate limit. Requests name the
-- logical model ("gpt-4.1"); llmrelay sends each attempt with the serving endpoint's name,
-- prefers the cheapest endpoint that can take it now, prices every answer, falls back to
-- another model when one fails everywhere, and stops at a budget.
--
--   OPENAI_API_KEY=... RELAY_A_KEY=... RELAY_B_KEY=... \
--     bin/llmrelay batch requests.jsonl -o answers.jsonl -c examples/model_groups.lua
-- or from Lua:
--   local client = require("llmrelay").new(dofile("examples/model_groups.lua"))
--   local resp = client:chat_completion { model = "gpt-4.1", messages = { { role = "user", content = "Hi" } } }
--   -- resp._llmrelay.endpoint: who answered; .model: the logical model; .cost: USD
return {
  -- cheapest endpoint serving the model first; the next cheapest when it is throttled, open,
  -- at its concurrency cap or paced (before it answers 429, not after)
  strategy = "cost",
  endpoints = {
    { name = "relay-a", base_url = "https://relay-a.example.com/v1", api_key_env = "RELAY_A_KEY",
      rpm = 200,
      -- { [logical] = the name this provider uses }
      models = { ["gpt-4.1"] = "openai/gpt-4.1", ["gpt-4.1-mini"] = "openai/gpt-4.1-mini" },
      -- USD per 1M tokens, by logical model
      prices = { ["gpt-4.1"] = { input = 1.875, output = 7.5 },
                 ["gpt-4.1-mini"] = { input = 0.375, output = 1.5 } } },
    { name = "openai", base_url = "https://api.openai.com/v1", api_key_env = "OPENAI_API_KEY",
      rpm = 500,
      models = { ["gpt-4.1"] = "gpt-4.1", ["gpt-4.1-mini"] = "gpt-4.1-mini", ["gpt-4o"] = "gpt-4o" },
      prices = { ["gpt-4.1"] = { input = 2, output = 8, cached_input = 0.5 },
                 ["gpt-4.1-mini"] = { input = 0.4, output = 1.6, cached_input = 0.1 },
                 ["gpt-4o"] = { input = 2.5, output = 10, cached_input = 1.25 } } },
    { name = "relay-b", base_url = "https://relay-b.example.net/v1", api_key_env = "RELAY_B_KEY",
      rpm = 150,
      models = { ["gpt-4.1"] = "gpt-4.1-2025-04-14" },
      prices = { ["gpt-4.1"] = { input = 2.25, output = 9 } } },
  },
  -- gpt-4.1 failed for good on every endpoint serving it: try gpt-4.1-mini
  fallbacks = { ["gpt-4.1"] = { "gpt-4.1-mini" } },
  -- a 400 context_length_exceeded for gpt-4o (128k tokens): try gpt-4.1 (1M)
  context_window_fallbacks = { ["gpt-4o"] = { "gpt-4.1" } },
  -- once $50 is spent, new requests fail at once with kind "budget"
  budget = { usd = 50 },
}
