-- May this user join chats:<chat>? ARGV: chat, 't' | 's' | '' (no valid user),
-- user. Returns 'A|<home node>' allowed, 'U' unknown chat, 'X' unauthorized,
-- 'F' finished. An active chat whose home was declared dead is adopted by the
-- joining node: 'H|<messages relayed so far>' (:q:<cid>, written behind by the home).
local got = redis.call('HMGET', k('chat:' .. ARGV[1]), 'ph', 't', 's', 'n')
local teacher, student, active
if got[1] then
  teacher, student, active = got[2], got[3], got[1] == 'a'
else
  local retired = redis.call('HGET', k('ret'), ARGV[1])
  if not retired then return 'U' end
  teacher, student = string.match(retired, '^(.-)\n(.*)$')
  active = false
end
if ARGV[2] == '' then return 'X' end
local participant = (ARGV[2] == 't' and teacher == ARGV[3]) or (ARGV[2] == 's' and student == ARGV[3])
if not participant then return 'X' end
if not active then return 'F' end
local home = got[4] or ''
if home ~= '' and home ~= NODE and redis.call('SISMEMBER', k('dead'), home) == 1 then
  redis.call('HSET', k('chat:' .. ARGV[1]), 'n', NODE)
  return 'H|' .. (redis.call('GET', k('q:' .. ARGV[1])) or '0')
end
return 'A|' .. home
