-- llmrelay.schema states each field of llmrelay.new once: what config.validate fills in is
-- the schema's default, and README's configuration table lists exactly the schema's fields
-- with the schema's defaults.
local config = require "llmrelay.config"
local core = require "llmrelay.core"
local schema = config.schema

local function readme_section(title)
  local f = assert(io.open("README.md", "rb"))
  local text = f:read("*a")
  f:close()
  local section = text:match("\n## " .. title .. "\n(.-)\n## ")
  assert(section, "README.md has no section ## " .. title)
  return section
end

-- The configuration table's rows as { name = path, default = text, line = row }. A row may
-- name several fields ("`retry.base_delay`, `max_delay`" or "`a` / `b`": a name without
-- its own table takes the first one's) and give one default for all or one for each.
local function readme_fields()
  local fields = {}
  for line in readme_section("Configuration"):gmatch("[^\n]+") do
    local names_cell, default_cell = line:match("^|%s*(`[^|]-)%s*|%s*([^|]-)%s*|")
    if names_cell then
      local names = {}
      for name in names_cell:gmatch("`([^`]+)`") do
        if #names > 0 and not name:find("[.%[]") then
          name = names[1]:match("^(.*%.)") .. name
        end
        names[#names + 1] = name
      end
      local defaults = {}
      for d in (default_cell:gsub("`", "") .. ", "):gmatch("(.-), ") do
        defaults[#defaults + 1] = d
      end
      assert(#defaults == 1 or #defaults == #names, ("README row names %d fields and gives %d "
             .. "defaults: %s"):format(#names, #defaults, line))
      for i, name in ipairs(names) do
        fields[#fields + 1] = { name = name, default = defaults[i] or defaults[1], line = line }
      end
    end
  end
  return fields
end

-- The value at a schema path in a normalized config (the first endpoint for endpoints[i]).
local function at(normalized, path)
  local v = normalized
  for part in path:gmatch("[^.]+") do
    local key, each = part:match("^(.-)(%[i%])$")
    v = v[key or part]
    if each then v = v[1] end
  end
  return v
end

describe("config.schema", function()
  it("names each field once, with a type config.lua checks and a one-line doc", function()
    local seen = {}
    for _, f in ipairs(schema.fields) do
      assert.is_nil(seen[f.path], "twice: " .. f.path)
      seen[f.path] = true
      assert.is_string(f.doc, f.path)
      assert.is_nil(f.doc:find("\n"), f.path)
      assert.is_string(f.type, f.path)
    end
    assert.is_true(#schema.fields >= 30)
  end)

  it("is what validate fills in", function()
    local n = config.validate({ endpoints = { { base_url = "http://localhost:8080" } } })
    for _, f in ipairs(schema.fields) do
      if f.default ~= nil then
        assert.are.equal(f.default, at(n, f.path), f.path)
      elseif not f.shown and not f.required then
        assert.is_nil(at(n, f.path), f.path)
      end
    end
  end)

  it("takes the core's fixed limits from core.limits", function()
    local limits = core.limits
    assert.are.equal(limits.max_endpoints, schema.MAX_ENDPOINTS)
    assert.are.equal(limits.max_headers, schema.MAX_HEADERS)
    assert.are.equal(limits.max_models, schema.MAX_MODELS)
    assert.are.equal(limits.max_count, schema.numbers.count.max)
    assert.are.equal(limits.max_concurrency, schema.numbers.concurrency.max)
    assert.are.equal(limits.max_seconds, schema.numbers.seconds.max)
    local bytes = schema.numbers.bytes
    assert.are.same({ limits.max_response_bytes_min, limits.max_response_bytes_max },
                    { bytes.min, bytes.max })
    for _, f in ipairs(schema.fields) do
      if f.path == "max_response_bytes" then
        assert.are.equal(limits.max_response_bytes_default, f.default)
      end
    end
  end)
end)

describe("README's configuration table", function()
  local rows = readme_fields()

  it("lists every schema field with its default", function()
    for _, f in ipairs(schema.fields) do
      local row
      for _, r in ipairs(rows) do
        if r.name == f.path then row = r end
      end
      assert.truthy(row, "README's configuration table has no row for " .. f.path)
      assert.are.equal(schema.default_text(f), row.default, f.path .. " in: " .. row.line)
    end
  end)

  it("lists nothing else, and each field once", function()
    local known, seen = {}, {}
    for _, f in ipairs(schema.fields) do known[f.path] = true end
    for _, r in ipairs(rows) do
      assert.truthy(known[r.name], "README lists " .. r.name .. ", which is no field: " .. r.line)
      assert.is_nil(seen[r.name], "README lists " .. r.name .. " twice")
      seen[r.name] = true
    end
  end)

  it("states the schema's ranges under the table", function()
    local function thousands(n)
      return (tostring(math.floor(n)):reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
    end
    local ranges = (readme_section("Configuration") .. "\n"):match("\nRanges: (.-)\n\n")
    assert.truthy(ranges, "README's configuration section has no Ranges: paragraph")
    ranges = ranges:gsub("%s+", " ")
    local n = schema.numbers
    for _, s in ipairs({ "`breaker.failure_threshold`, `min_calls`, `half_open_probes` 1 to "
                           .. thousands(n.count.max),
                         "`concurrency`, `max_concurrency` 1 to " .. thousands(n.concurrency.max),
                         "`weight` above 0 to " .. thousands(n.weight.max),
                         "(`max_retry_after`: 0) to " .. thousands(n.seconds.max) .. " s",
                         "`opts.timeout` at most " .. thousands(schema.MAX_SECONDS) .. " s" }) do
      assert.truthy(ranges:find(s, 1, true), s .. " in: " .. ranges)
    end
  end)

  it("states the core's limits on a config", function()
    local limits = core.limits
    local row = readme_section("Limits and secrets"):match("\n| config |[^\n]*")
    assert.truthy(row, "README's limits table has no config row")
    for _, s in ipairs({ limits.max_endpoints .. " endpoints", limits.max_models .. " models",
                         limits.max_headers .. " headers" }) do
      assert.truthy(row:find(s, 1, true), s .. " in: " .. row)
    end
  end)
end)
