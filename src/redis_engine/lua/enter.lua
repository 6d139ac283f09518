-- teacher:joined / student:joined: 'R' (ready, exactly once), 'E' or 'N' (not
-- active). ARGV: chat, 't' | 's'.
local key = k('chat:' .. ARGV[1])
local got = redis.call('HMGET', key, 'ph', 'te', 'se')
if got[1] ~= 'a' then return 'N' end
local te, se = got[2] == '1', got[3] == '1'
local both_before = te and se
if ARGV[2] == 't' then te = true; redis.call('HSET', key, 'te', '1')
else se = true; redis.call('HSET', key, 'se', '1') end
if not both_before and te and se then return 'R' end
return 'E'
