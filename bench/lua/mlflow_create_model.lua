-- MLflow: POST registered-models/create with a unique name per request.
function request()
   local body = string.format('{"name": "%s", "description": "bench"}', unique_id())
   return wrk.format("POST", "/api/2.0/mlflow/registered-models/create", nil, body)
end
