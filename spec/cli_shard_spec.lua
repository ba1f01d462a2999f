-- `llmrelay batch --shard K/N` and `--redis URL` (lua/llmrelay/cli_fleet.lua),
-- with the real CLI process against the project's mock. Lua 5.4 only (the
-- spec's own hash uses 5.4's 64-bit integers). Every process a test starts
-- is stopped by PID in after_each/teardown.

local mock = require "spec.support.mock"
local cli_support = require "spec.support.cli"
local cjson = require "cjson.safe"
local fleet = require "llmrelay.cli_fleet"

local q, run, capture = mock.quote, mock.run, mock.capture
local read = mock.read_file

local W = cli_support.workdir("llmrelay-shard")
local path, write = W.path, W.write
local N_LINES = 200

local function cli(args, env) return cli_support.run(W.dir, args, env) end

---------------------------------------------------------------------------
-- The partition as the README defines it, written again here from the
-- definition: the 64-bit FNV-1a of the hex digest of the custom_id's 64-bit
-- FNV-1a, mod N; by line number when the line names no custom_id; 0 is N.

local function fnv64(s)
  local h = 0xcbf29ce484222325
  for i = 1, #s do h = (h ~ s:byte(i)) * 0x100000001b3 end
  return h
end

local function umod(h, n) return ((h >> 1) % n * 2 + (h & 1)) % n end

local function expected_shard(n, cid, lineno)
  local r = cid and umod(fnv64(string.format("%016x", fnv64(cid))), n) or lineno % n
  return r == 0 and n or r
end

---------------------------------------------------------------------------
-- The input: N_LINES lines, requests req-<i> but for five bad lines, two of
-- which name no custom_id (sharded by line number) and one repeats req-5.

local REQ = '{"custom_id":"%s","method":"%s","url":"/v1/chat/completions",' ..
            '"body":{"model":"m","messages":[{"role":"user","content":"msg %d"}]}}'
local BAD = {
  [37] = "{not json",
  [88] = REQ:format("req-5", "POST", 88),
  [120] = '{"method":"POST","url":"/v1/chat/completions","body":{"messages":[]}}',
  [150] = REQ:format("get-150", "GET", 150),
  [163] = '{"custom_id":42,"method":"POST","url":"/v1/chat/completions","body":{"messages":[]}}',
}
local CID = { [88] = "req-5", [150] = "get-150" }  -- the bad lines that name a custom_id

-- the input text, and per line the custom_id it names (nil: none)
local function input()
  local t, cids = {}, {}
  for i = 1, N_LINES do
    if BAD[i] then
      t[i], cids[i] = BAD[i], CID[i]
    else
      t[i], cids[i] = REQ:format("req-" .. i, "POST", i), "req-" .. i
    end
  end
  return table.concat(t, "\n") .. "\n", cids
end

-- For the input split n ways: line -> shard, and per shard its lines and its bad lines.
local function partition(n)
  local _, cids = input()
  local of, count, bad = {}, {}, {}
  for k = 1, n do count[k], bad[k] = 0, 0 end
  for i = 1, N_LINES do
    local k = expected_shard(n, cids[i], i)
    of[i] = k
    count[k] = count[k] + 1
    if BAD[i] then bad[k] = bad[k] + 1 end
  end
  return of, count, bad
end

-- An output's lines, as the input lines they answer (a request by its
-- custom_id's first line, a bad line by error.line). Asserts each is a whole
-- JSON line.
local function answered_lines(p)
  local text = read(p) or ""
  assert.is_true(text == "" or text:sub(-1) == "\n", "output must end with a newline")
  local _, cids = input()
  local first = {}
  for i = N_LINES, 1, -1 do if cids[i] then first[cids[i]] = i end end
  local lines = {}
  for line in text:gmatch("([^\n]*)\n") do
    local doc = cjson.decode(line)
    assert.is_table(doc, "not a JSON object: " .. line)
    local e = doc.error
    if e ~= cjson.null and e.line then
      lines[#lines + 1] = e.line
    else
      assert.equal(cjson.null, e, line)
      lines[#lines + 1] = assert(first[doc.custom_id], line)
    end
  end
  return lines
end

local function shard_args(k, out, url, extra)
  return ("batch %s -o %s --endpoint %s --concurrency 4 --shard %s %s"):format(q(path("in.jsonl")),
    q(path(out)), url, k, extra or "")
end

describe("llmrelay batch --shard", function()
  setup(W.make)
  before_each(function()
    W.clean()
    write(path("in.jsonl"), (input()))
  end)
  after_each(W.stop)
  teardown(W.remove)

  it("4 shards run one after another answer every line exactly once, each the lines its hash says",
     function()
    local m = mock.start { name = "shards" }
    local of, count, bad = partition(4)
    local seen = {}
    for k = 1, 4 do
      assert.is_true(count[k] > 25 and count[k] < 75, "a lopsided split: " .. count[k])
      local rc, out, err = cli(shard_args(k .. "/4", "out-" .. k .. ".jsonl", m.url))
      assert.equal(bad[k] > 0 and 1 or 0, rc, err)
      assert.equal("", out)
      assert.matches(("shard %d/4: took %d of the input's %d lines, left %d to the other shards")
        :format(k, count[k], N_LINES, N_LINES - count[k]), err, 1, true)
      local lines = answered_lines(path("out-" .. k .. ".jsonl"))
      assert.equal(count[k], #lines)
      for _, i in ipairs(lines) do
        assert.equal(k, of[i], "line " .. i)
        seen[i] = (seen[i] or 0) + 1
      end
    end
    for i = 1, N_LINES do assert.equal(1, seen[i], "line " .. i) end
    -- every request once, the bad lines never
    assert.equal(N_LINES - 5, m:stats().requests)
    -- and `cat` is the whole answer
    local all = capture("cat " .. q(W.dir) .. "/out-*.jsonl")
    local _, n = all:gsub("\n", "")
    assert.equal(N_LINES, n)

    -- 0-based numbering is the same split: 0/4 is 4/4, so it resumes 4/4's output
    local rc, _, err = cli(shard_args("0/4", "out-4.jsonl", m.url))
    assert.equal(bad[4] > 0 and 1 or 0, rc, err)
    assert.matches("resuming: " .. count[4] .. " lines already answered", err, 1, true)
    assert.equal(N_LINES - 5, m:stats().requests)
    -- and from scratch, into a file of its own, the same lines
    cli(shard_args("0/4", "zero.jsonl", m.url))
    local a, b = answered_lines(path("zero.jsonl")), answered_lines(path("out-4.jsonl"))
    table.sort(a)
    table.sort(b)
    assert.same(b, a)

    -- another shard's output is refused, untouched
    local before = read(path("out-1.jsonl"))
    for _, other in ipairs { "2/4", "3/4", "0/4" } do
      rc, _, err = cli(shard_args(other, "out-1.jsonl", m.url))
      assert.equal(2, rc, other)
      assert.matches("holds the answer to", err, 1, true)
      assert.matches("each shard needs its own output file", err, 1, true)
    end
    assert.equal(before, read(path("out-1.jsonl")))
    -- so is a whole run's output
    write(path("whole.jsonl"), all)
    rc, _, err = cli(shard_args("1/4", "whole.jsonl", m.url))
    assert.equal(2, rc, err)
    assert.matches("written with another --shard or none", err, 1, true)
    assert.equal(N_LINES - 5 + count[4] - bad[4], m:stats().requests)  -- zero.jsonl's, no more
  end)

  it("the split is the documented hash, the same in LuaJIT as in Lua 5.4", function()
    local ids = {}
    for i = 1, 500 do ids[i] = "id-" .. i end
    ids[#ids + 1] = "ü-ï-\0-" .. string.rep("x", 300)
    ids[#ids + 1] = "e"
    local want = {}
    for _, n in ipairs { 1, 2, 3, 4, 7, 16, 10000 } do
      for _, id in ipairs(ids) do
        local s = expected_shard(n, id)
        assert.equal(s, fleet.shard_of(n, id), id .. " of " .. n)
        want[#want + 1] = s
      end
      assert.equal(expected_shard(n, nil, 37), fleet.shard_of(n, nil, 37))
    end
    -- the same in OpenResty's LuaJIT (tools/luajit_host.c loads the LuaJIT build of the core)
    assert.is_true(run("make -s LUA=luajit >/dev/null && make -s build/luajit-host >/dev/null"),
      "make LUA=luajit failed")
    local literal = {}
    for i, id in ipairs(ids) do literal[i] = string.format("%q", id) end
    write(path("ids.lua"), "return { " .. table.concat(literal, ",\n") .. " }\n")
    local code = [[
      local fleet = require "llmrelay.cli_fleet"
      local ids = dofile(arg[1])
      local out = {}
      for _, n in ipairs { 1, 2, 3, 4, 7, 16, 10000 } do
        for _, id in ipairs(ids) do out[#out + 1] = fleet.shard_of(n, id) end
      end
      io.write(table.concat(out, " "))]]
    local got = capture(("LUA_PATH='./?.lua;lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/luajit/?.so;;' " ..
      "build/luajit-host %s %s"):format(q(code), q(path("ids.lua"))))
    assert.equal(table.concat(want, " "), got)
  end)

  it("a bad --shard is a usage error (exit 2) naming it; nothing is sent or written", function()
    local m = mock.start { name = "usage" }
    local base = "batch " .. q(path("in.jsonl")) .. " -o " .. q(path("o.jsonl")) .. " --endpoint " .. m.url
    local cases = {
      ["''"] = "K/N", ["4"] = "K/N", ["a/b"] = "K/N", ["1/4/2"] = "K/N", ["1.5/4"] = "K/N",
      ["-1/4"] = "K/N", [" 1/4"] = "K/N",
      ["5/4"] = "K must be from 1 to N", ["1/0"] = "N must be from 1 to 10000",
      ["0/0"] = "N must be from 1 to 10000", ["1/10001"] = "N must be from 1 to 10000",
    }
    for value, says in pairs(cases) do
      local rc, out, err = cli(base .. " --shard " .. (value:sub(1, 1) == "'" and value or q(value)))
      assert.equal(2, rc, value)
      assert.equal("", out)
      assert.matches("--shard", err, 1, true)
      assert.matches(says, err, 1, true)
    end
    local rc, _, err = cli(base .. " --shard")
    assert.equal(2, rc)
    assert.matches("'--shard' needs a value", err, 1, true)
    rc, _, err = cli(base .. " --shard 1/4 --shard=2/4")
    assert.equal(2, rc)
    assert.matches("'--shard' given twice", err, 1, true)
    assert.is_nil(read(path("o.jsonl")))
    assert.equal(0, m:stats().requests)
  end)

  it("a shard stopped by SIGTERM resumes to completion, each of its lines once, none sent twice", function()
    local m = mock.start { name = "slow", latency_ms = 200 }
    local of, count, bad = partition(4)
    local args = shard_args("2/4", "out.jsonl", m.url)
    local pid, rcf = cli_support.background(W.dir, args, nil, "term")
    assert.is_true(cli_support.wait_for(function() return m:stats().requests >= 8 end, 20), "no requests")
    run("kill -TERM " .. pid)
    assert.equal(143, cli_support.wait_rc(rcf, 20))
    local first = answered_lines(path("out.jsonl"))
    assert.is_true(#first >= 8 and #first < count[2], "lines: " .. #first)
    local rc, _, err = cli(args)
    assert.equal(bad[2] > 0 and 1 or 0, rc, err)
    local lines = answered_lines(path("out.jsonl"))
    assert.equal(count[2], #lines)
    local seen = {}
    for _, i in ipairs(lines) do
      assert.equal(2, of[i], "line " .. i)
      assert.is_nil(seen[i], "line " .. i .. " twice")
      seen[i] = true
    end
    assert.equal(count[2] - bad[2], m:stats().requests)
  end)
end)

describe("llmrelay batch --redis", function()
  local URL = "redis://fleet:hunter2-SECRET@127.0.0.1:"

  setup(W.make)
  after_each(W.stop)
  teardown(W.remove)

  it("reaches the client config: --redis, else LLMRELAY_REDIS, else the config file's own", function()
    local cli_mod = require "llmrelay.cli"
    local function config(argv, env)
      local o = assert(cli_mod.parse_batch_args(argv, 1))
      return assert(cli_mod.client_config(o, function(k) return env and env[k] end))
    end
    local ep = { "in.jsonl", "-o", "out.jsonl", "--endpoint", "http://127.0.0.1:9/v1" }
    local function with(...)
      local t = { table.unpack(ep) }
      for _, a in ipairs { ... } do t[#t + 1] = a end
      return t
    end
    assert.is_nil(config(ep).redis)
    assert.equal("redis://a:1", config(with("--redis", "redis://a:1")).redis)
    assert.equal("redis://a:1", config(with("--redis=redis://a:1")).redis)
    assert.equal("redis://env:2", config(ep, { LLMRELAY_REDIS = "redis://env:2" }).redis)
    assert.is_nil(config(ep, { LLMRELAY_REDIS = "" }).redis)
    assert.equal("redis://a:1", config(with("--redis", "redis://a:1"), { LLMRELAY_REDIS = "redis://env:2" }).redis)
    local cfg = path("pool.lua")
    write(cfg, [[return { name = "pool", endpoints = { { base_url = "http://127.0.0.1:9/v1" } },
                          redis = { url = "redis://cfg:3", timeout = 0.1 } }]])
    local own = { "in.jsonl", "-o", "out.jsonl", "-c", cfg }
    assert.same({ url = "redis://cfg:3", timeout = 0.1 }, config(own).redis)
    assert.equal("redis://env:2", config(own, { LLMRELAY_REDIS = "redis://env:2" }).redis)
    own[#own + 1] = "--redis"
    own[#own + 1] = "redis://a:1"
    assert.equal("redis://a:1", config(own, { LLMRELAY_REDIS = "redis://env:2" }).redis)
  end)

  it("masks a URL's password in what the CLI says, and knows the secrets a redis value holds", function()
    local cases = {
      ["redis://u:secret@127.0.0.1:1"] = "redis://u:***@127.0.0.1:1",
      ["rediss://:pw@h:6380/2"] = "rediss://:***@h:6380/2",
      ["redis://onlypw@h:1"] = "redis://***@h:1",
      ["redis://u:p@ss/w@h:1/0"] = "redis://u:***@h:1/0",
      ["got 'redis://u:x@h:1' too"] = "got 'redis://u:***@h:1' too",
      ["http://127.0.0.1:9/v1 and redis://h:1/0"] = "http://127.0.0.1:9/v1 and redis://h:1/0",
    }
    for text, masked in pairs(cases) do assert.equal(masked, fleet.mask(text)) end
    local env = { PW = "from-the-env-1234" }
    local function getenv(k) return env[k] end
    assert.same({ "p%40ss-word", "p@ss-word" }, fleet.redis_secrets("redis://u:p%40ss-word@h:1", getenv))
    assert.same({ "from-the-env-1234" }, fleet.redis_secrets({ url = "redis://h:1", password_env = "PW" }, getenv))
    assert.same({}, fleet.redis_secrets("redis://h:1/0", getenv))
    assert.same({}, fleet.redis_secrets(nil, getenv))
    -- the summary's and the progress line's words on client:status().redis
    local st = { { name = "a", state = "closed" },
                 redis = { up = false, url = "redis://u:hunter2@h:1", round_trips = 12, fallbacks = 3,
                           errors = 2, last_error = "connect redis://u:hunter2@h:1: refused" } }
    assert.equal("  redis redis://u:***@h:1: down, round trips 12, fallbacks 3, errors 2; " ..
                 "last error: connect redis://u:***@h:1: refused", fleet.summary_line(st))
    assert.equal("  redis down", fleet.progress_note(st))
    st.redis.up = true
    assert.equal("  redis redis://u:***@h:1: up, round trips 12, fallbacks 3, errors 2", fleet.summary_line(st))
    assert.equal("", fleet.progress_note(st))
    assert.is_nil(fleet.summary_line({ { name = "a" } }))
  end)

  it("never prints the password of --redis or LLMRELAY_REDIS; a Redis that is down leaves the batch " ..
     "to local state", function()
    local m = mock.start { name = "local" }
    local n = 20
    local t = {}
    for i = 1, n do t[i] = REQ:format("r-" .. i, "POST", i) end
    write(path("in.jsonl"), table.concat(t, "\n") .. "\n")
    local url = URL .. mock.free_port()   -- nothing listens there
    local runs = {
      { "--redis " .. q(url) .. " --shard 1/1", nil },
      { "", "LLMRELAY_REDIS=" .. q(url) },
    }
    for i, r in ipairs(runs) do
      local o = path("redis-" .. i .. ".jsonl")
      local rc, out, err = cli("batch " .. q(path("in.jsonl")) .. " -o " .. q(o) .. " --endpoint " .. m.url ..
                               " " .. r[1], r[2])
      local text = read(o) or ""
      for _, s in ipairs { out, err, text } do assert.is_nil(s:find("hunter2", 1, true), s) end
      assert.equal(0, rc, err)
      local _, lines = text:gsub("\n", "")
      assert.equal(n, lines)
      assert.matches("redis down", out .. err, 1, true)
    end
    -- a URL in a usage error is masked too
    local rc, _, err = cli("batch " .. q(path("in.jsonl")) .. " " .. q(url) .. " -o " .. q(path("x.jsonl")) ..
                           " --endpoint " .. m.url)
    assert.equal(2, rc)
    assert.matches("redis://fleet:***@127.0.0.1:", err, 1, true)
    assert.is_nil(err:find("hunter2", 1, true))
  end)
end)
