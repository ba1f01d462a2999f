local config = require("llmrelay.config")
local errors = require("llmrelay.errors")

-- Distinctive, so a leak into any message is found by a plain search.
local FAKE_KEY = "sk-test-Qx7Zp3-never-print-me-4411"

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = deep_copy(x) end
  return t
end

-- A valid config; `mutate` edits a fresh copy before validation.
local function cfg_with(mutate)
  local cfg = {
    endpoints = {
      { name = "primary", base_url = "https://api.example.com/v1", api_key = FAKE_KEY },
      { name = "backup", base_url = "https://relay.example.net/v1" },
    },
  }
  if mutate then mutate(cfg) end
  return cfg
end

local function error_of(cfg)
  local ok, msg = pcall(config.validate, cfg)
  assert.is_false(ok, "expected validate to fail")
  assert.is_string(msg)
  assert.is_nil(msg:find(FAKE_KEY, 1, true), "api key leaked into: " .. msg)
  assert.truthy(msg:find("llmrelay.new: ", 1, true), "missing prefix: " .. msg)
  return msg
end

local function expect_error(mutate, fragment)
  local msg = error_of(cfg_with(mutate))
  assert.truthy(msg:find(fragment, 1, true), ("expected %q in: %s"):format(fragment, msg))
  return msg
end

local function first_set_env(names)
  for _, n in ipairs(names) do
    local v = os.getenv(n)
    if v and v ~= "" then return n, v end
  end
end

describe("config.validate", function()
  it("fills every default", function()
    local n = config.validate({ endpoints = { { base_url = "http://localhost:8080" } } })
    local ep = n.endpoints[1]
    assert.same({
      name = "localhost:8080", base_url = "http://localhost:8080",
      url = "http://localhost:8080/chat/completions", weight = 1, rpm = 0, tpm = 0,
      max_concurrency = 0, models = {}, headers = {}, path = "/chat/completions", auth = "bearer",
      paths = { embeddings = "/embeddings", responses = "/responses", completions = "/completions" },
      urls = { chat = "http://localhost:8080/chat/completions", embeddings = "http://localhost:8080/embeddings",
               responses = "http://localhost:8080/responses", completions = "http://localhost:8080/completions" },
    }, ep)
    assert.is_nil(ep.api_key)
    assert.equal("weighted", n.strategy)
    assert.same({ max_attempts = 5, base_delay = 0.5, max_delay = 30, max_retry_after = 120,
                  budget = 0.2 }, n.retry)
    assert.same({ failure_threshold = 5, failure_rate = 0.5, min_calls = 20, window = 30,
                  cooldown = 60, max_cooldown = 300, half_open_probes = 1 }, n.breaker)
    assert.same({ connect = 5, first_byte = 60, idle = 30, total = 600 }, n.timeout)
    assert.same({ insecure = false }, n.tls)
    assert.equal(64 * 1024 * 1024, n.max_response_bytes)
    assert.equal(64, n.concurrency)
    assert.is_nil(n.on_event)
    assert.equal("llmrelay/0.1", n.user_agent)
  end)

  it("keeps every given value", function()
    local on_event = function() end
    local ca = os.tmpname()
    local n = config.validate({
      endpoints = { { name = "primary", base_url = "https://api.example.com/v1", api_key = FAKE_KEY,
                      weight = 3, rpm = 500, tpm = 200000, max_concurrency = 64,
                      models = { "gpt-4o-mini", "gpt-4o" }, headers = { ["X-Team"] = "data" } } },
      strategy = "priority",
      retry = { max_attempts = 2, base_delay = 0.25, max_delay = 4, max_retry_after = 0, budget = 1.5 },
      breaker = { failure_threshold = 3, failure_rate = 1, min_calls = 1, window = 10, cooldown = 5,
                  max_cooldown = 5, half_open_probes = 2 },
      timeout = { connect = 0.25, first_byte = 1, idle = 2, total = 3 },
      tls = { ca_file = ca, insecure = true },
      max_response_bytes = 1024, concurrency = 1, on_event = on_event, user_agent = "me/1",
    })
    os.remove(ca)
    local ep = n.endpoints[1]
    assert.equal(FAKE_KEY, ep.api_key)
    assert.equal(3, ep.weight)
    assert.equal(500, ep.rpm)
    assert.equal(200000, ep.tpm)
    assert.equal(64, ep.max_concurrency)
    assert.same({ "gpt-4o-mini", "gpt-4o" }, ep.models)
    assert.same({ { "X-Team", "data" } }, ep.headers)
    assert.equal("priority", n.strategy)
    assert.same({ max_attempts = 2, base_delay = 0.25, max_delay = 4, max_retry_after = 0,
                  budget = 1.5 }, n.retry)
    assert.same({ failure_threshold = 3, failure_rate = 1, min_calls = 1, window = 10,
                  cooldown = 5, max_cooldown = 5, half_open_probes = 2 }, n.breaker)
    assert.same({ connect = 0.25, first_byte = 1, idle = 2, total = 3 }, n.timeout)
    assert.same({ ca_file = ca, insecure = true }, n.tls)
    assert.equal(1024, n.max_response_bytes)
    assert.equal(1, n.concurrency)
    assert.equal(on_event, n.on_event)
    assert.equal("me/1", n.user_agent)
  end)

  it("accepts every strategy", function()
    for _, s in ipairs({ "weighted", "priority", "round_robin" }) do
      assert.equal(s, config.validate(cfg_with(function(c) c.strategy = s end)).strategy)
    end
  end)

  it("strips trailing slashes and builds the request url", function()
    local n = config.validate({ endpoints = {
      { base_url = "https://api.example.com/v1///" },
      { base_url = "HTTP://Example.org/" },
      { base_url = "http://[::1]:8080/openai/v1/" },
    } })
    assert.equal("https://api.example.com/v1", n.endpoints[1].base_url)
    assert.equal("https://api.example.com/v1/chat/completions", n.endpoints[1].url)
    assert.equal("http://Example.org", n.endpoints[2].base_url)
    assert.equal("http://Example.org/chat/completions", n.endpoints[2].url)
    assert.equal("http://[::1]:8080/openai/v1/chat/completions", n.endpoints[3].url)
  end)

  it("names endpoints by host[:port], made unique", function()
    local n = config.validate({ endpoints = {
      { base_url = "https://api.example.com/v1" },
      { base_url = "https://api.example.com/v2" },
      { base_url = "https://api.example.com/v3" },
      { base_url = "http://localhost:11434/v1" },
      { base_url = "http://other.example.com", name = "api.example.com" },
    } })
    local names = {}
    for i, ep in ipairs(n.endpoints) do names[i] = ep.name end
    -- An explicit name wins; defaults step around it.
    assert.same({ "api.example.com#2", "api.example.com#3", "api.example.com#4",
                  "localhost:11434", "api.example.com" }, names)
  end)

  it("rejects explicit duplicate names, naming both indexes", function()
    local msg = expect_error(function(c)
      c.endpoints[3] = { name = "primary", base_url = "http://x" }
    end, "endpoints[3].name")
    assert.truthy(msg:find("endpoints[1]", 1, true), msg)
  end)

  it("reads api_key_env at validate time", function()
    local var, value = first_set_env({ "PATH", "HOME" }) -- long enough to be a credential
    assert.truthy(var, "no usable environment variable")
    local n = config.validate(cfg_with(function(c) c.endpoints[2].api_key_env = var end))
    assert.equal(value, n.endpoints[2].api_key)
    local msg = expect_error(function(c)
      c.endpoints[2].api_key_env = "LLMRELAY_SURELY_UNSET_4411"
    end, "endpoints[2].api_key_env: environment variable LLMRELAY_SURELY_UNSET_4411 is not set or empty")
    assert.is_nil(msg:find(value, 1, true))
  end)

  it("normalizes headers into an array sorted by lowercase name", function()
    local n = config.validate(cfg_with(function(c)
      c.endpoints[1].headers = { ["X-Team"] = "data", accept = "application/json",
                                 ["X-Retry-Budget"] = 5, ["x-a"] = "tab\there" }
    end))
    assert.same({ { "accept", "application/json" }, { "x-a", "tab\there" },
                  { "X-Retry-Budget", "5" }, { "X-Team", "data" } }, n.endpoints[1].headers)
  end)

  it("derives the cap from a large base_delay or cooldown", function()
    local n = config.validate(cfg_with(function(c)
      c.retry = { base_delay = 60 }
      c.breaker = { cooldown = 600 }
    end))
    assert.equal(60, n.retry.max_delay)
    assert.equal(600, n.breaker.max_cooldown)
  end)

  it("normalizes budget = false to -1", function()
    assert.equal(-1, config.validate(cfg_with(function(c) c.retry = { budget = false } end)).retry.budget)
    assert.equal(0, config.validate(cfg_with(function(c) c.retry = { budget = 0 } end)).retry.budget)
  end)

  it("does not modify the user's table nor share tables with it", function()
    local cfg = cfg_with(function(c)
      c.endpoints[1].models = { "m1" }
      c.endpoints[1].headers = { ["X-Team"] = "data", ["X-N"] = 5 }
      c.endpoints[2].base_url = "https://relay.example.net/v1/"
      c.retry = { base_delay = 60 }
      c.breaker = { cooldown = 600 }
      c.timeout = { connect = 1 }
    end)
    local before = deep_copy(cfg)
    local n = config.validate(cfg)
    assert.same(before, cfg)
    assert.are_not.equal(cfg.endpoints[1].models, n.endpoints[1].models)
    assert.are_not.equal(cfg.endpoints, n.endpoints)
    assert.are_not.equal(cfg.retry, n.retry)
    n.endpoints[1].models[1] = "changed"
    assert.equal("m1", cfg.endpoints[1].models[1])
  end)

  it("lists the api keys as secrets", function()
    local var, value = first_set_env({ "PATH", "HOME" }) -- long enough to be a credential
    local n = config.validate(cfg_with(function(c)
      c.endpoints[2].api_key_env = var
      c.endpoints[3] = { base_url = "http://x", api_key = FAKE_KEY }
      c.endpoints[4] = { base_url = "http://y" }
    end))
    assert.same({ FAKE_KEY, value }, config.secrets(n))
  end)

  it("reports errors at the caller of the function that validates", function()
    local function new(cfg)
      local c = config.validate(cfg)
      return c
    end
    local ok, msg = pcall(function() new({ endpoints = 5 }) end); local line = debug.getinfo(1, "l").currentline
    assert.is_false(ok)
    assert.truthy(msg:find("config_spec.lua:" .. line .. ": llmrelay.new: endpoints", 1, true), msg)
  end)

  describe("unknown fields", function()
    local cases = {
      { function(c) c.retyr = {} end, "unknown field 'retyr' (did you mean 'retry'?)" },
      { function(c) c.Endpoint = {} end, "unknown field 'Endpoint' (did you mean 'endpoints'?)" },
      { function(c) c.endpoints[2].api_ky = "x" end,
        "unknown field 'endpoints[2].api_ky' (did you mean 'endpoints[2].api_key'?)" },
      { function(c) c.endpoints[1].wieght = 2 end, "(did you mean 'endpoints[1].weight'?)" },
      { function(c) c.retry = { max_attemps = 3 } end,
        "unknown field 'retry.max_attemps' (did you mean 'retry.max_attempts'?)" },
      { function(c) c.breaker = { cooldwn = 3 } end, "(did you mean 'breaker.cooldown'?)" },
      { function(c) c.timeout = { conect = 3 } end, "(did you mean 'timeout.connect'?)" },
      { function(c) c.tls = { insecur = true } end, "(did you mean 'tls.insecure'?)" },
      { function(c) c.retry = { 3 } end, "unknown field retry[1]" },
    }
    for i, case in ipairs(cases) do
      it("case " .. i .. ": " .. case[2], function() expect_error(case[1], case[2]) end)
    end

    it("gives no suggestion when nothing is close", function()
      local msg = expect_error(function(c) c.zzzzzzzz = 1 end, "unknown field 'zzzzzzzz'")
      assert.is_nil(msg:find("did you mean", 1, true))
    end)
  end)

  describe("rejects", function()
    local big = {}
    for i = 1, 65 do big[i] = { base_url = "http://h" .. i } end
    local nan, inf = 0 / 0, math.huge
    local cases = {
      -- top level
      { function(c) c.endpoints = nil end, "endpoints is required" },
      { function(c) c.endpoints = "x" end, "endpoints must be an array of tables (got string)" },
      { function(c) c.endpoints = {} end, "endpoints must contain at least one endpoint" },
      { function(c) c.endpoints = big end, "endpoints must contain at most 64 endpoints (got 65)" },
      { function(c) c.endpoints[4] = { base_url = "http://x" } end, "endpoints must be an array without holes" },
      { function(c) c.endpoints.extra = { base_url = "http://x" } end, "endpoints must be an array" },
      { function(c) c.endpoints[2] = "http://x" end, "endpoints[2] must be a table (got string)" },
      -- base_url
      { function(c) c.endpoints[2].base_url = nil end, "endpoints[2].base_url must be a non-empty string (got nil)" },
      { function(c) c.endpoints[2].base_url = 5 end, "endpoints[2].base_url must be a non-empty string (got 5)" },
      { function(c) c.endpoints[2].base_url = "ftp://x" end, "endpoints[2].base_url must start with http:// or https://" },
      { function(c) c.endpoints[2].base_url = "api.example.com" end, "endpoints[2].base_url must start with" },
      { function(c) c.endpoints[2].base_url = "https://" end, "endpoints[2].base_url must have a valid host" },
      { function(c) c.endpoints[2].base_url = "https:///v1" end, "endpoints[2].base_url must have a valid host" },
      { function(c) c.endpoints[2].base_url = "https://x:0" end, "endpoints[2].base_url must have a valid host[:port]" },
      { function(c) c.endpoints[2].base_url = "https://x:65536" end, "endpoints[2].base_url must have a valid host[:port]" },
      { function(c) c.endpoints[2].base_url = "https://a b" end, "endpoints[2].base_url must not contain whitespace" },
      { function(c) c.endpoints[2].base_url = "https://x\r\nHost: y" end, "endpoints[2].base_url must not contain" },
      { function(c) c.endpoints[2].base_url = "https://x/v1?key=" .. FAKE_KEY end, "endpoints[2].base_url must not contain a query" },
      { function(c) c.endpoints[2].base_url = "https://me:" .. FAKE_KEY .. "@x" end, "endpoints[2].base_url must not contain credentials" },
      -- name
      { function(c) c.endpoints[2].name = "" end, "endpoints[2].name must be a non-empty string" },
      { function(c) c.endpoints[2].name = 7 end, "endpoints[2].name must be a non-empty string (got 7)" },
      { function(c) c.endpoints[2].name = "has space" end, "endpoints[2].name must be 1..64 characters" },
      { function(c) c.endpoints[2].name = "a#2" end, "endpoints[2].name must be 1..64 characters" },
      { function(c) c.endpoints[2].name = ("n"):rep(65) end, "endpoints[2].name must be 1..64 characters" },
      -- api keys
      { function(c) c.endpoints[1].api_key = "" end, "endpoints[1].api_key must be a non-empty string" },
      { function(c) c.endpoints[1].api_key = 12345 end, "endpoints[1].api_key must be a non-empty string" },
      { function(c) c.endpoints[1].api_key = FAKE_KEY .. "\n" end, "endpoints[1].api_key must not contain control characters" },
      { function(c) c.endpoints[1].api_key = FAKE_KEY .. "\0" end, "endpoints[1].api_key must not contain control characters" },
      { function(c) c.endpoints[1].api_key_env = "HOME" end, "endpoints[1] must not set both api_key and api_key_env" },
      { function(c) c.endpoints[2].api_key_env = "" end, "endpoints[2].api_key_env must be a non-empty string" },
      { function(c) c.endpoints[2].api_key_env = true end, "endpoints[2].api_key_env must be a non-empty string" },
      { function(c) c.endpoints[2].api_key_env = "A=B" end, "endpoints[2].api_key_env is not a valid" },
      -- numbers of an endpoint
      { function(c) c.endpoints[2].weight = -1 end, "endpoints[2].weight must be a positive number (got -1)" },
      { function(c) c.endpoints[2].weight = 0 end, "endpoints[2].weight must be a positive number (got 0)" },
      { function(c) c.endpoints[2].weight = "3" end, "endpoints[2].weight must be a positive number (got string)" },
      { function(c) c.endpoints[2].weight = nan end, "endpoints[2].weight must be a positive number (got nan)" },
      { function(c) c.endpoints[2].weight = inf end, "endpoints[2].weight must be a positive number (got inf)" },
      { function(c) c.endpoints[2].rpm = 0 end, "endpoints[2].rpm must be a positive number" },
      { function(c) c.endpoints[2].rpm = "500" end, "endpoints[2].rpm must be a positive number (got string)" },
      { function(c) c.endpoints[2].tpm = -inf end, "endpoints[2].tpm must be a positive number (got -inf)" },
      { function(c) c.endpoints[2].tpm = false end, "endpoints[2].tpm must be a positive number (got boolean)" },
      { function(c) c.endpoints[2].max_concurrency = 1.5 end, "endpoints[2].max_concurrency must be a positive integer (got 1.5)" },
      { function(c) c.endpoints[2].max_concurrency = 0 end, "endpoints[2].max_concurrency must be a positive integer" },
      -- models
      { function(c) c.endpoints[2].models = "gpt-4o" end, "endpoints[2].models must be an array of model names or a map { [logical] = upstream name } (got string)" },
      { function(c) c.endpoints[2].models = {} end, "endpoints[2].models must not be empty" },
      { function(c) c.endpoints[2].models = { "a", "" } end, "endpoints[2].models[2] must be a non-empty string" },
      { function(c) c.endpoints[2].models = { 4 } end, "endpoints[2].models[1] must be a non-empty string" },
      { function(c) c.endpoints[2].models = { [2] = "a" } end, "endpoints[2].models must be an array without holes" },
      { function(c) c.endpoints[2].models = { "a", x = "b" } end, "endpoints[2].models must be either an array of model names or a map" },
      { function(c) c.endpoints[2].models = { x = "" } end, 'endpoints[2].models["x"] must be a non-empty string' },
      -- headers
      { function(c) c.endpoints[1].headers = "X: y" end, "endpoints[1].headers must be a table (got string)" },
      { function(c) c.endpoints[1].headers = { "v" } end, "endpoints[1].headers must map header names to values" },
      { function(c) c.endpoints[1].headers = { ["Bad Name"] = "v" } end, 'endpoints[1].headers["Bad Name"] is not a valid header name' },
      { function(c) c.endpoints[1].headers = { ["X:Y"] = "v" } end, 'endpoints[1].headers["X:Y"] is not a valid header name' },
      { function(c) c.endpoints[1].headers = { ["X-Team"] = true } end, 'endpoints[1].headers["X-Team"] must be a string (got boolean)' },
      { function(c) c.endpoints[1].headers = { ["X-Team"] = nan } end, 'endpoints[1].headers["X-Team"] must be a finite number' },
      { function(c) c.endpoints[1].headers = { ["X-Team"] = "data\r\nX-Evil: 1" } end, 'endpoints[1].headers["X-Team"] must not contain CR or LF' },
      { function(c) c.endpoints[1].headers = { ["X-Team"] = "data\r" } end, 'endpoints[1].headers["X-Team"] must not contain CR or LF' },
      { function(c) c.endpoints[1].headers = { ["X-Key"] = FAKE_KEY .. "\n" } end, 'endpoints[1].headers["X-Key"] must not contain CR or LF' },
      { function(c) c.endpoints[1].headers = { ["X-Team"] = "da\0ta" } end, 'endpoints[1].headers["X-Team"] must not contain NUL' },
      { function(c) c.endpoints[1].headers = { ["X-Team"] = "da\1ta" } end, 'endpoints[1].headers["X-Team"] must not contain control characters' },
      { function(c) c.endpoints[1].headers = { ["X-Team"] = "a", ["x-team"] = "b" } end, "header names are case-insensitive" },
      -- strategy
      { function(c) c.strategy = "fastest" end, 'strategy must be one of "weighted", "priority", "round_robin", "cost" (got "fastest")' },
      { function(c) c.strategy = 1 end, "strategy must be one of" },
      -- retry
      { function(c) c.retry = 5 end, "retry must be a table (got 5)" },
      { function(c) c.retry = { max_attempts = 0 } end, "retry.max_attempts must be a positive integer (got 0)" },
      { function(c) c.retry = { max_attempts = 2.5 } end, "retry.max_attempts must be a positive integer (got 2.5)" },
      { function(c) c.retry = { max_attempts = "5" } end, "retry.max_attempts must be a positive integer (got string)" },
      { function(c) c.retry = { base_delay = 0 } end, "retry.base_delay must be a positive number (got 0)" },
      { function(c) c.retry = { base_delay = nan } end, "retry.base_delay must be a positive number (got nan)" },
      { function(c) c.retry = { base_delay = 2, max_delay = 1 } end, "retry.max_delay must be a number >= retry.base_delay (2) (got 1)" },
      { function(c) c.retry = { max_delay = inf } end, "retry.max_delay must be a number >= retry.base_delay" },
      { function(c) c.retry = { max_retry_after = -1 } end, "retry.max_retry_after must be a number >= 0 (got -1)" },
      { function(c) c.retry = { budget = -0.1 } end, "retry.budget must be a number >= 0 or false (got -0.1)" },
      { function(c) c.retry = { budget = true } end, "retry.budget must be a number >= 0 or false (got true)" },
      { function(c) c.retry = { budget = "0.2" } end, "retry.budget must be a number >= 0 or false (got string)" },
      -- breaker
      { function(c) c.breaker = "on" end, "breaker must be a table (got string)" },
      { function(c) c.breaker = { failure_threshold = 0 } end, "breaker.failure_threshold must be a positive integer" },
      { function(c) c.breaker = { failure_threshold = 1.5 } end, "breaker.failure_threshold must be a positive integer (got 1.5)" },
      { function(c) c.breaker = { failure_rate = 0 } end, "breaker.failure_rate must be a number in (0, 1] (got 0)" },
      { function(c) c.breaker = { failure_rate = 1.5 } end, "breaker.failure_rate must be a number in (0, 1] (got 1.5)" },
      { function(c) c.breaker = { min_calls = 0 } end, "breaker.min_calls must be a positive integer" },
      { function(c) c.breaker = { window = 0 } end, "breaker.window must be a positive number" },
      { function(c) c.breaker = { cooldown = -1 } end, "breaker.cooldown must be a positive number (got -1)" },
      { function(c) c.breaker = { cooldown = 60, max_cooldown = 30 } end, "breaker.max_cooldown must be a number >= breaker.cooldown (60) (got 30)" },
      { function(c) c.breaker = { half_open_probes = 0 } end, "breaker.half_open_probes must be a positive integer" },
      -- tls
      { function(c) c.tls = true end, "tls must be a table (got boolean)" },
      { function(c) c.tls = { ca_file = 5 } end, "tls.ca_file must be a non-empty string (got 5)" },
      { function(c) c.tls = { ca_file = "" } end, "tls.ca_file must be a non-empty string" },
      { function(c) c.tls = { ca_file = "/nonexistent/llmrelay-ca.pem" } end, 'tls.ca_file: cannot read "/nonexistent/llmrelay-ca.pem"' },
      { function(c) c.tls = { ca_file = "." } end, 'tls.ca_file: cannot read "."' },
      { function(c) c.tls = { insecure = "false" } end, "tls.insecure must be a boolean (got string)" },
      { function(c) c.tls = { insecure = 1 } end, "tls.insecure must be a boolean (got 1)" },
      -- the rest of the top level
      { function(c) c.max_response_bytes = 1023 end, "max_response_bytes must be an integer >= 1024 (got 1023)" },
      { function(c) c.max_response_bytes = 2048.5 end, "max_response_bytes must be an integer >= 1024 (got 2048.5)" },
      { function(c) c.max_response_bytes = "1M" end, "max_response_bytes must be an integer >= 1024 (got string)" },
      { function(c) c.concurrency = 0 end, "concurrency must be a positive integer (got 0)" },
      { function(c) c.concurrency = 1.5 end, "concurrency must be a positive integer (got 1.5)" },
      { function(c) c.on_event = "print" end, "on_event must be a function (got string)" },
      { function(c) c.on_event = {} end, "on_event must be a function (got table)" },
      { function(c) c.user_agent = 5 end, "user_agent must be a string (got 5)" },
      { function(c) c.user_agent = "me\r\nX-Evil: 1" end, "user_agent must not contain CR or LF" },
    }
    for _, what in ipairs({ "connect", "first_byte", "idle", "total" }) do
      local path = "timeout." .. what
      cases[#cases + 1] = { function(c) c.timeout = { [what] = 0 } end, path .. " must be a positive number (got 0)" }
      cases[#cases + 1] = { function(c) c.timeout = { [what] = -1 } end, path .. " must be a positive number (got -1)" }
      cases[#cases + 1] = { function(c) c.timeout = { [what] = "5" } end, path .. " must be a positive number (got string)" }
      cases[#cases + 1] = { function(c) c.timeout = { [what] = nan } end, path .. " must be a positive number (got nan)" }
      cases[#cases + 1] = { function(c) c.timeout = { [what] = inf } end, path .. " must be a positive number (got inf)" }
    end
    for _, name in ipairs({ "Authorization", "content-type", "Content-Length", "HOST",
                            "Transfer-Encoding", "connection", "Expect" }) do
      cases[#cases + 1] = { function(c) c.endpoints[1].headers = { [name] = "Bearer " .. FAKE_KEY } end,
                            'endpoints[1].headers["' .. name .. '"] is reserved' }
    end

    for i, case in ipairs(cases) do
      it(("case %d: %s"):format(i, case[2]), function() expect_error(case[1], case[2]) end)
    end

    it("a non-table config", function()
      assert.truthy(error_of(nil):find("config must be a table (got nil)", 1, true))
      assert.truthy(error_of("x"):find("config must be a table (got string)", 1, true))
    end)
  end)
end)

describe("errors", function()
  it("mirrors the kinds of csrc/errors.h, in order", function()
    local f = assert(io.open("csrc/errors.h", "rb"))
    local src = f:read("*a")
    f:close()
    local from_c = {}
    for name in src:gmatch('X%(%u[%u_]*, "([%w_]+)"%)') do from_c[#from_c + 1] = name end
    assert.equal(13, #from_c)
    assert.same(from_c, errors.kinds)
    assert.equal("ok", errors.kind_name(0))
    assert.equal("rate_limited", errors.kind_name(1))
    assert.equal("cancelled", errors.kind_name(11))
    assert.equal("budget", errors.kind_name(12))
    assert.is_nil(errors.kind_name(13))
  end)

  it("prints one readable line", function()
    local e = errors.new({ kind = "rate_limited", status = 429, endpoint = "primary", attempts = 3,
                           message = "Rate limit reached", retry_after = 1.2 })
    assert.equal("llmrelay: rate_limited: HTTP 429 from endpoint 'primary' after 3 attempts: "
                 .. "Rate limit reached (retry after 1.2 s)", tostring(e))
    assert.equal("rate_limited", e.kind)
    assert.equal(429, e.status)
    assert.equal("primary", e.endpoint)
    assert.equal(3, e.attempts)
    assert.equal(1.2, e.retry_after)
  end)

  it("omits the parts that are nil", function()
    assert.equal("llmrelay: timeout", tostring(errors.new({ kind = "timeout" })))
    assert.equal("llmrelay: connect: connection refused",
                 tostring(errors.new({ kind = "connect", message = "connection refused" })))
    assert.equal("llmrelay: deadline: from endpoint 'b' after 1 attempt",
                 tostring(errors.new({ kind = "deadline", endpoint = "b", attempts = 1 })))
    assert.equal("llmrelay: server_error: HTTP 503: line one line two (retry after 2 s)",
                 tostring(errors.new({ kind = "server_error", status = 503,
                                       message = "line one\r\nline two", retry_after = 2 })))
  end)

  it("carries the partial text of a stream", function()
    local e = errors.new({ kind = "stream_interrupted", partial = "Hello, wor" })
    assert.equal("Hello, wor", e.partial)
  end)

  it("refuses a bad kind or field", function()
    assert.has_error(function() errors.new({ kind = "nope" }) end)
    assert.has_error(function() errors.new({ kind = "ok" }) end)
    assert.has_error(function() errors.new({}) end)
    assert.has_error(function() errors.new({ kind = "http", stauts = 500 }) end)
    assert.has_error(function() errors.new({ kind = "http", status = "500" }) end)
    assert.has_error(function() errors.new({ kind = "http", attempts = 1.5 }) end)
    assert.has_error(function() errors.new("http") end)
  end)

  it("recognizes its own errors", function()
    assert.is_true(errors.is(errors.new({ kind = "cancelled" })))
    assert.is_false(errors.is({ kind = "cancelled" }))
    assert.is_false(errors.is("llmrelay: cancelled"))
    assert.is_false(errors.is(nil))
  end)

  describe("scrubber", function()
    local function text(s, secrets) return errors.scrubber(secrets):text(s) end

    it("removes every occurrence of every secret", function()
      local s = "key " .. FAKE_KEY .. " is invalid; " .. FAKE_KEY .. " and abc and xabcx"
      assert.equal("key [REDACTED] is invalid; [REDACTED] and [REDACTED] and x[REDACTED]x",
                   text(s, { FAKE_KEY, "abc" }))
    end)

    it("treats secrets as plain text, not patterns", function()
      assert.equal("k=[REDACTED]; k=a-b%c", text("k=a.b%c(; k=a-b%c", { "a.b%c(" }))
      assert.equal("[REDACTED]", text("%1", { "%1" }))
    end)

    it("removes the longer of two overlapping secrets whole", function()
      assert.equal("[REDACTED] [REDACTED]", text("sk-abc sk-abcdef", { "sk-abc", "sk-abcdef" }))
    end)

    it("removes bearer tokens", function()
      assert.equal('{"auth": "Bearer [REDACTED]"}', text('{"auth": "Bearer tok-123.x"}'))
      assert.equal("Authorization: Bearer [REDACTED]\r\n",
                   text("Authorization: Bearer " .. FAKE_KEY .. "\r\n", { FAKE_KEY }))
    end)

    it("passes other values through", function()
      local sc = errors.scrubber({ FAKE_KEY })
      assert.is_nil(sc:text(nil))
      assert.equal(5, sc:text(5))
      local t = {}
      assert.equal(t, sc:json(t))
      assert.equal("plain", text("plain", {}))
      assert.equal("plain", text("plain", { "" }))
    end)

    it("keys_only removes the keys and leaves bearer text alone", function()
      local sc = errors.scrubber({ FAKE_KEY })
      assert.equal("a [REDACTED] b, Bearer tok-1", sc:text("a " .. FAKE_KEY .. " b, Bearer tok-1", true))
      assert.equal("[REDACTED]", errors.scrubber({ "sk-abc", "sk-abcdef" }):text("sk-abcdef", true))
    end)
  end)
end)

describe("config secrets (credentials)", function()
  local function ep_with(fields)
    local ep = { name = "p", base_url = "https://api.example.com/v1" }
    for k, v in pairs(fields) do ep[k] = v end
    return { endpoints = { ep } }
  end

  local function refuses(fields, fragment)
    local ok, msg = pcall(config.validate, ep_with(fields))
    assert.is_false(ok, "expected validate to fail")
    assert.truthy(msg:find("llmrelay.new: " .. fragment, 1, true), ("expected %q in: %s"):format(fragment, msg))
    return msg
  end

  it("refuses an api_key too short to keep secret, naming the rule", function()
    local msg = refuses({ api_key = "1" }, "endpoints[1].api_key is too short to keep secret: a credential must be"
                          .. " at least 8 characters (omit api_key for a server that needs none)")
    assert.is_nil(msg:find("= \"1\"", 1, true))
    assert.truthy(config.validate(ep_with({ api_key = "12345678" })))
  end)

  it("refuses a credential header too short to keep secret, whatever its case", function()
    for _, name in ipairs { "api-key", "X-API-KEY", "x-goog-api-key", "X-Auth-Token", "x-client-secret",
                            "Proxy-Authorization", "Cookie" } do
      refuses({ headers = { [name] = "short" } },
              'endpoints[1].headers["' .. name .. '"] is too short to keep secret: a credential must be at least 8')
    end
    -- and the token of a "Scheme token" value on its own
    refuses({ headers = { ["X-Upstream-Token"] = "Bearer abc" } },
            'endpoints[1].headers["X-Upstream-Token"]\'s token is too short to keep secret')
    -- a header that is no credential may be short
    assert.truthy(config.validate(ep_with({ headers = { ["X-Team"] = "a", ["X-Keyring"] = "b" } })))
  end)

  it("lists credential headers, secret_headers and bearer tokens as secrets", function()
    local n = config.validate(ep_with({
      api_key = FAKE_KEY,
      headers = { ["api-key"] = "azure-key-123", ["X-Team"] = "data", ["X-My-Auth"] = "mine-0123456",
                  ["X-Upstream-Token"] = "Bearer tok-0123456789" },
      secret_headers = { "x-my-auth" },
    }))
    local got = config.secrets(n)
    table.sort(got)
    assert.same({ "Bearer tok-0123456789", "azure-key-123", "mine-0123456", FAKE_KEY, "tok-0123456789" }, got)
  end)

  it("validates secret_headers", function()
    refuses({ secret_headers = "X-A" }, "endpoints[1].secret_headers must be an array of header names (got string)")
    refuses({ secret_headers = { 5 } }, "endpoints[1].secret_headers[1] must be a non-empty string (got 5)")
    refuses({ headers = { ["X-A"] = "long-enough-1" }, secret_headers = { "X-B" } },
            'endpoints[1].secret_headers[1] "X-B" names no header of endpoints[1].headers')
    refuses({ headers = { ["X-A"] = "short" }, secret_headers = { "x-a" } },
            'endpoints[1].headers["X-A"] is too short to keep secret')
    refuses({ secret_headers = {}, secrets_headers = {} }, "unknown field 'endpoints[1].secrets_headers'")
  end)
end)

-- Issue 12 items 10 and 14: numbers the C core would wrap are refused with
-- their range; too many headers or models are llmrelay.new errors at the caller.
describe("config ranges", function()
  local llmrelay = require "llmrelay"
  local core = require "llmrelay.core"
  local nan, inf = 0 / 0, math.huge

  local cases = {
    { function(c) c.concurrency = 2 ^ 31 end,
      "concurrency must be a positive integer (got 2147483648); the range is 1 to 65536" },
    { function(c) c.concurrency = 65537 end, "the range is 1 to 65536" },
    { function(c) c.endpoints[2].max_concurrency = 2 ^ 31 end,
      "endpoints[2].max_concurrency must be a positive integer (got 2147483648); the range is 1 to 65536" },
    { function(c) c.retry = { max_attempts = 2 ^ 31 } end,
      "retry.max_attempts must be a positive integer (got 2147483648); the range is 1 to 1000000" },
    { function(c) c.retry = { max_attempts = 2 ^ 32 + 1 } end, "(got 4294967297); the range is 1 to 1000000" },
    { function(c) c.breaker = { failure_threshold = 2 ^ 31 } end,
      "breaker.failure_threshold must be a positive integer (got 2147483648); the range is 1 to 1000000" },
    { function(c) c.breaker = { min_calls = 2 ^ 53 } end, "breaker.min_calls must be a positive integer" },
    { function(c) c.breaker = { half_open_probes = 1e7 } end,
      "breaker.half_open_probes must be a positive integer (got 10000000); the range is 1 to 1000000" },
    { function(c) c.max_response_bytes = 1e20 end,
      "max_response_bytes must be an integer >= 1024 (got 1e+20); the range is 1024 to 1073741824 (1 GiB)" },
    { function(c) c.max_response_bytes = 2 ^ 30 + 1 end, "the range is 1024 to 1073741824 (1 GiB)" },
    { function(c) c.max_response_bytes = nan end,
      "max_response_bytes must be an integer >= 1024 (got nan); the range is 1024 to 1073741824 (1 GiB)" },
    { function(c) c.concurrency = inf end, "concurrency must be a positive integer (got inf); the range is 1 to 65536" },
    { function(c) c.timeout = { total = 1e300 } end,
      "timeout.total must be a positive number (got 1e+300); the range is above 0 to 1000000 seconds" },
    { function(c) c.timeout = { connect = 1e7 } end, "timeout.connect must be a positive number (got 10000000)" },
    { function(c) c.retry = { base_delay = 1e7 } end, "retry.base_delay must be a positive number (got 10000000)" },
    { function(c) c.retry = { max_delay = 1e7 } end,
      "retry.max_delay must be a number >= retry.base_delay (0.5) (got 10000000); the range is 0.5 to 1000000 seconds" },
    { function(c) c.retry = { max_retry_after = 1e7 } end,
      "retry.max_retry_after must be a number >= 0 (got 10000000); the range is 0 to 1000000 seconds" },
    { function(c) c.breaker = { window = 1e7 } end, "breaker.window must be a positive number (got 10000000)" },
    { function(c) c.breaker = { max_cooldown = 1e7 } end, "breaker.max_cooldown must be a number >= breaker.cooldown" },
    { function(c) c.endpoints[1].weight = 1e300 end,
      "endpoints[1].weight must be a positive number (got 1e+300); the range is above 0 to 1000000" },
  }
  for i, case in ipairs(cases) do
    it(("case %d: %s"):format(i, case[2]), function()
      local cfg = cfg_with(case[1])
      local msg = error_of(cfg)
      assert.truthy(msg:find(case[2], 1, true), ("expected %q in: %s"):format(case[2], msg))
    end)
  end

  it("takes the largest value of each range, and the C core reads it unwrapped", function()
    local c = llmrelay.new(cfg_with(function(c)
      c.concurrency = 65536
      c.retry = { max_attempts = 1000000, max_delay = 1000000, max_retry_after = 1000000 }
      c.breaker = { failure_threshold = 1000000, min_calls = 1000000, half_open_probes = 1000000,
                    window = 1000000, cooldown = 1000000 }
      c.timeout = { connect = 1000000, first_byte = 1000000, idle = 1000000, total = 1000000 }
      c.max_response_bytes = 2 ^ 30
      c.endpoints[2].max_concurrency = 65536
      c.endpoints[2].weight = 1000000
    end))
    assert.are.equal(2, #c:status())
    assert.are.equal(65536, c:status()[2].max_concurrency)
    c:close()
  end)

  it("the C core refuses a wrapped number too, whoever built the config", function()
    local cfg = config.validate(cfg_with())
    cfg.concurrency = 2 ^ 31
    local ok, msg = pcall(core.client, cfg)
    assert.is_false(ok)
    assert.matches("concurrency must be an integer from 1 to 65536", msg)
    cfg.concurrency, cfg.retry.max_attempts = 64, 2 ^ 31
    ok, msg = pcall(core.relay, cfg, 0)
    assert.is_false(ok)
    assert.matches("max_attempts must be an integer from 1 to 1000000", msg)
    cfg.retry.max_attempts, cfg.timeout.total = 5, 1e300
    ok, msg = pcall(core.client, cfg)
    assert.is_false(ok)
    assert.truthy(msg:find("config total must be above 0 and at most 1000000 seconds", 1, true), msg)
  end)

  local function headers(n)
    local h = {}
    for i = 1, n do h["X-H" .. i] = "v" .. i end
    return h
  end

  local function models(n)
    local m = {}
    for i = 1, n do m[i] = "model-" .. i end
    return m
  end

  it("takes 36 headers and 32 models an endpoint", function()
    local c = llmrelay.new { endpoints = { { base_url = "http://127.0.0.1:1/v1", headers = headers(36),
                                             models = models(32) } } }
    c:close()
  end)

  it("refuses more headers or models at llmrelay.new, blaming the caller", function()
    local ok, msg = pcall(function()
      local c = llmrelay.new { endpoints = { { base_url = "http://127.0.0.1:1/v1", headers = headers(37) } } }
      return c -- not a tail call: the error names this line
    end)
    assert.is_false(ok)
    assert.are.equal("spec/config_spec.lua:", msg:sub(1, 21))
    assert.truthy(msg:find("llmrelay.new: endpoints[1].headers: at most 36 headers (got 37)", 1, true), msg)
    ok, msg = pcall(function()
      local c = llmrelay.new { endpoints = { { base_url = "http://127.0.0.1:1/v1" },
                                             { base_url = "http://127.0.0.1:2/v1", models = models(33) } } }
      return c
    end)
    assert.is_false(ok)
    assert.are.equal("spec/config_spec.lua:", msg:sub(1, 21))
    assert.truthy(msg:find("llmrelay.new: endpoints[2].models: at most 32 models (got 33)", 1, true), msg)
  end)
end)
