-- llmrelay.resty.shared: the lua_shared_dict backend of llmrelay.store
-- (endpoint state all nginx workers agree on). A shared dict already has the
-- five methods a store's backend needs (get, set, add, incr, delete, all
-- atomic across the workers), so this only finds it by name.

local ngx = ngx

local _M = {}

-- The dict named by `shared_dict` and this worker's pid (what a probe lock it
-- holds says), or nil, err when nginx.conf declares no such dict.
function _M.backend(dict_name)
  local dict = ngx.shared[dict_name]
  if not dict then
    return nil, "lua_shared_dict '" .. dict_name .. "' is not declared in nginx.conf (add: lua_shared_dict "
      .. dict_name .. " 1m;)"
  end
  return dict, ngx.worker.pid()
end

return _M
