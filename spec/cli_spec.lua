-- The `llmrelay batch` CLI (bin/llmrelay) against real mock processes.
-- Every process a test starts is stopped by PID in after_each/teardown.

local mock = require "spec.support.mock"
local cli_support = require "spec.support.cli"
local cjson = require "cjson.safe"

local q, run, capture, alive = mock.quote, mock.run, mock.capture, mock.alive
local LIMIT = cli_support.LIMIT -- seconds any one CLI run may take (coreutils timeout)

local W = cli_support.workdir("llmrelay-cli")
local path, write = W.path, W.write

local function read(p) return mock.read_file(p) end

-- n lines; line i asks for content "msg <i>"
local function input_lines(n, first)
  local t = {}
  for i = first or 1, n do
    t[#t + 1] = string.format(
      '{"custom_id":"req-%d","method":"POST","url":"/v1/chat/completions",' ..
      '"body":{"model":"m","messages":[{"role":"user","content":"msg %d"}],"stop":[]}}', i, i)
  end
  return table.concat(t, "\n") .. "\n"
end

-- env: a string of VAR=value assignments (quoted) or nil -> exit code, stdout, stderr
local function cli(args, env) return cli_support.run(W.dir, args, env) end

local wait_for, wait_rc, lines_in = cli_support.wait_for, cli_support.wait_rc, cli_support.lines_in

-- Starts the CLI in the background (stopped in after_each); returns pid and the
-- file its exit code lands in.
local function cli_bg(args, env, tag) return cli_support.background(W.dir, args, env, tag) end

-- The output file: decoded lines (asserting each is valid JSON, newline-terminated)
-- and the count per custom_id.
local function output(p)
  local text = read(p) or ""
  assert.is_true(text == "" or text:sub(-1) == "\n", "output must end with a newline")
  local docs, ids = {}, {}
  for line in text:gmatch("([^\n]*)\n") do
    local doc = cjson.decode(line)
    assert.is_table(doc, "not a JSON object: " .. line)
    assert.is_string(doc.id)
    docs[#docs + 1] = doc
    if type(doc.custom_id) == "string" then ids[doc.custom_id] = (ids[doc.custom_id] or 0) + 1 end
  end
  return docs, ids
end

local function assert_complete(p, n)
  local docs, ids = output(p)
  assert.equal(n, #docs)
  for i = 1, n do
    assert.equal(1, ids["req-" .. i], "req-" .. i)
  end
  return docs
end

local function content_of(doc)
  local r = doc.response
  local b = type(r) == "table" and r.body
  return type(b) == "table" and b.choices and b.choices[1].message.content or nil
end

describe("llmrelay CLI", function()
  setup(W.make)
  before_each(W.clean)
  after_each(W.stop)
  teardown(W.remove)

  describe("usage", function()
    it("--help and batch --help document everything, exit 0", function()
      local rc, out = cli("--help")
      assert.equal(0, rc)
      assert.matches("batch INPUT.jsonl %-o OUTPUT.jsonl", out)
      rc, out = cli("batch --help")
      assert.equal(0, rc)
      for _, word in ipairs { "%-%-output", "%-%-config", "%-%-endpoint", "%-%-concurrency",
                              "%-%-quiet", "%-%-max%-attempts", "%-%-retry%-failed",
                              "%-%-redis", "%-%-shard", "LLMRELAY_REDIS", "K/N",
                              "LLMRELAY_API_KEY", "custom_id", "cancelled", "130", "Resume",
                              "SIGTERM", "SIGHUP", "143", "regular file", "line_hash" } do
        assert.matches(word, out)
      end
    end)

    it("bad usage is exit 2 with a message", function()
      write(path("in.jsonl"), input_lines(1))
      local cases = {
        "", "frobnicate", "--bogus", "batch", "batch " .. q(path("in.jsonl")),
        "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("o.jsonl")),          -- no endpoint
        "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("o.jsonl")) .. " --endpoint http://127.0.0.1:9/v1 --concurrency 0",
        "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("o.jsonl")) .. " --endpoint http://127.0.0.1:9/v1 --frob",
        "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("in.jsonl")) .. " --endpoint http://127.0.0.1:9/v1",
        "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("o.jsonl")) .. " --endpoint ftp://x",
      }
      for _, args in ipairs(cases) do
        local rc, _, err = cli(args)
        assert.equal(2, rc, args)
        assert.matches("llmrelay", err, 1, true)
      end
      assert.is_nil(read(path("o.jsonl")))
    end)

    it("a missing input file is a clear error, exit 2", function()
      local rc, _, err = cli("batch " .. q(path("nope.jsonl")) .. " -o " .. q(path("o.jsonl")) ..
                             " --endpoint http://127.0.0.1:9/v1")
      assert.equal(2, rc)
      assert.matches("nope.jsonl", err, 1, true)
      assert.matches("No such file", err, 1, true)
    end)

    it("a config file that fails is named in the message, exit 2", function()
      write(path("in.jsonl"), input_lines(1))
      local configs = {
        syntax = "return {",
        raises = "error('boom in config')",
        number = "return 42",
        field = "return { endpoints = { { base_url = 'http://127.0.0.1:9/v1', wieght = 2 } } }",
      }
      for name, text in pairs(configs) do
        local cfg = path("cfg_" .. name .. ".lua")
        write(cfg, text)
        local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("o.jsonl")) ..
                               " -c " .. q(cfg))
        assert.equal(2, rc, name)
        assert.matches("cfg_" .. name .. ".lua", err, 1, true)
      end
      local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("o.jsonl")) ..
                             " -c " .. q(path("missing.lua")))
      assert.equal(2, rc)
      assert.matches("missing.lua", err, 1, true)
      assert.is_nil(read(path("o.jsonl")))
    end)
  end)

  it("runs 300 lines over a dead, a flaky and a healthy endpoint", function()
    local flaky = mock.start { name = "flaky", fail_rate = 0.5, seed = 7 }
    local healthy = mock.start { name = "healthy" }
    local cfg = path("pool.lua")
    write(cfg, string.format([[
      return {
        endpoints = {
          { name = "dead", base_url = "http://127.0.0.1:%d/v1" },
          { name = "flaky", base_url = %q },
          { name = "healthy", base_url = %q },
        },
        retry = { max_attempts = 8, base_delay = 0.01, max_delay = 0.05 },
        breaker = { failure_threshold = 3, cooldown = 5 },
      }]], mock.free_port(), flaky.url, healthy.url))
    write(path("in.jsonl"), input_lines(300))
    local rc, out, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) ..
                             " -c " .. q(cfg) .. " --concurrency 16")
    assert.equal(0, rc, err)
    assert.equal("", out)
    local docs = assert_complete(path("out.jsonl"), 300)
    local seen_ids = {}
    for _, d in ipairs(docs) do
      assert.equal(cjson.null, d.error)
      assert.equal(200, d.response.status_code)
      assert.equal("echo: msg " .. d.custom_id:match("%d+"), content_of(d))
      assert.is_nil(seen_ids[d.id])
      seen_ids[d.id] = true
    end
    -- the summary: per-endpoint lines and token usage
    assert.matches("300 ok", err, 1, true)
    assert.matches("dead", err, 1, true)
    assert.matches("tokens", err, 1, true)
    assert.matches("open", err, 1, true)   -- the dead endpoint's breaker
  end)

  it("bad lines get error lines and never stop the run; exit 1; a re-run adds nothing", function()
    local m = mock.start { name = "ok" }
    local lines = {
      '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"one"}]}}',
      '{not json',
      '{"method":"POST","url":"/v1/chat/completions","body":{"messages":[]}}',
      '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"dup"}]}}',
      '{"custom_id":"b","method":"POST","url":"/v1/images/generations","body":{"messages":[]}}',
      '{"custom_id":"c","method":"GET","url":"/v1/chat/completions","body":{"messages":[]}}',
      '{"custom_id":"d","method":"POST","url":"/chat/completions","body":"hi"}',
      '{"custom_id":"e","method":"POST","url":"/chat/completions","body":{"model":"x"}}',
      '{"custom_id":"f","method":"POST","url":"/chat/completions","body":{"messages":[{"role":"user","content":"two"}]}}',
    }
    write(path("in.jsonl"), table.concat(lines, "\n") .. "\n")
    local args = "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) .. " --endpoint " .. m.url
    local rc, _, err = cli(args)
    assert.equal(1, rc, err)
    local docs = output(path("out.jsonl"))
    assert.equal(#lines, #docs)
    local by_line, ok = {}, {}
    for _, d in ipairs(docs) do
      if d.error ~= cjson.null then
        assert.equal("invalid_request", d.error.code)
        assert.equal(cjson.null, d.response)
        assert.matches("^line " .. string.format("%d", d.error.line) .. ": ", d.error.message)
        by_line[d.error.line] = d
      else
        ok[d.custom_id] = content_of(d)
      end
    end
    assert.same({ a = "echo: one", f = "echo: two" }, ok)
    assert.equal(cjson.null, by_line[2].custom_id)
    assert.matches("invalid JSON", by_line[2].error.message)
    assert.equal(cjson.null, by_line[3].custom_id)
    assert.equal("a", by_line[4].custom_id)
    assert.matches("duplicate", by_line[4].error.message)
    assert.matches("url", by_line[5].error.message)
    assert.matches("method", by_line[6].error.message)
    assert.matches("body", by_line[7].error.message)
    assert.matches("messages", by_line[8].error.message)
    assert.equal(2, m:stats().requests)

    rc = cli(args)
    assert.equal(1, rc)
    assert.equal(#lines, #output(path("out.jsonl")))
    assert.equal(2, m:stats().requests)
  end)

  it("resumes a partial output with a torn last line and a cancelled answer", function()
    local m = mock.start { name = "first" }
    write(path("in.jsonl"), input_lines(50))
    local args = "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) .. " --concurrency 1"
    assert.equal(0, (cli(args .. " --endpoint " .. m.url)))
    local full = read(path("out.jsonl"))
    local kept, n = {}, 0
    for line in full:gmatch("[^\n]+") do
      n = n + 1
      if n <= 20 then kept[#kept + 1] = line end
    end
    local torn = full:match("^" .. ("[^\n]*\n"):rep(20) .. "([^\n]*)\n")
    local cancelled = '{"id":"batch_req_x","custom_id":"req-40","response":null,' ..
                      '"error":{"code":"cancelled","message":"cancelled"}}'
    write(path("out.jsonl"), table.concat(kept, "\n") .. "\n" .. cancelled .. "\n" .. torn:sub(1, 50))

    local m2 = mock.start { name = "second" }
    local rc, _, err = cli(args .. " --endpoint " .. m2.url)
    assert.equal(0, rc, err)
    assert.matches("torn", err, 1, true)
    local docs = assert_complete(path("out.jsonl"), 50)
    for _, d in ipairs(docs) do assert.equal(cjson.null, d.error) end
    assert.equal(30, m2:stats().requests)
    -- the kept lines are untouched, in place
    assert.equal(table.concat(kept, "\n"), read(path("out.jsonl")):sub(1, #table.concat(kept, "\n")))
  end)

  it("resume keys bad lines by line number and requests by custom_id (duplicates)", function()
    local m = mock.start { name = "dups" }
    local req = '{"custom_id":"%s","method":"POST","url":"/chat/completions",' ..
                '"body":{"messages":[{"role":"user","content":"%s"}]}}'
    write(path("in.jsonl"), table.concat({ req:format("a", "first"), req:format("a", "second"),
                                           req:format("b", "third") }, "\n") .. "\n")
    -- an earlier run wrote only the duplicate's error line, then died
    write(path("out.jsonl"), '{"id":"batch_req_1","custom_id":"a","response":null,"error":' ..
          '{"code":"invalid_request","message":"line 2: duplicate custom_id","line":2}}\n')
    local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) ..
                           " --endpoint " .. m.url)
    assert.equal(1, rc, err)
    local docs = output(path("out.jsonl"))
    assert.equal(3, #docs)
    local got = {}
    for _, d in ipairs(docs) do
      got[#got + 1] = d.custom_id .. "=" .. (content_of(d) or d.error.code)
    end
    table.sort(got)
    assert.same({ "a=echo: first", "a=invalid_request", "b=echo: third" }, got)
    assert.equal(2, m:stats().requests)
  end)

  it("--retry-failed sends failed requests again; without it they stay answered", function()
    local bad = mock.start { name = "bad", fail_rate = 1 }
    write(path("in.jsonl"), input_lines(5))
    local args = "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) .. " --max-attempts 1"
    assert.equal(1, (cli(args .. " --endpoint " .. bad.url)))
    local docs = output(path("out.jsonl"))
    assert.equal(5, #docs)
    for _, d in ipairs(docs) do
      assert.equal("server_error", d.error.code)
      assert.equal(500, d.response.status_code)
      assert.is_table(d.response.body)
    end
    local good = mock.start { name = "good" }
    assert.equal(1, (cli(args .. " --endpoint " .. good.url)))
    assert.equal(0, good:stats().requests)
    local rc, _, err = cli(args .. " --retry-failed --endpoint " .. good.url)
    assert.equal(0, rc, err)
    docs = assert_complete(path("out.jsonl"), 5)
    for _, d in ipairs(docs) do assert.equal(cjson.null, d.error) end
    assert.equal(5, good:stats().requests)
  end)

  it("first SIGINT drains (exit 130, whole lines); a re-run completes; same after kill -9", function()
    local slow = mock.start { name = "slow", latency_ms = 20 }
    local fast = mock.start { name = "fast" }
    write(path("in.jsonl"), input_lines(2000))
    for _, sig in ipairs { "INT", "KILL" } do
      local outp = path("out_" .. sig .. ".jsonl")
      local args = "batch " .. q(path("in.jsonl")) .. " -o " .. q(outp) .. " --concurrency 20"
      local pid, rcf = cli_bg(args .. " --endpoint " .. slow.url, nil, "bg_" .. sig)
      -- mid-batch: some answers written (about 40 of 2000 take 40 ms at 20 in flight)
      assert.is_true(wait_for(function() return lines_in(outp) >= 40 end, 20), "no output written")
      run("kill -" .. sig .. " " .. pid)
      local rc = wait_rc(rcf, 10)
      assert.equal(sig == "INT" and 130 or 137, rc)
      local docs, ids = output(outp)
      assert.is_true(#docs > 0 and #docs < 2000, "lines: " .. #docs)
      for id, c in pairs(ids) do assert.equal(1, c, id) end
      if sig == "INT" then
        for _, d in ipairs(docs) do assert.equal(cjson.null, d.error) end
        assert.matches("interrupted", read(path("bg_INT.err")), 1, true)
      end
      local rc2, _, err = cli(args .. " --endpoint " .. fast.url)
      assert.equal(0, rc2, err)
      assert_complete(outp, 2000)
    end
  end)

  -- INT then INT; TERM then HUP: a second signal of any of the three kinds cancels
  for _, case in ipairs { { "INT", "INT", 130 }, { "TERM", "HUP", 143 } } do
    local first, second, code = case[1], case[2], case[3]
    it("a second signal (SIG" .. first .. " then SIG" .. second .. ") records in-flight requests as " ..
       "cancelled; a re-run completes them", function()
      local hang = mock.start { name = "hang", latency_ms = 5000 }
      write(path("in.jsonl"), input_lines(10))
      local args = "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) .. " --concurrency 4"
      local pid, rcf = cli_bg(args .. " --endpoint " .. hang.url, nil, "bg2")
      assert.is_true(wait_for(function() return hang:stats().requests >= 4 end, 20), "no requests")
      run("kill -" .. first .. " " .. pid)
      -- draining: still waiting for its in-flight requests
      assert.is_true(wait_for(function()
        return (read(path("bg2.err")) or ""):find("finishing 4 requests", 1, true) ~= nil
      end, 20), "no drain message")
      assert.is_true(alive(pid))
      run("kill -" .. second .. " " .. pid)
      assert.equal(code, wait_rc(rcf, 10))
      local docs = output(path("out.jsonl"))
      assert.equal(4, #docs)
      for _, d in ipairs(docs) do assert.equal("cancelled", d.error.code) end

      local fast = mock.start { name = "fast" }
      local rc2, _, err = cli(args .. " --endpoint " .. fast.url)
      assert.equal(0, rc2, err)
      docs = assert_complete(path("out.jsonl"), 10)
      for _, d in ipairs(docs) do assert.equal(cjson.null, d.error) end
      assert.equal(10, fast:stats().requests)
    end)
  end

  it("never prints a key, from LLMRELAY_API_KEY or from the config, even when a 401 echoes it", function()
    local m = mock.start { name = "auth", auth_key = "sk-the-right-one" }
    write(path("in.jsonl"), input_lines(3))
    local secret = "sk-env-SECRET-4242"
    local rc, out, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("env.jsonl")) ..
                             " --endpoint " .. m.url .. " --max-attempts 1",
                             "LLMRELAY_API_KEY=" .. q(secret))
    assert.equal(1, rc, err)
    local text = read(path("env.jsonl"))
    for _, s in ipairs { out, err, text } do assert.is_nil(s:find("SECRET", 1, true)) end
    local docs = output(path("env.jsonl"))
    assert.equal(3, #docs)
    for _, d in ipairs(docs) do
      assert.equal("http", d.error.code)
      assert.equal(401, d.response.status_code)
    end
    assert.equal(3, m:stats().auth_failures)

    local cfg = path("keyed.lua")
    write(cfg, string.format([[return { endpoints = { { base_url = %q, api_key = "sk-cfg-SECRET-777" } },
                                        retry = { max_attempts = 1 } }]], m.url))
    rc, out, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("cfg.jsonl")) .. " -c " .. q(cfg))
    assert.equal(1, rc, err)
    text = read(path("cfg.jsonl"))
    for _, s in ipairs { out, err, text } do assert.is_nil(s:find("SECRET", 1, true)) end
    assert.equal(3, #output(path("cfg.jsonl")))
  end)

  it("--quiet prints nothing on success", function()
    local m = mock.start { name = "q" }
    write(path("in.jsonl"), input_lines(5))
    local rc, out, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) ..
                             " --quiet --endpoint " .. m.url)
    assert.equal(0, rc)
    assert.equal("", out)
    assert.equal("", err)
    assert_complete(path("out.jsonl"), 5)
  end)
  describe("output checks", function()
    -- runs `bash -c script` under a time limit; returns exit code, stdout, stderr
    local function bash(script)
      local out, err = path("stdout"), path("stderr")
      local rc = capture(string.format("timeout %d bash -c %s >%s 2>%s; echo $?", LIMIT, q(script),
        q(out), q(err)))
      return tonumber(rc:match("%d+")), read(out) or "", read(err) or ""
    end

    it("refuses an output that is the input under another name (path, symlink, hard link)", function()
      local m = mock.start { name = "same" }
      local input = input_lines(20)
      write(path("same.jsonl"), input)
      run("ln -sf " .. q(path("same.jsonl")) .. " " .. q(path("link.jsonl")))
      run("ln -f " .. q(path("same.jsonl")) .. " " .. q(path("hard.jsonl")))
      for _, o in ipairs { W.dir .. "/./same.jsonl", path("link.jsonl"), path("hard.jsonl") } do
        local rc, _, err = cli("batch " .. q(path("same.jsonl")) .. " -o " .. q(o) .. " --endpoint " .. m.url)
        assert.equal(2, rc, o .. ": " .. err)
        assert.matches("is the input file", err, 1, true)
        assert.is_nil(err:find("resuming", 1, true))
      end
      assert.equal(input, read(path("same.jsonl")))
      assert.equal(0, m:stats().requests)
      run("rm -f " .. q(path("link.jsonl")) .. " " .. q(path("hard.jsonl")))
    end)

    it("refuses an existing output with no output line (a copy of the input), untouched", function()
      local m = mock.start { name = "copy" }
      local input = input_lines(20)
      write(path("in.jsonl"), input)
      write(path("copy.jsonl"), input)
      local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("copy.jsonl")) ..
                             " --endpoint " .. m.url)
      assert.equal(2, rc, err)
      assert.matches("not an llmrelay output file", err, 1, true)
      assert.equal(input, read(path("copy.jsonl")))
      assert.equal(0, m:stats().requests)
    end)

    it("counts only lines shaped as output lines when resuming", function()
      local m = mock.start { name = "shape" }
      write(path("in.jsonl"), input_lines(5))
      local args = " -o " .. q(path("out.jsonl")) .. " --endpoint " .. m.url
      assert.equal(0, (cli("batch " .. q(path("in.jsonl")) .. args)))
      -- lines with custom_ids that are not answers: input lines, no id, no response,
      -- a response without status_code, an error without message
      local fake = {
        input_lines(6, 6):sub(1, -2),
        '{"custom_id":"req-7","error":null}',
        '{"id":"x","custom_id":"req-8","error":null}',
        '{"id":"x","custom_id":"req-9","response":{"body":{}},"error":null}',
        '{"id":"x","custom_id":"req-10","response":null,"error":{"code":"http"}}',
      }
      write(path("out.jsonl"), read(path("out.jsonl")) .. table.concat(fake, "\n") .. "\n")
      write(path("in.jsonl"), input_lines(10))
      local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. args)
      assert.equal(0, rc, err)
      assert.matches("resuming: 5 lines", err, 1, true)
      assert.matches("dropped 5 lines that are not output lines", err, 1, true)
      local docs = assert_complete(path("out.jsonl"), 10)
      for _, d in ipairs(docs) do assert.equal(cjson.null, d.error) end
      assert.equal(10, m:stats().requests)
    end)

    it("the output must be a regular file: /dev/stdout | cat, /dev/full, a directory, '-'", function()
      local m = mock.start { name = "dev" }
      write(path("in.jsonl"), input_lines(3))
      local base = "bin/llmrelay batch " .. q(path("in.jsonl")) .. " --endpoint " .. m.url .. " -o "
      -- a pipe: the resume scan would read its own output (it hung)
      local rc, out, err = bash("set -o pipefail; " .. base .. "/dev/stdout | cat")
      assert.equal(2, rc, err)
      assert.equal("", out)
      assert.matches("must be a regular file", err, 1, true)
      -- a device that never ends (it read until killed for memory): capped here
      rc, _, err = bash("ulimit -v 2000000; " .. base .. "/dev/full")
      assert.equal(2, rc, err)
      assert.matches("must be a regular file", err, 1, true)
      rc, _, err = bash(base .. q(W.dir))
      assert.equal(2, rc, err)
      assert.matches("is a directory", err, 1, true)
      rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " --endpoint " .. m.url .. " -o -")
      assert.equal(2, rc, err)
      assert.matches("stdout", err, 1, true)
      -- and the input: a pipe is read twice (count, then the run), so it must be a file
      rc, _, err = bash("bin/llmrelay batch <(cat " .. q(path("in.jsonl")) .. ") -o " ..
                        q(path("p.jsonl")) .. " --endpoint " .. m.url)
      assert.equal(2, rc, err)
      assert.matches("input must be a regular file", err, 1, true)
      assert.is_nil(read(path("p.jsonl")))
      assert.equal(0, m:stats().requests)
    end)

    it("a failed write ends the run with a clear message (exit 3); a re-run completes", function()
      local m = mock.start { name = "full" }
      write(path("in.jsonl"), input_lines(50))
      local args = "bin/llmrelay batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) ..
                   " --concurrency 4 --endpoint " .. m.url
      -- a 4 KiB file size limit (EFBIG once reached) stands in for a full disk
      local rc, _, err = bash("trap '' XFSZ; ulimit -f 4; " .. args)
      assert.equal(3, rc, err)
      assert.matches("cannot write to " .. path("out.jsonl"), err, 1, true)
      assert.matches("File too large", err, 1, true)
      local sent = m:stats().requests
      assert.is_true(sent < 50, "kept sending after the write failed: " .. sent)
      -- the summary counts only the lines in the file, and says what was lost
      local whole = lines_in(path("out.jsonl"))
      assert.matches("this run: " .. whole .. " ok", err, 1, true)
      assert.matches("not written: %d+ answers", err)
      rc, _, err = bash(args)
      assert.equal(0, rc, err)
      assert_complete(path("out.jsonl"), 50)
    end)
  end)

  describe("bad lines and resume", function()
    local req = '{"custom_id":"%s","method":"%s","url":"/chat/completions",' ..
                '"body":{"messages":[{"role":"user","content":"%s"}]}}'

    it("a bad line fixed between runs is read again and sent; an unchanged one is not rewritten", function()
      local m = mock.start { name = "fix" }
      local lines = { req:format("a", "POST", "one"), req:format("b", "GET", "two"),
                      req:format("c", "POST", "three"), "{not json" }
      write(path("in.jsonl"), table.concat(lines, "\n") .. "\n")
      local args = "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) .. " --endpoint " .. m.url
      assert.equal(1, (cli(args)))
      local docs = output(path("out.jsonl"))
      assert.equal(4, #docs)
      for _, d in ipairs(docs) do
        if d.error ~= cjson.null then assert.matches("^%x+$", d.error.line_hash) end
      end
      assert.equal(2, m:stats().requests)
      -- an unchanged bad line keeps its one answer
      assert.equal(1, (cli(args)))
      assert.equal(4, #output(path("out.jsonl")))
      -- line 2 fixed, line 4 broken differently
      lines[2] = req:format("b", "POST", "two")
      lines[4] = "[1, 2]"
      write(path("in.jsonl"), table.concat(lines, "\n") .. "\n")
      local rc, _, err = cli(args)
      assert.equal(1, rc, err)
      assert.matches("will read 2 changed bad input lines again", err, 1, true)
      docs = output(path("out.jsonl"))
      assert.equal(4, #docs)
      local got = {}
      for _, d in ipairs(docs) do
        got[#got + 1] = (d.custom_id ~= cjson.null and d.custom_id or "-") .. "=" ..
                        (content_of(d) or d.error.message)
      end
      table.sort(got)
      assert.same({ "-=line 4: expected a JSON object", "a=echo: one", "b=echo: two", "c=echo: three" }, got)
      assert.equal(3, m:stats().requests)
      -- all fixed: exit 0, nothing sent again
      lines[4] = req:format("d", "POST", "four")
      write(path("in.jsonl"), table.concat(lines, "\n") .. "\n")
      rc, _, err = cli(args)
      assert.equal(0, rc, err)
      docs = output(path("out.jsonl"))
      assert.equal(4, #docs)
      for _, d in ipairs(docs) do assert.equal(cjson.null, d.error) end
      assert.equal(4, m:stats().requests)
    end)

    it("a UTF-8 BOM before line 1 is ignored: line 1 keeps its custom_id", function()
      local m = mock.start { name = "bom" }
      write(path("in.jsonl"), "\239\187\191" .. input_lines(3))
      local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) ..
                             " --endpoint " .. m.url)
      assert.equal(0, rc, err)
      local docs = assert_complete(path("out.jsonl"), 3)
      for _, d in ipairs(docs) do assert.equal(cjson.null, d.error) end
      assert.equal(3, m:stats().requests)
    end)
  end)

  describe("SIGTERM and SIGHUP", function()
    for _, case in ipairs { { "TERM", 143 }, { "HUP", 129 } } do
      local sig, code = case[1], case[2]
      it("SIG" .. sig .. " drains like Ctrl-C; a resume pays for no request twice", function()
        local n = 200
        local m = mock.start { name = "slow", latency_ms = 200 }
        write(path("in.jsonl"), input_lines(n))
        local args = "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) ..
                     " --concurrency 10 --endpoint " .. m.url
        local pid, rcf = cli_bg(args, nil, "sig_" .. sig)
        assert.is_true(wait_for(function() return m:stats().requests >= 20 end, 20), "no requests")
        run("kill -" .. sig .. " " .. pid)
        assert.equal(code, wait_rc(rcf, 20))
        local err = read(path("sig_" .. sig .. ".err"))
        assert.matches("interrupted (SIG" .. sig .. "): finishing", err, 1, true)
        local docs, ids = output(path("out.jsonl"))
        assert.is_true(#docs >= 20 and #docs < n, "lines: " .. #docs)
        for _, d in ipairs(docs) do assert.equal(cjson.null, d.error) end
        for id, c in pairs(ids) do assert.equal(1, c, id) end
        local rc, _, err2 = cli(args)
        assert.equal(0, rc, err2)
        assert_complete(path("out.jsonl"), n)
        local st = m:stats()
        assert.equal(n, st.requests)
        assert.equal(n, st.status["200"])
      end)
    end

    it("under nohup SIGHUP stays ignored; SIGTERM still drains", function()
      local m = mock.start { name = "slow", latency_ms = 200 }
      write(path("in.jsonl"), input_lines(100))
      local args = "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("out.jsonl")) ..
                   " --concurrency 2 --endpoint " .. m.url
      local pid, rcf = cli_bg(args, "nohup", "nohup")
      assert.is_true(wait_for(function() return m:stats().requests >= 2 end, 20), "no requests")
      run("kill -HUP " .. pid)
      assert.is_true(alive(pid))
      -- had SIGHUP counted, it would be the first signal (129, "interrupted (SIGHUP)")
      -- and this SIGTERM the second, cancelling
      run("kill -TERM " .. pid)
      assert.equal(143, wait_rc(rcf, 20))
      local err = read(path("nohup.err"))
      assert.matches("interrupted (SIGTERM)", err, 1, true)
      assert.is_nil(err:find("interrupted (SIGHUP)", 1, true))
      for _, d in ipairs(output(path("out.jsonl"))) do assert.equal(cjson.null, d.error) end
    end)
  end)
end)
