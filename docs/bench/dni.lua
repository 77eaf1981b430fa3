-- wrk script: DNI requests. DNI_MODE=renew (default): each thread renews its
-- own 50 visitor sessions round-robin, so every request reads, decides and
-- writes a session. DNI_MODE=new: every request is a new visitor (the pool is
-- exhausted after its 1,000 numbers, then every request is counted and
-- answered the default number).
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  key = os.getenv("PB_KEY")
  mode = os.getenv("DNI_MODE") or "renew"
  requests = 0
end
function request()
  requests = requests + 1
  local body
  if mode == "new" then
    body = '{"attributes":{"source":"google-ads"}}'
  else
    local session = string.format("visitor-%d-%d", id, requests % 50)
    body = string.format('{"session_id":"%s","attributes":{"source":"google-ads"}}', session)
  end
  return wrk.format("POST", nil, {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}, body)
end
