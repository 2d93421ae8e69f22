-- Scenario 3: the first page of a Client's own Active tokens, newest first, with a Client
-- token (BENCH_CLIENT_SECRET). The path and query come from the command line; the request
-- is the same every time, so wrk sends it pre-formatted.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_CLIENT_SECRET")
