-- Scenario read-mix: GET /public/v1/accounts/api-tokens/{id}, each request authenticated with
-- a token that reads itself, as in read_self.lua, but drawn by popularity: the token on line
-- k of BENCH_MIX_SECRETS (run.py shuffled them) has weight k^-s, s = BENCH_ZIPF_S (Zipf).
-- The draw is made here, per request: a uniform number against the cumulative weights
-- (inverse CDF, a binary search), so each wrk run (each measured window) draws afresh.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local ids, auth = {}, {}
for i, secret in ipairs(bench.lines(os.getenv("BENCH_MIX_SECRETS"))) do
   ids[i] = "/public/v1/accounts/api-tokens/" .. secret:match("^idt:([^:]+):")
   auth[i] = "Bearer " .. secret
end
local count = #ids
local s = tonumber(os.getenv("BENCH_ZIPF_S"))

local cumulative, total = {}, 0
for k = 1, count do
   total = total + k ^ -s
   cumulative[k] = total
end

local function rank()
   local u = math.random() * total
   local low, high = 1, count
   while low < high do
      local middle = math.floor((low + high) / 2)
      if cumulative[middle] < u then low = middle + 1 else high = middle end
   end
   return low
end

function init(args)
   bench.seed()
end

function request()
   local i = rank()
   return wrk.format("GET", ids[i], {["Authorization"] = auth[i]})
end
