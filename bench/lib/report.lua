-- report.lua - wrk hooks shared by every bench/api.sh run: count non-2xx
-- answers per thread and print one machine-readable summary line.
-- Other scripts set wrk.method/body/headers and then dofile() this one.

local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	non2xx = 0
end

function response(status, headers, body)
	if status < 200 or status > 299 then
		non2xx = non2xx + 1
	end
end

function done(summary, latency, requests)
	local bad = 0
	for _, t in ipairs(threads) do
		bad = bad + (t:get("non2xx") or 0)
	end
	local e = summary.errors
	-- RESULT requests seconds p50_us p99_us non2xx socket_errors
	io.write(string.format("RESULT %d %.3f %d %d %d %d\n",
		summary.requests, summary.duration / 1e6,
		latency:percentile(50), latency:percentile(99), bad,
		e.connect + e.read + e.write + e.timeout))
end
