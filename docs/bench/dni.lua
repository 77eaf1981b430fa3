-- wrk script: DNI requests; each connection renews its own visitor session,
-- so the pool is never exhausted and every request is a real assignment.
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  key = os.getenv("PB_KEY")
  requests = 0
end
function request()
  requests = requests + 1
  local session = string.format("visitor-%d-%d", id, requests % 50)
  local body = string.format('{"session_id":"%s","attributes":{"source":"google-ads"}}', session)
  return wrk.format("POST", nil, {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}, body)
end
