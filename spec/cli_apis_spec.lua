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

  it("900 mixed lines: each answered 200 with its api's object, each path hit 300 times, request_id the "
     .. "upstream's; a second run on the same output exits 2 at once naming the first", function()
    local m = mock.start { name = "apis", latency_ms = 250 }
    local apis = { "chat", "embeddings", "responses" }
    local t, api_of = {}, {}
    for i = 1, 900 do
      local api = apis[(i - 1) % 3 + 1]
      local cid = api .. "-" .. i
      t[i], api_of[cid] = line(api, cid, "q" .. i), api
    end
    write(path("in.jsonl"), table.concat(t, "\n") .. "\n")
    local args = "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) .. " --endpoint " .. m.url
    local pid, rcf = cli_support.background(W.dir, args .. " --quiet", nil, "first")
    assert.truthy(cli_support.wait_for(function() return read(path("out.jsonl.lock")) end, 10))
    local t0 = os.time()
    local rc, _, err = cli(args)
    assert.equal(2, rc, err)
    assert.truthy(os.time() - t0 <= 5)
    assert.matches("pid " .. pid, err, 1, true)
    assert.equal(0, cli_support.wait_rc(rcf, 25), read(path("first.err")))
    local docs = output(path("out.jsonl"))
    assert.equal(900, #docs)
    local seen, rids = {}, {}
    for _, d in ipairs(docs) do
      assert.is_nil(seen[d.custom_id], d.custom_id)
      seen[d.custom_id] = true
      assert.equal(cjson.null, d.error)
      assert.equal(200, d.response.status_code)
      assert.equal(OBJECT[api_of[d.custom_id]], d.response.body.object)
      local rid = d.response.request_id
      assert.matches("^apis%-%d+$", rid)
      assert.is_nil(rids[rid], rid)
      rids[rid] = true
    end
    local paths = m:stats().paths
    assert.equal(300, paths["/v1/chat/completions"])
    assert.equal(300, paths["/v1/embeddings"])
    assert.equal(300, paths["/v1/responses"])
    assert.is_nil(read(path("out.jsonl.lock")))   -- released at the end
  end)

  it("urls without /v1 and completions; a bad body names its line and the api's field; nothing bad is sent",
     function()
    local m = mock.start { name = "v" }
    local lines = {
      line("completions", "c1", "p1", "/completions"),
      line("embeddings", "e1", "x", "/embeddings"),
      '{"custom_id":"e2","method":"POST","url":"/v1/embeddings","body":{"model":"m"}}',
      '{"custom_id":"r2","method":"POST","url":"/v1/responses","body":{"model":"m","messages":[]}}',
      '{"custom_id":"p2","method":"POST","url":"/v1/completions","body":{"model":"m","input":"x"}}',
      '{"custom_id":"h2","method":"POST","url":"/v1/chat/completions","body":{"model":"m","input":"x"}}',
      '{"custom_id":"u2","method":"POST","url":"/v1/images/generations","body":{"model":"m"}}',
      '{"custom_id":"m2","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}',
    }
    write(path("in.jsonl"), table.concat(lines, "\n") .. "\n")
    local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) .. " --endpoint " .. m.url)
    assert.equal(1, rc, err)
    local by = {}
    for _, d in ipairs(output(path("out.jsonl"))) do by[d.custom_id] = d end
    assert.equal("text_completion", by.c1.response.body.object)
    assert.equal("list", by.e1.response.body.object)
    assert.equal('line 3: body must have an "input" (for /v1/embeddings)', by.e2.error.message)
    assert.equal('line 4: body must have an "input" (for /v1/responses)', by.r2.error.message)
    assert.equal('line 5: body must have a "prompt" (for /v1/completions)', by.p2.error.message)
    assert.equal('line 6: body must have a "messages" array', by.h2.error.message)
    assert.matches('^line 7: url must be "/v1/chat/completions", "/v1/embeddings"', by.u2.error.message)
    assert.equal("line 8: body: messages must be a non-empty array of messages (got an empty array)",
                 by.m2.error.message)
    assert.equal(8, by.m2.error.line)
    local paths = m:stats().paths
    assert.same({ ["/v1/completions"] = 1, ["/v1/embeddings"] = 1 }, paths)
  end)

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
    local lines = { line("chat", "a", "one"), line("responses", "b", "two"),
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

  it("--model sets the body's model once: rewritten in place, as is when it already says it, or put first", function()
    local jsonl = require "llmrelay.cli_jsonl"
    local function body(b, model)
      return jsonl.parse_input('{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":' .. b .. "}",
                               model).body
    end
    local msgs = '"messages":[{"role":"user","content":"hi"}]'
    assert.equal('{"model":"m",' .. msgs .. "}", body('{"model":"x",' .. msgs .. "}", "m"))
    assert.equal('{"model":"m",' .. msgs .. "}", body('{"model":"m",' .. msgs .. "}", "m"))
    assert.equal('{"model":"m",' .. msgs .. "}", body("{" .. msgs .. "}", "m"))
    assert.equal('{"model":"m", ' .. msgs .. "}", body("{ " .. msgs .. "}", "m"))
  end)

  it("--errors takes the failed requests and bad lines; a resume reads both files; `-` reads standard input, "
     .. "spooled next to the output and removed once every line is answered", function()
    local m = mock.start { name = "e", bad_marker = "REFUSE", bad_status = 400 }
    local lines = { line("chat", "a", "one"), line("embeddings", "b", "REFUSE"), "{not json",
                    line("responses", "d", "four") }
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
    assert.is_nil(read(path("err.jsonl.lock")))
    local before = m:stats().requests
    rc, _, err = cli("batch " .. q(path("in.jsonl")) .. args)
    assert.equal(1, rc, err)
    assert.matches("4 of 4 input lines answered", err, 1, true)
    assert.equal(before, m:stats().requests)
    assert.equal(2, #output(path("out.jsonl")))
    assert.equal(2, #output(path("err.jsonl")))
  end)

  it("a run on standard input stopped early keeps the spool; resuming from it answers each line once and "
     .. "removes it", function()
    local m = mock.start { name = "slow", latency_ms = 5000 }
    local t = {}
    for i = 1, 6 do t[i] = line(i % 2 == 0 and "embeddings" or "chat", "s" .. i, "q" .. i) end
    write(path("in.jsonl"), table.concat(t, "\n") .. "\n")
    local out, spool = path("out.jsonl"), path("out.jsonl.input.jsonl")
    local pid, rcf = cli_support.background(W.dir, "batch - -o " .. q(out) .. " --endpoint " .. m.url
      .. " <" .. q(path("in.jsonl")), nil, "stdin")
    assert.truthy(cli_support.wait_for(function() return read(spool) == read(path("in.jsonl")) end, 10))
    mock.run("kill -TERM " .. pid .. "; sleep 0.2; kill -TERM " .. pid)
    assert.equal(143, cli_support.wait_rc(rcf, 10))
    assert.matches("standard input is kept in " .. spool, read(path("stdin.err")), 1, true)
    assert.equal(read(path("in.jsonl")), read(spool))
    m:stop()
    local m2 = mock.start { name = "fast" }
    local rc, _, err = cli("batch " .. q(spool) .. " -o " .. q(out) .. " --endpoint " .. m2.url)
    assert.equal(0, rc, err)
    local seen = {}
    for _, d in ipairs(output(out)) do
      if d.error == cjson.null then
        assert.is_nil(seen[d.custom_id])
        seen[d.custom_id] = true
      end
    end
    for i = 1, 6 do assert.truthy(seen["s" .. i]) end
    assert.is_nil(read(spool))
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
