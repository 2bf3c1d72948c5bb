-- POST /v2/models/{id}/new_version with a unique version string, on the seeded models in
-- turn. Script arguments: <model id prefix> <model count> <wrk threads>.
function request()
   local n = round_robin(tonumber(extra[2]), tonumber(extra[3]))
   local body = string.format('{"version": "%s", "description": "bench"}', unique_id())
   local path = string.format("/v2/models/%s-%06d/new_version", extra[1], n)
   return wrk.format("POST", path, nil, body)
end
