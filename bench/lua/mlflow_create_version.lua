-- MLflow: POST model-versions/create on the seeded models in turn (MLflow numbers the
-- version); the source is a runs:/ URI of one existing run, given with its run_id, which
-- MLflow accepts without an artifact upload. Script arguments: <model name prefix>
-- <model count> <wrk threads> <run id>.
function request()
   local n = round_robin(tonumber(extra[2]), tonumber(extra[3]))
   local body = string.format(
      '{"name": "%s-%06d", "source": "runs:/%s/model", "run_id": "%s", "description": "bench"}',
      extra[1], n, extra[4], extra[4])
   return wrk.format("POST", "/api/2.0/mlflow/model-versions/create", nil, body)
end
