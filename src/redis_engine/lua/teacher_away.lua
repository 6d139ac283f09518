-- A teacher lost a presence channel with its connection: away on its last one.
-- ARGV: teacher, grace window (ms). Returns {{spell, "cid,cid"} or nil, status}.
local t = ARGV[1]
if redis.call('HEXISTS', k('tch'), t) == 0 or redis.call('HEXISTS', k('tch:away'), t) == 1 then
  return {false, status()}
end
on_node('t', t, -1)
if redis.call('HINCRBY', k('tch'), t, -1) > 0 then return {false, status()} end
redis.call('HSET', k('tch'), t, 0)
local spell = redis.call('INCR', k('spell:t'))
redis.call('HSET', k('tch:away'), t, spell)
due('t', t, spell, tonumber(ARGV[2]))
return {{spell, redis.call('HGET', k('tch:chats'), t) or ''}, status()}
