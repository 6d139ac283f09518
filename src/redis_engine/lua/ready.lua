-- student:ready: the tail of the queue with a new arrival, or unchanged.
-- While the queue is closed (:qs open = "0"), a student not in line is not
-- queued ('X'); one in line keeps its place. ARGV: student, its ticket (JSON).
-- A waiting student's ticket is kept; a repeated ready changes its question.
-- Returns {'Q' | 'U' | 'N' | 'X', arrival or 0, status}.
local s, ticket = ARGV[1], ARGV[2]
local state = redis.call('HGET', k('st'), s)
if not state then return {'N', 0, status()} end
local t = string.sub(state, 1, 1)
if t == 'W' or t == 'C' then
  local kept = redis.call('HGET', k('tk'), s)
  if t == 'W' and kept then
    local old, new = cjson.decode(kept), cjson.decode(ticket)
    old.question = new.question
    redis.call('HSET', k('tk'), s, cjson.encode(old))
  elseif t == 'W' then
    redis.call('HSET', k('tk'), s, ticket)
  end
  return {'U', 0, status()}
end
if redis.call('HGET', k('qs'), 'open') == '0' then return {'X', 0, status()} end
local arrival = tonumber(redis.call('GET', k('seq')) or '0')
redis.call('SET', k('seq'), num(arrival + 1))
redis.call('ZADD', k('wait'), num(arrival), s)
set_state(s, state, 'W|' .. num(arrival))
redis.call('HSET', k('tk'), s, ticket)
return {'Q', arrival, status()}
