-- spec/support/dump.lua - any Lua value as text (tables deeply, keys sorted,
-- cycles cut), so a test can search everything a call returned for a secret:
--   assert.is_nil(dump(resp):find(KEY, 1, true))
local function dump(v, seen)
  seen = seen or {}
  if type(v) ~= "table" then return tostring(v) end
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = dump(k, seen) .. "=" .. dump(x, seen) end
  table.sort(parts)
  return "{" .. table.concat(parts, ", ") .. "}"
end

return dump
