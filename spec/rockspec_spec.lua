-- The rockspec must name every C source of the core and every Lua module:
-- a file left out builds fine here and fails only after `luarocks make`.
describe("rockspec/llmrelay-scm-1.rockspec", function()
  local env = {}
  local chunk = assert(loadfile("rockspec/llmrelay-scm-1.rockspec", "t", env))
  chunk()
  local modules = env.build.modules

  local function listing(cmd)
    local out, p = {}, assert(io.popen(cmd))
    for line in p:lines() do out[#out + 1] = line end
    p:close()
    table.sort(out)
    return out
  end

  it("lists every Lua module under lua/llmrelay/ (resty/ included)", function()
    local listed = {}
    for name, path in pairs(modules) do
      if type(path) == "string" then listed[#listed + 1] = path end
    end
    table.sort(listed)
    assert.are.same(listing("find lua/llmrelay -name '*.lua'"), listed)
  end)

  it("builds llmrelay.core from every C source the Makefile links into it", function()
    local core = modules["llmrelay.core"]
    local sources = {}
    for _, src in ipairs(core.sources) do sources[#sources + 1] = src end
    table.sort(sources)
    local expected = listing("make -s -n LUA=lua5.4 build/lua5.4/llmrelay/core.so -B 2>/dev/null"
      .. " | grep -o 'csrc/[a-z0-9_]*\\.c' | sort -u")
    assert.is_true(#expected > 10)
    assert.are.same(expected, sources)
  end)
end)
