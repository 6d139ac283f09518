-- student:ready: the tail of the queue with a new arrival, or unchanged.
-- ARGV: student. Returns {'Q' | 'U' | 'N', arrival or 0, status}.
local s = ARGV[1]
local state = redis.call('HGET', k('st'), s)
if not state then return {'N', 0, status()} end
local t = string.sub(state, 1, 1)
if t == 'W' or t == 'C' then return {'U', 0, status()} end
local arrival = tonumber(redis.call('GET', k('seq')) or '0')
redis.call('SET', k('seq'), num(arrival + 1))
redis.call('ZADD', k('wait'), num(arrival), s)
set_state(s, state, 'W|' .. num(arrival))
return {'Q', arrival, status()}
