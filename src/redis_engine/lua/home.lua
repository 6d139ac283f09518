-- Where does an active chat live now? ARGV: chat. Its home when that node is
-- alive ('A|<node>'); if its home was declared dead, this node adopts it
-- ('H|<messages relayed so far>'); 'N' if the chat is not active.
local key = k('chat:' .. ARGV[1])
local got = redis.call('HMGET', key, 'ph', 'n')
if got[1] ~= 'a' then return 'N' end
local home = got[2] or ''
if home == '' or home == NODE or redis.call('SISMEMBER', k('dead'), home) == 0 then
  return 'A|' .. home
end
redis.call('HSET', key, 'n', NODE)
return 'H|' .. (redis.call('GET', k('q:' .. ARGV[1])) or '0')
