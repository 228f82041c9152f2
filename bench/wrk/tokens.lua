-- Sends GETs, each with the next bearer token of a file (one per line), round robin.
-- Arguments: <tokens file>
-- Counts 2xx as ok and anything else as failed; prints one WRKJSON line like replay.lua.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  sent, ok, failed = tid * 7919, 0, 0
end

function request()
  sent = sent + 1
  local headers = {Authorization = "Bearer " .. tokens[(sent % #tokens) + 1]}
  return wrk.format("GET", nil, headers, nil)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else failed = failed + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_failed = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_failed = total_failed + t:get("failed")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"ok":%d,"failed":%d,"reused":0,' ..
    '"socket_errors":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, total_ok, total_failed,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
