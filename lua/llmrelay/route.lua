-- Routing by model in the config: endpoints[i].models as a map { [logical] = upstream name },
-- and fallbacks / context_window_fallbacks = { [logical] = { other, ... } }. Called by
-- config.lua's checkers with its fail (raises the llmrelay.new error) and show (quotes a
-- name); the C core reads what these return (csrc/l_route.c).

local type, pairs, ipairs = type, pairs, ipairs
local sort = table.sort

local _M = {}

-- Models one fallback list names at most (the core's LR_MAX_FALLBACKS).
_M.MAX_FALLBACKS = 8

local function name_ok(v)
  return type(v) == "string" and v ~= ""
end

-- The map form of endpoints[i].models: nil when v has no string key (the list form), else
-- its logical names (sorted) and the map. max: names an endpoint serves at most.
function _M.model_map(v, path, fail, show, max)
  local logical, others = {}, 0
  for k, up in pairs(v) do
    if type(k) ~= "string" then
      others = others + 1
    else
      if k == "" then fail(path .. " must not map an empty model name") end
      if not name_ok(up) then
        fail(path .. "[" .. show(k) .. "] must be a non-empty string (the endpoint's name for the model)")
      end
      logical[#logical + 1] = k
    end
  end
  if #logical == 0 then return nil end
  if others > 0 then
    fail(path .. " must be either an array of model names or a map { [logical] = upstream name }, not both")
  end
  if #logical > max then fail(path .. ": at most " .. max .. " models (got " .. #logical .. ")") end
  sort(logical)
  local map = {}
  for _, k in ipairs(logical) do map[k] = v[k] end
  return logical, map
end

-- Does some endpoint (normalized) serve logical model `name`?
local function served(endpoints, name)
  for _, ep in ipairs(endpoints) do
    if #ep.models == 0 then return true end
    for _, m in ipairs(ep.models) do
      if m == name then return true end
    end
  end
  return false
end

-- fallbacks and context_window_fallbacks: every name served by some endpoint, no model
-- falling back to itself or naming one twice, 1 to MAX_FALLBACKS a list.
function _M.fallbacks(v, path, fail, show, endpoints)
  if v == nil then return nil end
  if type(v) ~= "table" then
    fail(path .. " must be a table { [model] = { other, ... } } (got " .. type(v) .. ")")
  end
  local out = {}
  for from, list in pairs(v) do
    if not name_ok(from) then fail(path .. " must map model names to lists of models (got a " .. type(from) .. " key)") end
    local lpath = path .. "[" .. show(from) .. "]"
    if not served(endpoints, from) then fail(lpath .. ": no endpoint serves " .. show(from)) end
    if type(list) ~= "table" or #list == 0 then
      fail(lpath .. " must be a non-empty array of model names")
    end
    local n, seen, copy = 0, {}, {}
    for _ in pairs(list) do n = n + 1 end
    if n ~= #list then fail(lpath .. " must be an array of model names") end
    if n > _M.MAX_FALLBACKS then fail(lpath .. ": at most " .. _M.MAX_FALLBACKS .. " models (got " .. n .. ")") end
    for i, to in ipairs(list) do
      local ipath = lpath .. "[" .. i .. "]"
      if not name_ok(to) then fail(ipath .. " must be a non-empty string (got " .. type(to) .. ")") end
      if to == from then fail(ipath .. ": " .. show(from) .. " cannot fall back to itself") end
      if seen[to] then fail(ipath .. ": " .. show(to) .. " is named twice") end
      if not served(endpoints, to) then fail(ipath .. ": no endpoint serves " .. show(to)) end
      seen[to], copy[i] = true, to
    end
    out[from] = copy
  end
  return out
end

return _M
