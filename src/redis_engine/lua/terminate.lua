-- chat:terminate (7.2): the chat finishes once, the slot is freed, the student
-- is finished. ARGV: chat. Returns {{teacher, student} or nil, status}.
local chat = ARGV[1]
local t, s = end_chat(chat)
if not t then return {false, status()} end
local state = redis.call('HGET', k('st'), s)
if state then
  local _, current = parse_chatting(state)
  if current == chat then set_state(s, state, 'F') end
end
return {{t, s}, status()}
