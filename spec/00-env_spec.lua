-- The suite must run where the project claims to run: Lua 5.4 with the core
-- built by `make`. A wrong interpreter would make every other result moot.
describe("test environment", function()
  it("runs on Lua 5.4", function()
    assert.are.equal("Lua 5.4", _VERSION)
  end)

  it("loads the freshly built core, not an installed one", function()
    local path = package.searchpath("llmrelay.core", package.cpath)
    assert.truthy(path and path:find("^build/"), "llmrelay.core found at " .. tostring(path))
    local core = require "llmrelay.core"
    assert.are.equal("function", type(core.client))
  end)

  it("agrees with the Lua mirror of the error kinds", function()
    local core = require "llmrelay.core"
    local errors = require "llmrelay.errors"
    assert.are.same(errors.kinds, core.kinds)
  end)
end)
