-- wrk script for bench/orders.py: places orders of one unit of one offer each.
--
-- Usage: wrk -t1 -c16 -d15s --latency -s bench/orders.lua http://127.0.0.1:PORT -- PLAN
--
-- PLAN (bench/orders.py writes it) is: line 1 the client's secret key, line 2 a prefix unique to
-- this wrk run, line 3 the unit price the client sees (minor units, EUR), then one offer id a
-- line. Each request orders 1 unit of an offer drawn uniformly from the list (one line: always
-- that offer) with `Idempotency-Key: <prefix>-<thread>-<counter>`, unique across runs, so the
-- server never replays a kept response. Bodies are built per request (no JSON encoder: ids and
-- numbers only).
--
-- response() counts answers by status in each thread; done() prints one line "WRK_JSON {…}" with
-- the figures bench/orders.py reads, the counts under "statuses".

local threads = {}

function setup(thread)
  thread:set("thread_number", #threads)
  threads[#threads + 1] = thread
end

local offers = {}
local counter = 0
local prefix, price
local headers = {}
statuses = {}

function init(args)
  local path = args[1]
  if path == nil then
    error("pass the plan file after --")
  end
  local file = assert(io.open(path, "r"))
  local key = file:read("*l")
  prefix = file:read("*l") .. "-" .. (thread_number or 0)
  price = file:read("*l")
  for line in file:lines() do
    if line ~= "" then
      offers[#offers + 1] = line
    end
  end
  file:close()
  if #offers == 0 then
    error("no offers in " .. path)
  end
  headers["Authorization"] = "Bearer " .. key
  headers["Content-Type"] = "application/json"
  math.randomseed(os.time() + 7919 * (thread_number or 0))
end

function request()
  counter = counter + 1
  local offer = offers[1]
  if #offers > 1 then
    offer = offers[math.random(#offers)]
  end
  headers["Idempotency-Key"] = prefix .. "-" .. counter
  local body = '{"customer_ref":"bench-' .. counter .. '","lines":[{"offer":"' .. offer ..
    '","quantity":1,"unit_price":{"amount":' .. price .. ',"currency":"EUR"}}]}'
  return wrk.format("POST", "/store/v1/orders", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(total) do
    parts[#parts + 1] = string.format('"%d":%d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"mean_us":%.1f,"stdev_us":%.1f,"max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency.stdev, latency.max, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    table.concat(parts, ",")))
end
