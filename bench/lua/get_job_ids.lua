-- GET /v2/jobs/<id>, walking the ids listed one a line in the file given as the third
-- argument (shuffled ids sampled across the whole table); each thread starts elsewhere.
local ids = {}
local at = 0
local common_init = init

function init(args)
   common_init(args)
   for line in io.lines(args[3]) do
      ids[#ids + 1] = line
   end
   at = (tid * 7919) % #ids
end

function request()
   at = at % #ids + 1
   return wrk.format("GET", "/v2/jobs/" .. ids[at])
end
