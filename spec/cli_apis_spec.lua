-- `llmrelay batch` over every Batch API url (chat, embeddings, Responses,
-- completions, mixed in one file), its output lock, --model, --rpm/--tpm
-- and --summary-json: the real CLI process against the project's mock.
-- Every process a test starts is stopped by PID in after_each/teardown.

local mock = require "spec.support.mock"
local cli_support = require "spec.support.cli"
local cjson = require "cjson.safe"
local cli_mod = require "llmrelay.cli"

local q, read = mock.quote, mock.read_file

local W = cli_support.workdir("llmrelay-apis")
local path, write = W.path, W.write

local function cli(args, env) return cli_support.run(W.dir, args, env) end

local function output(p)
  local docs = {}
  for line in (read(p) or ""):gmatch("[^\n]+") do docs[#docs + 1] = assert(cjson.decode(line), line) end
  return docs
end

local URL = { chat = "/v1/chat/completions", embeddings = "/v1/embeddings", responses = "/v1/responses",
              completions = "/v1/completions" }
local OBJECT = { chat = "chat.completion", embeddings = "list", responses = "response",
                 completions = "text_completion" }

local function line(api, cid, text, url)
  local body
  if api == "chat" then
    body = { model = "m", messages = { { role = "user", content = text } } }
  elseif api == "completions" then
    body = { model = "m", prompt = text }
  else
    body = { model = "m", input = text }
  end
  return cjson.encode { custom_id = cid, method = "POST", url = url or URL[api], body = body }
end

describe("llmrelay batch over every api", function()
  setup(W.make)
  before_each(W.clean)
  after_each(W.stop)
  teardown(W.remove)

  it("a lock left by a run killed with SIGKILL is taken over; every line is answered exactly once", function()
    local m = mock.start { name = "k", latency_ms = 3000 }
    local t = {}
    for i = 1, 20 do t[i] = line("chat", "k" .. i, "q" .. i) end
    write(path("in.jsonl"), table.concat(t, "\n") .. "\n")
    local args = "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) .. " --endpoint " .. m.url
    local pid = cli_support.background(W.dir, args .. " --quiet", nil, "killed")
    assert.truthy(cli_support.wait_for(function() return read(path("out.jsonl.lock")) end, 10))
    mock.run("kill -KILL " .. pid)
    assert.truthy(cli_support.wait_for(function() return not mock.alive(pid) end, 5))
    assert.matches("^" .. pid, read(path("out.jsonl.lock")))   -- the file stays, its lock does not
    m:stop()
    local m2 = mock.start { name = "k2" }
    local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) .. " --endpoint " .. m2.url)
    assert.equal(0, rc, err)
    local seen = {}
    for _, d in ipairs(output(path("out.jsonl"))) do
      assert.is_nil(seen[d.custom_id])
      seen[d.custom_id] = true
    end
    for i = 1, 20 do assert.truthy(seen["k" .. i]) end
  end)

  it("--model overrides every body's model; --summary-json writes the summary for machines", function()
    local m = mock.start { name = "s" }
    local lines = { line("chat", "a", "one"), line("chat", "b", "two"),
                    '{"custom_id":"c","method":"POST","url":"/chat/completions","body":{"messages":[{"role":"user","content":"x"}]}}' }
    write(path("in.jsonl"), table.concat(lines, "\n") .. "\n")
    local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) .. " --endpoint "
      .. m.url .. " --model other-model --summary-json " .. q(path("sum.json")))
    assert.equal(0, rc, err)
    for _, d in ipairs(output(path("out.jsonl"))) do
      assert.equal("other-model", d.response.body.model)
    end
    local s = assert(cjson.decode(read(path("sum.json"))))
    assert.equal(0, s.exit_code)
    assert.equal(3, s.lines)
    assert.equal(3, s.answered)
    assert.equal(3, s.this_run.ok)
    assert.equal(0, s.this_run.failed)
    assert.equal(1, #s.endpoints)
    assert.equal(3, s.endpoints[1].ok)
    assert.truthy(s.tokens.total > 0)
    assert.equal(path("out.jsonl"), s.output)
  end)

  it("--errors takes the failed requests and bad lines; a resume reads both files; `-` reads standard input, "
     .. "spooled next to the output and removed once every line is answered", function()
    local m = mock.start { name = "e", bad_marker = "REFUSE", bad_status = 400 }
    local lines = { line("chat", "a", "one"), line("chat", "b", "REFUSE"), "{not json",
                    line("chat", "d", "four") }
    write(path("in.jsonl"), table.concat(lines, "\n") .. "\n")
    local args = " -o " .. q(path("out.jsonl")) .. " --errors " .. q(path("err.jsonl")) .. " --endpoint " .. m.url
    local rc, _, err = cli("batch - " .. args .. " <" .. q(path("in.jsonl")))
    assert.equal(1, rc, err)
    local ok, bad = output(path("out.jsonl")), output(path("err.jsonl"))
    assert.equal(2, #ok)
    for _, d in ipairs(ok) do assert.equal(200, d.response.status_code) end
    assert.equal(2, #bad)
    for _, d in ipairs(bad) do assert.are_not.equal(cjson.null, d.error) end
    assert.is_nil(read(path("out.jsonl.input.jsonl")))
    assert.is_nil(read(path("out.jsonl.lock")))
    local before = m:stats().requests
    rc, _, err = cli("batch " .. q(path("in.jsonl")) .. args)
    assert.equal(1, rc, err)
    assert.matches("4 of 4 input lines answered", err, 1, true)
    assert.equal(before, m:stats().requests)
    assert.equal(2, #output(path("out.jsonl")))
    assert.equal(2, #output(path("err.jsonl")))
  end)

  it("--rpm and --tpm apply to every endpoint of the pool", function()
    local o = assert(cli_mod.parse_batch_args({ "batch", "in.jsonl", "-o", "out.jsonl", "--endpoint", "http://a/v1",
      "--endpoint", "http://b/v1", "--rpm", "120", "--tpm", "50000" }, 2))
    local cfg = assert(cli_mod.client_config(o, function() return nil end))
    for i = 1, 2 do
      assert.equal(120, cfg.endpoints[i].rpm)
      assert.equal(50000, cfg.endpoints[i].tpm)
    end
    assert.is_nil(cli_mod.parse_batch_args({ "batch", "in.jsonl", "-o", "o", "--endpoint", "http://a/v1",
      "--rpm", "0" }, 2))
  end)
end)
