-- A teacher's active chats with their objects. ARGV: teacher.
local out = {}
for _, chat in ipairs(split(redis.call('HGET', k('tch:chats'), ARGV[1]))) do
  local object = current_object(chat)
  if object then out[#out + 1] = {chat, object} end
end
return out
