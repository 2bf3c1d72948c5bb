-- POST of a small inference input with a unique field to wrk's path (PIE's assignment
-- jobs route or the floor's /insert); the input validates against the bench contract.
function request()
   local body = string.format('{"job_type": "inference", "input": {"ref": "%s", "n": %d}}',
      unique_id(), counter)
   return wrk.format("POST", wrk.path, nil, body)
end
