-- A student lost a presence channel (ARGV[2] == '') or the window of its away
-- spell ARGV[2] ended: on its last channel, or if still away in that spell, it
-- vanishes (6.1). ARGV: student, spell or ''.
-- Returns {{last state, finished chat or ''} or nil, status}.
local s, spell = ARGV[1], ARGV[2]
if spell ~= '' then redis.call('ZREM', k('due'), 's|' .. spell .. '|' .. s) end
if redis.call('HEXISTS', k('st'), s) == 0 then return {false, status()} end
local away = redis.call('HGET', k('st:away'), s)
if spell == '' then
  if away then return {false, status()} end
  on_node('s', s, -1)
  if redis.call('HINCRBY', k('st:ch'), s, -1) > 0 then return {false, status()} end
else
  if away ~= spell or tonumber(redis.call('HGET', k('st:ch'), s)) > 0 then
    return {false, status()}
  end
end
local was, finished = student_gone(s)
return {{was, finished}, status()}
