-- Replays prepared credentials (one request per line of a file) as bodiless POSTs.
-- Arguments: <lines file> <threads>
-- Each line is an Authorization value, optionally followed by a tab and a DPoP proof.
-- Lines are split between threads and sent in order; sends past the end start over and
-- are counted as "reused" (for DPoP proofs that makes a run invalid: each is single-use).
-- Counts 2xx as ok and anything else as failed; prints one WRKJSON line like replay.lua.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  lines = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == tid then
      local authorization, proof = line:match("^([^\t]*)\t?(.*)$")
      local headers = {}
      if authorization ~= "" then headers["Authorization"] = authorization end
      if proof ~= "" then headers["DPoP"] = proof end
      lines[#lines + 1] = wrk.format("POST", nil, headers, nil)
    end
    i = i + 1
  end
  sent, reused, ok, failed = 0, 0, 0, 0
end

function request()
  sent = sent + 1
  if sent > #lines then reused = reused + 1 end
  return lines[((sent - 1) % #lines) + 1]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else failed = failed + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_failed, total_reused = 0, 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_failed = total_failed + t:get("failed")
    total_reused = total_reused + t:get("reused")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"ok":%d,"failed":%d,"reused":%d,' ..
    '"socket_errors":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, total_ok, total_failed, total_reused,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
