-- Where a student stands, and its chat's object if chatting. ARGV: student.
local state = redis.call('HGET', k('st'), ARGV[1])
if not state then return false end
local _, chat = parse_chatting(state)
local object = false
if chat then object = current_object(chat) end
return {state, object}
