-- Scenario 4: POST /public/v1/accounts/api-tokens. The admin (Operations) token of
-- BENCH_ADMIN_SECRET creates, in a Client account drawn at random from BENCH_ACCOUNTS (one
-- account id a line), a token with the Access Management module. Names are unique per run.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local accounts = bench.lines(os.getenv("BENCH_ACCOUNTS"))
local count = #accounts
local headers = {["Authorization"] = "Bearer " .. os.getenv("BENCH_ADMIN_SECRET"),
                 ["Content-Type"] = "application/json"}
local tag = os.getenv("BENCH_TAG") or "bench"
local seq = 0

function init(args)
   bench.seed()
end

function request()
   seq = seq + 1
   local body = string.format(
      '{"name":"%s %d-%d","description":"Created by bench/run.py.",' ..
      '"account":{"id":"%s"},"modules":[{"id":"MOD-1732"}]}',
      tag, bench_thread or 0, seq, accounts[math.random(count)])
   return wrk.format("POST", "/public/v1/accounts/api-tokens", headers, body)
end
