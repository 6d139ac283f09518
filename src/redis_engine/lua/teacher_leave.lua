-- A teacher lost a presence channel (ARGV[2] == '') or the window of its away
-- spell ARGV[2] ended: on its last channel, or if still away in that spell, it
-- vanishes (6.2). ARGV: teacher, spell or ''.
-- Returns {gone 0|1, {{cid, requeued student or ''}...}, teachers changed 0|1, status}.
local t, spell = ARGV[1], ARGV[2]
if spell ~= '' then redis.call('ZREM', k('due'), 't|' .. spell .. '|' .. t) end
local before = teacher_total()
if redis.call('HEXISTS', k('tch'), t) == 0 then return {0, {}, 0, status()} end
local away = redis.call('HGET', k('tch:away'), t)
if spell == '' then
  if away then return {0, {}, 0, status()} end
  on_node('t', t, -1)
  if redis.call('HINCRBY', k('tch'), t, -1) > 0 then return {0, {}, 0, status()} end
else
  if away ~= spell or tonumber(redis.call('HGET', k('tch'), t)) > 0 then
    return {0, {}, 0, status()}
  end
end
local abandoned = teacher_gone(t)
return {1, abandoned, before ~= teacher_total() and 1 or 0, status()}
