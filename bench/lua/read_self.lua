-- Scenario 2: GET /public/v1/accounts/api-tokens/{id}, each request authenticated with a
-- token drawn at random from BENCH_SECRETS (one secret a line, idt:<TKN id>:<random>), which
-- reads itself (any token may GET itself). So every request is a different credential:
-- the credential cache, the token lookup and the response are all exercised.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local ids, auth = {}, {}
for i, secret in ipairs(bench.lines(os.getenv("BENCH_SECRETS"))) do
   ids[i] = "/public/v1/accounts/api-tokens/" .. secret:match("^idt:([^:]+):")
   auth[i] = "Bearer " .. secret
end
local count = #ids

function init(args)
   bench.seed()
end

function request()
   local i = math.random(count)
   return wrk.format("GET", ids[i], {["Authorization"] = auth[i]})
end
