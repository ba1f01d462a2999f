-- Provider dialects as data: endpoints[i].path (with {model}), .query and
-- .auth ("bearer" | "api-key"), for the libcurl executor here and the
-- OpenResty one in nginx (the mock reports the last chat request's path?query
-- in /stats.last_target and checks the key's header with --auth-header).
local llmrelay = require "llmrelay"
local config = require "llmrelay.config"
local dialect = require "llmrelay.dialect"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"
local cjson = require "cjson"

local KEY = "azure-SECRET-key-0123456789abcdef"

local function req(model)
  return { model = model or "gpt-4o", messages = { { role = "user", content = "hi" } } }
end

local function ep(extra)
  local e = { base_url = "https://res.example.com" }
  for k, v in pairs(extra) do e[k] = v end
  return e
end

local function validate(extra)
  return config.validate({ endpoints = { ep(extra) } }).endpoints[1]
end

local function refused(extra, pattern)
  local ok, err = pcall(validate, extra)
  assert.is_false(ok)
  assert.truthy(tostring(err):find(pattern, 1, true), tostring(err))
end

local dump = require "spec.support.dump"

describe("endpoint dialect config", function()
  it("defaults to bearer and /chat/completions", function()
    local e = validate {}
    assert.equal("bearer", e.auth)
    assert.equal("/chat/completions", e.path)
    assert.equal("https://res.example.com/chat/completions", e.url)
  end)

  it("builds the URL from base_url, path and the encoded, sorted query", function()
    local e = validate { path = "/openai/deployments/{model}/chat/completions",
                         query = { ["api-version"] = "2024-10-21", ["b c"] = "x&y=z/é" } }
    assert.equal("https://res.example.com/openai/deployments/{model}/chat/completions"
                 .. "?api-version=2024-10-21&b%20c=x%26y%3Dz%2F%C3%A9", e.url)
    assert.same({ ["api-version"] = "2024-10-21", ["b c"] = "x&y=z/é" }, e.query)
    assert.equal("https://res.example.com/openai/deployments/my%2Fdep%20x/chat/completions?v=1",
                 dialect.expand("https://res.example.com/openai/deployments/{model}/chat/completions?v=1", "my/dep x"))
  end)

  it("refuses bad paths, queries and auth values, naming the field", function()
    refused({ path = "chat/completions" }, 'endpoints[1].path must start with "/"')
    refused({ path = "/a b" }, "endpoints[1].path must not contain whitespace")
    refused({ path = "/a\n" }, "endpoints[1].path must not contain whitespace")
    refused({ path = "/a?x=1" }, "endpoints[1].path must not contain ? or #")
    refused({ path = "/{deployment}/x" }, "endpoints[1].path may hold only {model}")
    refused({ path = "/a\"b" }, "endpoints[1].path must be letters")
    refused({ path = 7 }, "endpoints[1].path must be a string")
    refused({ path = "/a%2" }, "endpoints[1].path must be letters")
    assert.equal("https://res.example.com/v1/a%2Fb/{model}/chat/completions",
                 validate({ path = "/v1/a%2Fb/{model}/chat/completions" }).url)
    refused({ query = "api-version=1" }, "endpoints[1].query must be a table")
    refused({ query = { "x" } }, "endpoints[1].query must have string names")
    refused({ query = { v = 1 } }, 'endpoints[1].query["v"] must be a string')
    refused({ query = { v = "1\r\nX-Evil: 1" } }, 'endpoints[1].query["v"] must not contain CR, LF')
    refused({ query = { ["a\n"] = "1" } }, "must not contain CR, LF")
    refused({ query = { [""] = "1" } }, "endpoints[1].query must not have an empty name")
    refused({ auth = "basic" }, 'endpoints[1].auth must be one of "bearer", "api-key" (got "basic")')
    refused({ auth = "api-key", api_key = KEY, headers = { ["api-key"] = KEY } },
            'endpoints[1].auth is "api-key": remove the api-key header')
  end)
end)

describe("endpoint dialects with the libcurl executor", function()
  local azure, plain

  setup(function()
    azure = mock.start { name = "azure", auth_key = KEY, auth_header = "api-key" }
    plain = mock.start { name = "plain", auth_key = KEY }
  end)
  teardown(function()
    azure:stop()
    plain:stop()
  end)

  it("sends api-key: KEY to the Azure path with the query", function()
    local events = {}
    local c = llmrelay.new {
      endpoints = { { name = "azure", base_url = azure.base, auth = "api-key", api_key = KEY,
                      path = "/openai/deployments/{model}/chat/completions",
                      query = { ["api-version"] = "2024-10-21" } } },
      on_event = function(e) events[#events + 1] = e end,
    }
    local resp, err = c:chat_completion(req("gpt 4o/mini"))
    assert.is_nil(err)
    assert.truthy(resp.choices[1].message.content)
    local st = azure:stats()
    assert.equal(0, st.auth_failures)
    assert.equal("/openai/deployments/gpt%204o%2Fmini/chat/completions?api-version=2024-10-21", st.last_target)
    for _, text in ipairs { dump(events), dump(c:status()), c:metrics(), dump(c), dump(resp) } do
      assert.is_nil(text:find("0123456789abcdef", 1, true), "the key leaked in: " .. text)
    end
  end)

  it("keeps the key out of errors when the api-key server refuses it", function()
    local wrong = "azure-WRONG-key-fedcba9876543210"
    local c = llmrelay.new {
      endpoints = { { base_url = azure.base, auth = "api-key", api_key = wrong,
                      path = "/openai/deployments/{model}/chat/completions" } },
      retry = { max_attempts = 1 },
    }
    local resp, err = c:chat_completion(req())
    assert.is_nil(resp)
    assert.equal(401, err.status)
    assert.is_nil(dump(err):find("fedcba9876543210", 1, true), dump(err))
    assert.is_nil(tostring(err):find("fedcba9876543210", 1, true), tostring(err))
  end)

  it("sends Authorization: Bearer by default, and not api-key", function()
    local ok = llmrelay.new { endpoints = { { base_url = plain.url, api_key = KEY } } }
    assert(ok:chat_completion(req()))
    assert.equal("/v1/chat/completions", plain:stats().last_target)
    -- a bearer-only server refuses the api-key header; an api-key server refuses Bearer
    local c = llmrelay.new { endpoints = { { base_url = plain.url, api_key = KEY, auth = "api-key" } },
                             retry = { max_attempts = 1 } }
    local resp, err = c:chat_completion(req())
    assert.is_nil(resp)
    assert.equal(401, err.status)
    local b = llmrelay.new { endpoints = { { base_url = azure.url, api_key = KEY } }, retry = { max_attempts = 1 } }
    resp, err = b:chat_completion(req())
    assert.is_nil(resp)
    assert.equal(401, err.status)
  end)
end)

describe("endpoint dialects with the OpenResty executor", function()
  if not nginx.required(it, "dialect spec (OpenResty)") then return end
  local azure, plain, n

  setup(function()
    assert(mock.run("make -s LUA=luajit >/dev/null"), "make LUA=luajit failed")
    azure = mock.start { name = "azure", auth_key = KEY, auth_header = "api-key" }
    plain = mock.start { name = "plain", auth_key = KEY }
    n = nginx.start {
      init = ([[
        local llmrelay = require "llmrelay"
        clients = {
          azure = llmrelay.new { endpoints = { { name = "azure", base_url = %q, auth = "api-key", api_key = %q,
                                   path = "/openai/deployments/{model}/chat/completions",
                                   query = { ["api-version"] = "2024-10-21" } } }, retry = { max_attempts = 1 } },
          plain = llmrelay.new { endpoints = { { name = "plain", base_url = %q, api_key = %q } },
                                 retry = { max_attempts = 1 } },
          wrong = llmrelay.new { endpoints = { { name = "wrong", base_url = %q, api_key = %q } },
                                 retry = { max_attempts = 1 } },
        }
      ]]):format(azure.base, KEY, plain.url, KEY, azure.url, KEY),
      http = [[
        server {
          listen 127.0.0.1:$PORT;
          location = /chat { content_by_lua_block {
            local resp, err = clients[ngx.var.arg_c]:chat_completion { model = ngx.unescape_uri(ngx.var.arg_model),
              messages = { { role = "user", content = "hi" } } }
            ngx.say(require("cjson").encode { ok = resp ~= nil, status = err and err.status,
              err = err and tostring(err) })
          } }
        }
      ]],
    }
  end)
  teardown(function()
    if n then n:stop() end
    azure:stop()
    plain:stop()
  end)

  local function chat(c, model)
    local code, body = nginx.curl(n.base .. "/chat?c=" .. c .. "&model=" .. model, { timeout = 10 })
    assert.equal(200, code, body)
    assert.is_nil(body:find("0123456789abcdef", 1, true), body)
    return cjson.decode(body)
  end

  it("builds the same URL and api-key header as the libcurl executor", function()
    local r = chat("azure", "gpt%204o%2Fmini")
    assert.is_true(r.ok, r.err)
    local st = azure:stats()
    assert.equal(0, st.auth_failures)
    assert.equal("/openai/deployments/gpt%204o%2Fmini/chat/completions?api-version=2024-10-21", st.last_target)
    r = chat("azure", "other")
    assert.is_true(r.ok, r.err)
    assert.equal("/openai/deployments/other/chat/completions?api-version=2024-10-21", azure:stats().last_target)
  end)

  it("sends Authorization: Bearer by default, which an api-key server refuses", function()
    local r = chat("plain", "m")
    assert.is_true(r.ok, r.err)
    assert.equal("/v1/chat/completions", plain:stats().last_target)
    r = chat("wrong", "m")
    assert.is_false(r.ok)
    assert.equal(401, r.status)
    assert.is_nil(n:error_log():find("0123456789abcdef", 1, true))
  end)
end)
