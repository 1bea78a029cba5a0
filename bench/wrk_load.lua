-- wrk script for bench/serving_bench.py: POST {"items": [{id, text}, ...]} bodies built from the
-- held-out texts in WRK_TEXTS (a Lua file returning a table of JSON-escaped strings). With
-- WRK_UNIQUE=1 every text gets an unseen token appended, so no result cache can answer it.
-- Prints one machine-readable summary line: WRKJSON {...}.
local texts = dofile(os.getenv("WRK_TEXTS"))
local items = tonumber(os.getenv("WRK_ITEMS"))
local unique = os.getenv("WRK_UNIQUE") == "1"
local run = os.getenv("WRK_RUN")

wrk.method = "POST"
wrk.path = os.getenv("WRK_PATH")
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

local counter = 0

request = function()
  counter = counter + 1
  local parts = {}
  for k = 0, items - 1 do
    local text = texts[((counter * items + k) % #texts) + 1]
    if unique then
      text = text .. " zqbench" .. run .. "n" .. counter .. "x" .. k
    end
    parts[#parts + 1] = '{"id":"' .. counter .. "-" .. k .. '","text":"' .. text .. '"}'
  end
  return wrk.format(nil, nil, nil, '{"items":[' .. table.concat(parts, ",") .. "]}")
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"status":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
