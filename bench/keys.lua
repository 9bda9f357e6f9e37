-- wrk script for bench/cluster.sh: every request carries the next API key
-- of BENCH_KEYS_FILE (one a line), so the load spreads over many users,
-- projects and so Redis shards; each thread starts at another key. The
-- requests are formatted once, in init, so the rotation costs wrk nothing
-- per request. The BENCH_RESULT line is bench/report.lua's.
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local counter = 0
function setup(thread)
   thread:set("offset", counter)
   counter = counter + 1
end

local requests = {}
local i = 0
function init(args)
   local keys = {}
   for line in io.lines(os.getenv("BENCH_KEYS_FILE")) do
      if line ~= "" then keys[#keys + 1] = line end
   end
   if #keys == 0 then error("no keys in BENCH_KEYS_FILE") end
   for _, k in ipairs(keys) do
      requests[#requests + 1] = wrk.format(nil, nil, { Authorization = "Bearer " .. k })
   end
   -- offset is set by setup before init runs in the thread
   i = (offset or 0) * math.floor(#requests / 2)
end

function request()
   i = i % #requests + 1
   return requests[i]
end
