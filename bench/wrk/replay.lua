-- Replays prepared request bodies (one per line of a file) as POSTs.
-- Arguments: <bodies file> <threads> [<Authorization header> [<token out prefix>]]
-- Bodies are split between threads and sent in order; sends past the end start over and
-- are counted as "reused" (for exchanges that makes a run invalid: attestations are
-- single-use). With a token out prefix, each 200's access_token is written to a file.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  bodies = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == tid then bodies[#bodies + 1] = line end
    i = i + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  if args[3] and args[3] ~= "" then wrk.headers["Authorization"] = args[3] end
  if args[4] then out = io.open(args[4] .. "." .. tid, "w") end
  sent, reused, ok, failed = 0, 0, 0, 0
end

function request()
  sent = sent + 1
  if sent > #bodies then reused = reused + 1 end
  return wrk.format(nil, nil, nil, bodies[((sent - 1) % #bodies) + 1])
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
    if out then
      local token = body:match('"access_token":"([^"]+)"')
      if token then out:write(token, "\n") end
    end
  else
    failed = failed + 1
  end
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
