-- Send the body in $BENCH_BODY_FILE ($BENCH_METHOD, POST by default) with $BENCH_AUTH_HEADER;
-- print the summary as JSON.
local file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = os.getenv("BENCH_METHOD") or "POST"
if wrk.method == "" then wrk.method = "POST" end
local body = file:read("*a")
if wrk.method ~= "GET" then wrk.body = body end
file:close()
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH_HEADER")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '{"requests": %d, "seconds": %.6f, "errors": %d, "p50_ms": %.3f, "p99_ms": %.3f, "client": "wrk"}\n',
    summary.requests, summary.duration / 1e6, errors,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
