-- claim:student (7.1) as one step: a slot of the teacher (at most 5), the
-- first waiting student who is not away, the chat. ARGV: teacher, chat id,
-- the teacher's id as sent (JSON), the claiming node (the chat's home). Returns {{student, chat object, ticket
-- or false} or nil, status}.
local t, chat, tjson, node = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HEXISTS', k('tch'), t) == 0 then return {false, status()} end
local chats = split(redis.call('HGET', k('tch:chats'), t))
local held = false
for _, c in ipairs(chats) do if c == chat then held = true end end
if not held and #chats >= 5 then return {false, status()} end
local found, arrival = nil, nil
local kept = 0
while not found do
  local batch = redis.call('ZRANGE', k('wait'), kept, kept + 15, 'WITHSCORES')
  if #batch == 0 then break end
  for i = 1, #batch, 2 do
    local s, arr = batch[i], tonumber(batch[i + 1])
    if redis.call('HEXISTS', k('st'), s) == 1 and redis.call('HEXISTS', k('st:away'), s) == 0 then
      redis.call('ZREM', k('wait'), s)
      if redis.call('HGET', k('st'), s) == 'W|' .. num(arr) then
        found, arrival = s, arr
        break
      end
    else
      kept = kept + 1
    end
  end
end
if not found then return {false, status()} end
if not held then
  chats[#chats + 1] = chat
  redis.call('HSET', k('tch:chats'), t, table.concat(chats, ','))
end
set_state(found, 'W|' .. num(arrival), 'C|' .. num(arrival) .. '|' .. chat)
local sjson = redis.call('HGET', k('st:id'), found)
local object = chat_object(chat, tjson, sjson, false, false)
redis.call('HSET', k('chat:' .. chat), 't', t, 's', found, 'obj', object, 'ph', 'a', 'te', '0', 'se', '0',
  'tj', tjson, 'sj', sjson, 'n', node)
-- The service rate: claims of the last 10 minutes.
local now = now_ms()
redis.call('ZADD', k('claims'), now, chat)
redis.call('ZREMRANGEBYSCORE', k('claims'), '-inf', '(' .. num(now - 600000))
return {{found, object, redis.call('HGET', k('tk'), found) or false}, status()}
