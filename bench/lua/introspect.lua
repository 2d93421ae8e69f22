-- Scenario introspect: POST /public/v1/accounts/api-tokens/introspect. The admin (Operations)
-- token of BENCH_ADMIN_SECRET, which holds Access Management, asks about a token drawn at
-- random from BENCH_SECRETS (the known secrets of read), sent as JSON {"token": "<secret>"}.
-- One caller all the time, a different token checked on every request. The requests are
-- formatted once, when the script loads: wrk shares the machine's two cores with the server.
-- Every known secret is Active, so each answer should be {"active": true, ...}; a 200 with
-- {"active": false} is not counted here (checks.py fails the run on it before the load).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local headers = {["Authorization"] = "Bearer " .. os.getenv("BENCH_ADMIN_SECRET"),
                 ["Content-Type"] = "application/json"}
local requests = {}
for i, secret in ipairs(bench.lines(os.getenv("BENCH_SECRETS"))) do
   -- The secrets are idt:<id>:<url-safe base64>: nothing in them needs escaping in JSON.
   requests[i] = wrk.format("POST", "/public/v1/accounts/api-tokens/introspect", headers,
                            '{"token":"' .. secret .. '"}')
end
local count = #requests

function init(args)
   bench.seed()
end

function request()
   return requests[math.random(count)]
end
