-- Where does an active chat live now? ARGV: chat. Its home when that node is
-- alive ('A|<node>'); if its home was declared dead, this node adopts it
-- ('H|<messages relayed so far>'); 'F' if it finished (and is not forgotten
-- yet); 'N' if it is not active otherwise.
local key = k('chat:' .. ARGV[1])
local got = redis.call('HMGET', key, 'ph', 'n')
if got[1] == 'f' then return 'F' end
if got[1] ~= 'a' then return 'N' end
local home = got[2] or ''
if home == '' or home == NODE or redis.call('SISMEMBER', k('dead'), home) == 0 then
  return 'A|' .. home
end
redis.call('HSET', key, 'n', NODE)
return 'H|' .. (redis.call('HGET', k('q:' .. ARGV[1]), 'n') or '0')
