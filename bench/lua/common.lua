-- Shared by every scenario script of bench/run.py (loaded with dofile).
--
-- done() prints one line, "BENCH-RESULT {json}", that run.py parses: wrk's own summary
-- (requests, duration, errors by kind) and latency percentiles, in microseconds.
-- wrk counts a response with a status above 399 as errors.status: that is the non-2xx count
-- (no scenario ever expects a redirect).

bench = {}

-- A per-thread seed, so that threads do not draw the same sequence of tokens.
local threads = 0
function setup(thread)
   threads = threads + 1
   thread:set("bench_thread", threads)
end

function bench.seed()
   local n = bench_thread or 0
   math.randomseed(os.time() * 1000 + n * 7919)
   -- LuaJIT's first numbers after a seed are poorly mixed; throw a few away.
   for _ = 1, 10 do math.random() end
end

function bench.lines(path)
   local out = {}
   for line in io.lines(path) do
      if #line > 0 then out[#out + 1] = line end
   end
   if #out == 0 then error("no lines in " .. path) end
   return out
end

function done(summary, latency, requests)
   local e = summary.errors
   local p = function(q) return latency:percentile(q) end
   io.write(string.format(
      'BENCH-RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%.1f,"mean":%.1f,"stdev":%.1f,"max":%.1f,' ..
      '"p50":%.1f,"p75":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.stdev, latency.max,
      p(50), p(75), p(90), p(99), p(99.9)))
end
