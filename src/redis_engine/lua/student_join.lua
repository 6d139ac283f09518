-- A student joined its presence topic on one more channel; back if it was away.
-- ARGV: student, its id as sent (JSON). Returns {back 0|1, state, status}.
local s = ARGV[1]
if redis.call('HEXISTS', k('st'), s) == 0 then
  redis.call('HSET', k('st'), s, 'P')
  redis.call('HSET', k('st:id'), s, ARGV[2])
end
redis.call('HINCRBY', k('st:ch'), s, 1)
on_node('s', s, 1)
local back = redis.call('HDEL', k('st:away'), s)
return {back, redis.call('HGET', k('st'), s), status()}
