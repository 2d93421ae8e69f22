-- Scenario 1, the baseline: GET /healthz (no I/O, no authentication). The URL comes from the
-- command line; this script only adds the report.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
