-- wrk script for bench/run.sh: when a run ends, print one line that the
-- script parses. BENCH_LABEL (environment) names the run.
--
-- BENCH_RESULT label=... rps=... p50_us=... p99_us=... mean_us=... max_us=...
--              requests=... errors=... non2xx=... duration_s=...

local label = os.getenv("BENCH_LABEL") or "run"

-- BENCH_BODY (environment), when set, makes every request a JSON POST
-- with that body (the priced route estimates from it).
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
   wrk.method = "POST"
   wrk.body = body
   wrk.headers["Content-Type"] = "application/json"
end

done = function(summary, latency, requests)
   local secs = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT label=%s rps=%.1f p50_us=%d p99_us=%d mean_us=%.1f max_us=%d requests=%d errors=%d non2xx=%d duration_s=%.2f\n",
      label,
      summary.requests / secs,
      math.floor(latency:percentile(50)),
      math.floor(latency:percentile(99)),
      latency.mean,
      math.floor(latency.max),
      summary.requests,
      e.connect + e.read + e.write + e.timeout,
      e.status,
      secs))
end
