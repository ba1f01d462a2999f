-- Secrets (issue 12, items 3, 5 and 14's raw bytes): every credential - api_key,
-- a header named like one (api-key, x-api-key, *-token...), a header listed in
-- secret_headers, the token of a "Bearer X" value - stays out of errors, events,
-- status, metrics, the CLI's output lines and stderr, and the gateway's answers,
-- even when an upstream's 401 echoes it. Scrubbing never breaks JSON: keys that
-- appear in an answer's numbers or strings leave every output line valid, and a
-- server's invalid UTF-8 never reaches an output line as raw bytes.
-- The mock (build/mock-llm --auth-key K --auth-header NAME) echoes what it got.
local mock = require "spec.support.mock"
local run_cli = require("spec.support.cli").run
local nginx = require "spec.support.nginx"
local cjson = require "cjson.safe"
local llmrelay = require "llmrelay"

local q, capture, read_file = mock.quote, mock.capture, mock.read_file
local RIGHT_KEY = "the-right-key-0000"

-- Every secret below holds this, so a leak of any part of one is found by a search.
local MARK = "SECRET"

local dump = require "spec.support.dump"

local function assert_no_secret(text, where)
  assert.is_nil(text:find(MARK, 1, true), where .. " holds a secret:\n" .. text)
end

local function req(content)
  return { model = "m", messages = { { role = "user", content = content or "hi" } } }
end

local function write(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

local tmp
local function path(name) return tmp .. "/" .. name end

local function input_lines(n, content)
  local t = {}
  for i = 1, n do
    t[i] = cjson.encode { custom_id = "req-" .. i, method = "POST", url = "/v1/chat/completions",
                          body = req(content or ("msg " .. i)) }
  end
  return table.concat(t, "\n") .. "\n"
end

-- env: "VAR=value" assignments (quoted) or nil -> exit code, stdout, stderr
local function cli(args, env) return run_cli(tmp, args, env) end

-- Every output line decodes, is valid UTF-8; -> the decoded lines, the raw lines
local function output_lines(p)
  local docs, raws = {}, {}
  for line in (read_file(p) or ""):gmatch("[^\n]+") do
    assert.is_not_nil(utf8.len(line), "an output line is not valid UTF-8: " .. line)
    local d = cjson.decode(line)
    assert.is_table(d, "an output line is not JSON: " .. line)
    docs[#docs + 1], raws[#raws + 1] = d, line
  end
  return docs, raws
end

-- The header cases: what the endpoint sends, the header the mock reads (and echoes).
local CASES = {
  { what = "api-key (Azure)", header = "api-key", value = "azure-SECRET-0123456789abcdef" },
  { what = "X-Api-Key", header = "X-Api-Key", value = "xak-SECRET-0123456789abcdef" },
  { what = "a header listed in secret_headers", header = "X-My-Auth", value = "mine-SECRET-0123456789abcdef",
    listed = true },
  { what = "the token of a Bearer value", header = "X-Upstream-Token",
    value = "Bearer tok-SECRET-0123456789abcdef" },
}

local function endpoint(url, c)
  return { base_url = url, name = "locked", headers = { [c.header] = c.value },
           secret_headers = c.listed and { c.header } or nil }
end

describe("secrets", function()
  setup(function()
    tmp = (capture("mktemp -d /tmp/llmrelay-secrets.XXXXXX") or ""):match("^%s*(.-)%s*$")
    assert(tmp ~= "", "mktemp -d failed")
  end)

  teardown(function()
    mock.stop_all()
    if tmp then mock.run("rm -rf " .. q(tmp)) end
  end)

  for _, c in ipairs(CASES) do
    it("keeps " .. c.what .. " echoed by a 401 out of errors, events, status and metrics", function()
      local m = mock.start { name = "locked", auth_key = RIGHT_KEY, auth_header = c.header:lower() }
      local events = {}
      local client = llmrelay.new {
        endpoints = { endpoint(m.url, c) },
        retry = { max_attempts = 2, base_delay = 0.01, max_delay = 0.02 },
        on_event = function(ev) events[#events + 1] = ev end,
      }
      local resp, err = client:chat_completion(req())
      assert.is_nil(resp)
      assert.equal("http", err.kind)
      assert.equal(401, err.status)
      -- the mock did read the header and echo it: the case is real
      assert.is_true(m:stats().auth_failures >= 1)
      assert.truthy(err.message:find("Incorrect API key provided: [REDACTED]", 1, true), err.message)
      for _, text in ipairs { dump(err), tostring(err), dump(events), dump(client:status()), client:metrics(),
                              dump(client), tostring(client) } do
        assert_no_secret(text, "an error, event, status or metrics text")
      end
      client:close()
      m:stop()
    end)
  end

  it("keeps a header key out of the CLI's output lines, stdout and stderr", function()
    local m = mock.start { name = "azure", auth_key = RIGHT_KEY, auth_header = "api-key" }
    write(path("in.jsonl"), input_lines(3))
    write(path("azure.lua"), string.format([[return { endpoints = { { base_url = %q,
      headers = { ["api-key"] = "azure-SECRET-0123456789abcdef" } } }, retry = { max_attempts = 1 } }]], m.url))
    local rc, out, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("azure.jsonl"))
                             .. " -c " .. q(path("azure.lua")))
    assert.equal(1, rc, err)
    assert.equal(3, m:stats().auth_failures)
    for _, s in ipairs { out, err, read_file(path("azure.jsonl")) } do assert_no_secret(s, "the CLI's output") end
    local docs = output_lines(path("azure.jsonl"))
    assert.equal(3, #docs)
    for _, d in ipairs(docs) do
      assert.equal("http", d.error.code)
      assert.equal(401, d.response.status_code)
      assert.truthy(d.error.message:find("[REDACTED]", 1, true), d.error.message)
      assert.equal("Incorrect API key provided: [REDACTED]", d.response.body.error.message)
    end
    m:stop()
  end)

  it("refuses LLMRELAY_API_KEY=1 (too short to keep secret) with exit 2, sending nothing", function()
    local m = mock.start { name = "short" }
    write(path("in.jsonl"), input_lines(3))
    local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("short.jsonl"))
                           .. " --endpoint " .. m.url, "LLMRELAY_API_KEY=1")
    assert.equal(2, rc, err)
    assert.truthy(err:find("LLMRELAY_API_KEY is too short to keep secret: a credential must be at least 8 characters",
                           1, true), err)
    assert.equal(0, m:stats().requests)
    assert.equal("", read_file(path("short.jsonl")) or "")
    m:stop()
  end)

  it("keeps every output line valid JSON when keys appear in the answers' numbers and strings", function()
    local m = mock.start { name = "digits" }
    local docs, raws, key
    -- the key: the first 8 digits of the answers' "created" (epoch seconds), so
    -- that it sits in a JSON number; again if the run crossed a 100 s boundary
    for attempt = 1, 3 do
      key = tostring(os.time()):sub(1, 8)
      write(path("in.jsonl"), input_lines(3, "say " .. key .. " and chatcmpl"))
      write(path("digits.lua"), string.format([[return { endpoints = { { base_url = %q, api_key = %q,
        headers = { ["X-Api-Key"] = "chatcmpl" } } }, retry = { max_attempts = 1 } }]], m.url, key))
      os.remove(path("digits.jsonl"))
      local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("digits.jsonl"))
                             .. " -c " .. q(path("digits.lua")))
      assert.equal(0, rc, err)
      docs, raws = output_lines(path("digits.jsonl"))
      if raws[1]:find('"created":' .. key, 1, true) then break end
      assert.is_true(attempt < 3, "the key never appeared in an answer's number")
    end
    assert.equal(3, #docs)
    for i, d in ipairs(docs) do
      local body = d.response.body
      assert.equal(cjson.null, d.error)
      assert.equal("chat.completion", body.object)
      assert.is_number(body.created)
      assert.truthy(raws[i]:find('"created":' .. key, 1, true), raws[i]) -- the number is intact
      assert.matches("^%[REDACTED%]%-digits%-%d+$", body.id) -- was "chatcmpl-digits-N"
      local content = body.choices[1].message.content
      assert.is_nil(content:find(key, 1, true), content)
      assert.truthy(content:find("say [REDACTED] and [REDACTED]", 1, true), content)
      assert.is_number(body.usage.total_tokens)
    end
    m:stop()
  end)

  it("writes a server's invalid UTF-8 as U+FFFD, never as raw bytes", function()
    -- a header that is no credential, echoed by the mock's 401 with its raw bytes
    local m = mock.start { name = "bytes", auth_key = RIGHT_KEY, auth_header = "x-team" }
    write(path("in.jsonl"), input_lines(2))
    write(path("bytes.lua"), string.format([[return { endpoints = { { base_url = %q,
      headers = { ["X-Team"] = "caf\233 \255\254 team" } } }, retry = { max_attempts = 1 } }]], m.url))
    local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("bytes.jsonl"))
                           .. " -c " .. q(path("bytes.lua")))
    assert.equal(1, rc, err)
    local docs = output_lines(path("bytes.jsonl"))
    assert.equal(2, #docs)
    for _, d in ipairs(docs) do
      assert.equal(401, d.response.status_code)
      local want = "caf\239\191\189 \239\191\189\239\191\189 team"
      assert.equal("Incorrect API key provided: " .. want, d.response.body.error.message)
      assert.truthy(d.error.message:find(want, 1, true), d.error.message)
    end
    -- and the library's own error message is valid UTF-8 too
    local client = llmrelay.new { endpoints = { { base_url = m.url, headers = { ["X-Team"] = "caf\233" } } },
                                  retry = { max_attempts = 1 } }
    local _, e = client:chat_completion(req())
    assert.equal(401, e.status)
    assert.is_not_nil(utf8.len(e.message), e.message)
    client:close()
    m:stop()
  end)
end)

describe("secrets in the gateway", function()
  local available, why = nginx.available()
  if not available then
    it("needs nginx with the lua module", function() error("secrets spec: " .. tostring(why), 0) end)
    return
  end

  local n, m
  setup(function()
    m = mock.start { name = "azure-gw", auth_key = RIGHT_KEY, auth_header = "api-key" }
    n = nginx.start {
      workers = 1,
      init = ([[
        local llmrelay = require "llmrelay"
        client = llmrelay.new{ timeout = { connect = 2, first_byte = 10, total = 20 },
          retry = { max_attempts = 2, base_delay = 0.01 },
          endpoints = { { name = "azure", base_url = %q,
                          headers = { ["api-key"] = "gw-upstream-SECRET-0123456789" } } } }
      ]]):format(m.url),
      http = [[
        server {
          listen 127.0.0.1:$PORT;
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(client, { keys = { "gw-caller-key-1" } })
          } }
        }
      ]],
    }
  end)

  teardown(function()
    if n then n:stop() end
    mock.stop_all()
  end)

  it("keeps a header key that a 401 echoes out of its answer to the caller and its log", function()
    local body_file, head_file = os.tmpname(), os.tmpname()
    for _, stream in ipairs { false, true } do
      local doc = cjson.encode { model = "m", stream = stream or nil, messages = { { role = "user", content = "x" } } }
      local code = capture(("curl -s -o %s -D %s -w '%%{http_code}' --max-time 15 -X POST"
        .. " -H 'Authorization: Bearer gw-caller-key-1' -H 'Content-Type: application/json' --data-binary %s %s")
        :format(q(body_file), q(head_file), q(doc), q(n.base .. "/v1/chat/completions")))
      local body, head = read_file(body_file) or "", read_file(head_file) or ""
      assert.is_true(tonumber(code) >= 400, code .. " " .. body)
      local e = cjson.decode(body)
      assert.is_table(e and e.error, body)
      assert.truthy(e.error.message:find("[REDACTED]", 1, true), body)
      assert_no_secret(body, "the gateway's answer")
      assert_no_secret(head, "the gateway's headers")
    end
    os.remove(body_file)
    os.remove(head_file)
    assert.is_true(m:stats().auth_failures >= 2)
    assert_no_secret(n:error_log(), "the error log")
  end)
end)
