-- wrk script for bench/search.py: replays a precomputed list of store search requests.
--
-- Usage: wrk -t1 -c16 -d15s --latency -s bench/search.lua http://127.0.0.1:PORT -- REQUESTS
--
-- REQUESTS has one request per line, "<bearer key> <path?query>". bench/search.py writes it
-- (bench/.cache/requests-<backend>-<offers>.txt) from the marketplane API itself, and every
-- line has been answered 200 before the load starts. The mix (weights are line counts):
--
--   text        q=<two title words> ("golden river"), relevance order (the default with q)
--   word        q=<one word: a noun or a city>, relevance
--   author      q=<author name> ("ada hartmann"), relevance
--   text+cat    q=<noun>&category=books&sort=newest
--   browse      category=books|stays, newest first
--   cat+price   category=stays&sort=price, category=books&sort=-price
--   price       category=books&price_min=X&price_max=X+500&sort=price
--   attr        category=books&attr.author=<author>
--   attr+range  category=stays&attr.city=<city>&attr.nights_min=3&sort=price
--   text+attr   q=<stay kind>&attr.city=<city>
--   restricted  the travel affiliate's key (stays only, 5% markup): q=<city> or
--               attr.city=<city>&price_max=N&sort=price
--   next        the second page of about half of the above (cursor=<its next_cursor>),
--               so roughly a third of all requests are next pages
--
-- Lines are shuffled once (fixed seed) and each wrk thread cycles through them from its own
-- offset. done() prints one line "WRK_JSON {…}" with the figures bench/search.py reads.

local lines = {}
local position = 0
local thread_count = 0

function setup(thread)
  thread:set("offset", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  local path = args[1]
  if path == nil then
    error("pass the request list after --")
  end
  local file = assert(io.open(path, "r"))
  for line in file:lines() do
    local token, target = line:match("^(%S+)%s+(%S+)$")
    if token then
      lines[#lines + 1] = wrk.format("GET", target, { ["Authorization"] = "Bearer " .. token })
    end
  end
  file:close()
  if #lines == 0 then
    error("no requests in " .. path)
  end
  position = ((offset or 0) * 97) % #lines
end

function request()
  position = position % #lines + 1
  return lines[position]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"mean_us":%.1f,"stdev_us":%.1f,"max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency.stdev, latency.max, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
