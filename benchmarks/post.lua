-- wrk: POST the JSON file named by BODY_FILE; print one machine-readable RESULT line.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  io.write(string.format("RESULT %.1f %.2f %.2f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors, summary.requests))
end

-- UNIT_HEADER set: every request names another unit in that header (an A/B test's routing).
local unit_header = os.getenv("UNIT_HEADER")
if unit_header then
  local n = 0
  request = function()
    n = n + 1
    return wrk.format(nil, nil, {[unit_header] = "customer-" .. n})
  end
end
