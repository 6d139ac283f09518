-- The service rate behind the estimated wait: {claims in the last 10
-- minutes, the oldest of them (ms, or false), now (ms, Redis time)}.
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', k('claims'), '-inf', '(' .. num(now - 600000))
local oldest = redis.call('ZRANGE', k('claims'), 0, 0, 'WITHSCORES')
return {redis.call('ZCARD', k('claims')), oldest[2] or false, now}
