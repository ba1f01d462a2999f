-- busted output handler: busted's own terminal output (progress, failure details),
-- then "N passed, M failed[, K skipped]" as the very last line, for scripts to read.
--   busted -o spec/support/summary_handler.lua      (a path ending in .lua is dofile'd)
--   busted -o spec.support.summary_handler          (a module name, found through package.path)

return function(options)
  local busted = require("busted")

  -- The runner passes the handler it would have used (utfTerminal on a terminal,
  -- plainTerminal otherwise); delegating keeps its output and its -Xoutput flags.
  local inner = options.defaultOutput
  if type(inner) ~= "string" or not inner:match("^%w+$") then inner = "plainTerminal" end
  local handler = require("busted.outputHandlers." .. inner)(options)

  -- Subscribed after the delegate's suite-end printer, so this line comes last.
  -- Errors outside a test (a spec file that fails to load, a failing setup) are
  -- counted in errorsCount by busted's base handler, so they count as failed here.
  busted.subscribe({ "suite", "end" }, function()
    local line = string.format("%d passed, %d failed", handler.successesCount,
                               handler.failuresCount + handler.errorsCount)
    if handler.pendingsCount > 0 then
      line = line .. string.format(", %d skipped", handler.pendingsCount)
    end
    io.write(line, "\n")
    io.flush()
    return nil, true
  end)

  return handler
end
