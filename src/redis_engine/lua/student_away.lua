-- A student lost a presence channel with its connection: away on its last one.
-- ARGV: student, grace window (ms). Returns {{spell, state} or nil, status}.
local s = ARGV[1]
if redis.call('HEXISTS', k('st'), s) == 0 or redis.call('HEXISTS', k('st:away'), s) == 1 then
  return {false, status()}
end
on_node('s', s, -1)
if redis.call('HINCRBY', k('st:ch'), s, -1) > 0 then return {false, status()} end
redis.call('HSET', k('st:ch'), s, 0)
local spell = redis.call('INCR', k('spell:s'))
redis.call('HSET', k('st:away'), s, spell)
due('s', s, spell, tonumber(ARGV[2]))
return {{spell, redis.call('HGET', k('st'), s)}, status()}
