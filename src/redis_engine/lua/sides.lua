-- The teacher and the student of a chat the log still knows. ARGV: chat.
local got = redis.call('HMGET', k('chat:' .. ARGV[1]), 't', 's')
if not got[1] then return false end
return {got[1], got[2]}
