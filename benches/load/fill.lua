-- wrk script for benches/load.sh: fill the verified-token cache.
--
-- Sends every token of BENCH_TOKENS (one per line) to BENCH_PATH once, round-robin, and stops
-- the thread after as many responses as there are tokens (run it with -t1; wrk's -d bounds it in
-- time). With -c connections in flight a few requests past the end wrap around to the first
-- tokens, which are already cached. done() prints the same RESULT line as bench.lua.

local reqs = {}
local n = 0
local i = 0
local seen = 0

function init(args)
  local path = os.getenv("BENCH_PATH") or "/"
  local file = assert(os.getenv("BENCH_TOKENS"), "BENCH_TOKENS is required")
  local f = assert(io.open(file, "r"), "cannot open BENCH_TOKENS file " .. file)
  for line in f:lines() do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("GET", path, { ["Authorization"] = "Bearer " .. line })
    end
  end
  f:close()
  assert(n > 0, "no tokens in " .. file)
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end

function response(status, headers, body)
  seen = seen + 1
  if seen >= n then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local e = summary.errors
  local duration = summary.duration
  local rps = 0
  if duration > 0 then rps = summary.requests / (duration / 1e6) end
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d mean_us=%.1f max_us=%d non2xx=%d errors=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, duration, rps,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    e.status, e.connect + e.read + e.write + e.timeout,
    e.connect, e.read, e.write, e.timeout))
end
