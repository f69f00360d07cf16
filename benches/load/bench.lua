-- wrk script for benches/load.sh: one measured scenario.
--
-- Configured through the environment (wrk passes no arguments to the script unless given after --):
--   BENCH_PATH    request path, e.g. /p or /j                       (default /)
--   BENCH_TOKENS  file with one bearer token per line; empty/unset: no Authorization header
--   BENCH_POOL    use at most this many tokens from the file         (default: all)
-- Requests are pre-built in init(); each request() takes the next one round-robin, so with a
-- pool of N tokens every token is sent once per N requests.
-- done() prints one machine-readable line, which the load script parses:
--   RESULT requests=.. duration_us=.. rps=.. p50_us=.. p99_us=.. mean_us=.. max_us=.. non2xx=.. errors=..

local reqs = {}
local n = 0
local i = 0

function init(args)
  local path = os.getenv("BENCH_PATH") or "/"
  local file = os.getenv("BENCH_TOKENS") or ""
  local limit = tonumber(os.getenv("BENCH_POOL") or "") or math.huge
  if file == "" then
    reqs[1] = wrk.format("GET", path)
    n = 1
  else
    local f = assert(io.open(file, "r"), "cannot open BENCH_TOKENS file " .. file)
    for line in f:lines() do
      if n >= limit then break end
      if #line > 0 then
        n = n + 1
        reqs[n] = wrk.format("GET", path, { ["Authorization"] = "Bearer " .. line })
      end
    end
    f:close()
    assert(n > 0, "no tokens in " .. file)
  end
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
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
