-- Shared by every bench script (bench/run.py prepends it): thread ids, a per-thread request
-- counter for unique bodies, a strict non-2xx count, and one JSON line from done().
-- Arguments after `--`: <unique prefix> <bearer token or "-"> [script arguments -> extra].
local threads = {}
local next_tid = 0

function setup(thread)
   next_tid = next_tid + 1
   thread:set("tid", next_tid)
   table.insert(threads, thread)
end

prefix = "r"
counter = 0
non2xx = 0
first_bad = ""
extra = {}

function init(args)
   prefix = args[1] or "r"
   for i = 3, #args do
      extra[i - 2] = args[i]
   end
   if args[2] and args[2] ~= "-" then
      wrk.headers["Authorization"] = "Bearer " .. args[2]
   end
   wrk.headers["Content-Type"] = "application/json"
end

-- A unique id per request across threads and runs: <prefix>-<thread>-<counter>.
function unique_id()
   counter = counter + 1
   return string.format("%s-%d-%d", prefix, tid, counter)
end

-- Index (0-based) of one of `count` shared targets for the next request, the `nthreads`
-- threads taking turns so no two threads work on the same target at the same time.
local turn = 0
function round_robin(count, nthreads)
   turn = turn + 1
   return ((turn - 1) * nthreads + tid - 1) % count
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_bad == "" then
         first_bad = string.format("%d %s", status, string.sub(body or "", 1, 300))
      end
   end
end

local function escape(s)
   return (string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end))
end

function done(summary, latency, requests)
   local bad, sample = 0, ""
   for _, t in ipairs(threads) do
      bad = bad + t:get("non2xx")
      if sample == "" then sample = t:get("first_bad") end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d,'
         .. ' "connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d,'
         .. ' "non2xx": %d, "first_bad": "%s"}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.connect, e.read, e.write, e.timeout, e.status, bad, escape(sample)))
end
