-- endpoints[i].models as a map { [logical] = upstream name }: each attempt's body (and a
-- {model} path) carries the endpoint's name for the model, rewritten in C; the answer keeps
-- the upstream's "model" (the mock echoes the one it was sent, and --models makes it refuse
-- any other); resp._llmrelay.model is the logical model; cost is priced by it. Both
-- executors.
local llmrelay = require "llmrelay"
local config = require "llmrelay.config"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"
local cjson = require "cjson"

local function req(model, content)
  return { model = model, messages = { { role = "user", content = content or "hi", model = "nested-stays" } } }
end

local function refused(cfg, pattern)
  local ok, err = pcall(config.validate, cfg)
  assert.is_false(ok)
  assert.truthy(tostring(err):find(pattern, 1, true), tostring(err))
end

describe("models config", function()
  it("takes a list (served as is) or a map, and normalizes the map to its logical names", function()
    local n = config.validate { endpoints = { { base_url = "http://h/v1", models = { b = "up-b", a = "a" } },
                                              { base_url = "http://g/v1", models = { "a" } } } }
    assert.same({ "a", "b" }, n.endpoints[1].models)
    assert.same({ a = "a", b = "up-b" }, n.endpoints[1].upstream)
    assert.same({ "a" }, n.endpoints[2].models)
    assert.is_nil(n.endpoints[2].upstream)
  end)

  it("refuses mixed tables, empty names and bad fallbacks, naming the field", function()
    local function eps(models2)
      return { { base_url = "http://h/v1", models = { big = "b-up" } }, { base_url = "http://g/v1", models = models2 } }
    end
    refused({ endpoints = eps { "a", x = "y" } }, "endpoints[2].models must be either an array")
    refused({ endpoints = eps { [""] = "y" } }, "endpoints[2].models must not map an empty model name")
    refused({ endpoints = eps { x = 3 } }, 'endpoints[2].models["x"] must be a non-empty string')
    refused({ endpoints = eps { "mini" }, fallbacks = { big = { "nope" } } }, 'fallbacks["big"][1]: no endpoint serves "nope"')
    refused({ endpoints = eps { "mini" }, fallbacks = { nope = { "mini" } } }, 'fallbacks["nope"]: no endpoint serves')
    refused({ endpoints = eps { "mini" }, fallbacks = { big = { "big" } } }, "cannot fall back to itself")
    refused({ endpoints = eps { "mini" }, fallbacks = { big = { "mini", "mini" } } }, 'is named twice')
    refused({ endpoints = eps { "mini" }, fallbacks = { big = {} } }, 'fallbacks["big"] must be a non-empty array')
    refused({ endpoints = eps { "mini" }, fallbacks = { big = "mini" } }, 'fallbacks["big"] must be a non-empty array')
    local nine = {}
    for i = 1, 9 do nine[i] = "m" .. i end
    refused({ endpoints = eps(nine), fallbacks = { big = nine } }, 'fallbacks["big"]: at most 8 models (got 9)')
    refused({ endpoints = eps { "mini" }, context_window_fallbacks = { big = { "x" } } },
            'context_window_fallbacks["big"][1]: no endpoint serves "x"')
    -- an endpoint without models serves every name
    assert(config.validate { endpoints = { { base_url = "http://h/v1" } }, fallbacks = { a = { "b", "c" } } })
  end)
end)

describe("core.set_model", function()
  local core = require "llmrelay.core"

  it("rewrites the top-level model string on the raw body, and only that", function()
    local body = '{"model" : "gpt-4.1", "messages":[{"role":"user","content":"\\"model\\":\\"x\\"","model":"n"}]}'
    assert.equal('{"model" : "up\\"1", "messages":[{"role":"user","content":"\\"model\\":\\"x\\"","model":"n"}]}',
                 core.set_model(body, 'up"1'))
    assert.equal(body, core.set_model(body, "gpt-4.1"))
    assert.equal('{"model":null}', core.set_model('{"model":null}', "x"))
  end)
end)

describe("models map with the libcurl executor", function()
  local a, b

  setup(function()
    a = mock.start { name = "a", models = { "a-4.1" } }
    b = mock.start { name = "b", models = { "gpt-4.1", "b-mini" } }
  end)
  teardown(function()
    a:stop()
    b:stop()
  end)

  it("sends each endpoint its own name for the model and answers with the logical one", function()
    local c = llmrelay.new {
      endpoints = {
        { name = "a", base_url = a.url, models = { ["gpt-4.1"] = "a-4.1" }, prices = { ["gpt-4.1"] = { input = 2, output = 8 } } },
        { name = "b", base_url = b.url, models = { ["gpt-4.1"] = "gpt-4.1", mini = "b-mini" } },
      },
      strategy = "priority",
    }
    local resp, err = c:chat_completion(req("gpt-4.1"))
    assert.is_nil(err)
    assert.equal("a-4.1", resp.model) -- the upstream's own answer
    assert.equal("gpt-4.1", resp._llmrelay.model)
    assert.equal("a", resp._llmrelay.endpoint)
    -- priced by the logical model
    local u = resp.usage
    assert.near((u.prompt_tokens * 2 + u.completion_tokens * 8) / 1e6, resp._llmrelay.cost, 1e-12)
    assert.truthy(c:metrics():find('llmrelay_cost_usd_total{endpoint="a",model="gpt-4.1"}', 1, true))
    -- a name mapped to itself goes as it is; "mini" is "b-mini" there
    local only_b = { endpoints = { "b" } }
    resp = assert(c:chat_completion(req("gpt-4.1"), only_b))
    assert.equal("gpt-4.1", resp.model)
    resp = assert(c:chat_completion(req("mini"), only_b))
    assert.equal("b-mini", resp.model)
    assert.equal("mini", resp._llmrelay.model)
    -- an upstream name is no logical one: nobody serves it
    local _, e = c:chat_completion(req("a-4.1"))
    assert.equal("invalid_request", e.kind)
  end)

  it("puts the endpoint's name in a {model} path too, and streams", function()
    local c = llmrelay.new {
      endpoints = { { base_url = a.base, path = "/openai/deployments/{model}/chat/completions",
                      models = { ["gpt 4.1"] = "a-4.1" } } },
    }
    local resp = assert(c:chat_completion(req("gpt 4.1")))
    assert.equal("a-4.1", resp.model)
    assert.equal("/openai/deployments/a-4.1/chat/completions", a:stats().last_target)
    local st = c:stream(req("gpt 4.1"))
    local model
    for chunk in st do model = model or chunk.model end
    assert.equal("a-4.1", model)
  end)
end)

describe("models map with the OpenResty executor", function()
  if not nginx.required(it, "models spec (OpenResty)") then return end
  local a, n

  setup(function()
    assert(mock.run("make -s LUA=luajit >/dev/null"), "make LUA=luajit failed")
    a = mock.start { name = "a", models = { "a-4.1" } }
    n = nginx.start {
      init = ([[
        local llmrelay = require "llmrelay"
        client = llmrelay.new { endpoints = { { name = "a", base_url = %q, models = { ["gpt-4.1"] = "a-4.1" },
                                                prices = { ["*"] = { input = 1, output = 1 } } } },
                                retry = { max_attempts = 1 } }
        deploy = llmrelay.new { endpoints = { { name = "d", base_url = %q, models = { ["gpt-4.1"] = "a-4.1" },
                                                path = "/openai/deployments/{model}/chat/completions" } },
                                retry = { max_attempts = 1 } }
      ]]):format(a.url, a.base),
      http = [[
        server {
          listen 127.0.0.1:$PORT;
          location = /chat { content_by_lua_block {
            local c = ngx.var.arg_c == "deploy" and deploy or client
            local resp, err = c:chat_completion { model = ngx.var.arg_model,
              messages = { { role = "user", content = "hi" } } }
            ngx.say(require("cjson").encode { model = resp and resp.model, logical = resp and resp._llmrelay.model,
              cost = resp and resp._llmrelay.cost, err = err and tostring(err) })
          } }
        }
      ]],
    }
  end)
  teardown(function()
    if n then n:stop() end
    a:stop()
  end)

  it("rewrites the body and the {model} path as the libcurl executor does", function()
    local code, body = nginx.curl(n.base .. "/chat?model=gpt-4.1", { timeout = 10 })
    assert.equal(200, code, body)
    local r = cjson.decode(body)
    assert.equal("a-4.1", r.model, body)
    assert.equal("gpt-4.1", r.logical)
    assert.truthy(r.cost > 0)
    code, body = nginx.curl(n.base .. "/chat?c=deploy&model=gpt-4.1", { timeout = 10 })
    r = cjson.decode(body)
    assert.equal("a-4.1", r.model, body)
    assert.equal("/openai/deployments/a-4.1/chat/completions", a:stats().last_target)
  end)
end)
