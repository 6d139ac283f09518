-- Whether students may get in line. ARGV: 'get', or 'set' with open ("1" |
-- "0") and a message ('' for none). Returns {open 1|0, message or false,
-- changed 1|0}.
local open, message = redis.call('HGET', k('qs'), 'open'), redis.call('HGET', k('qs'), 'message')
open = open ~= '0'
if ARGV[1] == 'set' then
  local new_open, new_message = ARGV[2] == '1', ARGV[3]
  local changed = (new_open ~= open) or (new_message ~= (message or ''))
  redis.call('HSET', k('qs'), 'open', ARGV[2], 'message', new_message)
  if new_message == '' then new_message = false end
  return {new_open and 1 or 0, new_message, changed and 1 or 0}
end
if message == '' then message = false end
return {open and 1 or 0, message or false, 0}
