-- A teacher joined presence:teachers on one more channel; back if it was away.
-- ARGV: teacher. Returns {back 0|1, teachers changed 0|1, status}.
local t = ARGV[1]
local before = teacher_total()
redis.call('HINCRBY', k('tch'), t, 1)
on_node('t', t, 1)
local back = redis.call('HDEL', k('tch:away'), t)
return {back, before ~= teacher_total() and 1 or 0, status()}
