-- POST /v2/models with a unique id per request.
function request()
   local id = unique_id()
   local body = string.format(
      '{"id": "%s", "name": "bench %s", "description": "bench",'
         .. ' "handlers": {"training": {"type": "in_process", "value": "echo"},'
         .. ' "inference": {"type": "in_process", "value": "echo"}}}', id, id)
   return wrk.format("POST", "/v2/models", nil, body)
end
