-- wrk script: a point query through POST /api/v1/query (benches/server_load.sh).
-- Row ids cycle through 1..10000 so the reads spread over the table's pages.
local n = 0
request = function()
    n = n % 10000 + 1
    return wrk.format("POST", "/api/v1/query", {
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. os.getenv("RO_TOKEN"),
    }, '{"sql":"SELECT id, name FROM bench WHERE id = ' .. n .. '"}')
end
