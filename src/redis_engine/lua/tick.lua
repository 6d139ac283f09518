-- Every second on every node: this node is alive for NODE_TTL_MS more; one
-- node past its deadline is declared dead (fenced for good); then up to 100
-- users of a dead node are handled, exactly once, as if their channels there
-- had gone with their connection: a signed-in user ("s:...") while the grace
-- window is not zero becomes away (PROTOCOL 6.3), anyone else vanishes (6.1,
-- 6.2). A node that dies halfway leaves the rest to the next tick of any node.
-- ARGV: grace window in ms (0: nobody is kept).
-- Then up to 100 away windows that ended are leased to this node to end.
-- Returns {{outcome...}, dead node declared now or '', {"t|spell|user"...}, status};
-- an outcome is
-- {'ta', teacher, spell, "cid,cid"} | {'tg', teacher, {{cid, requeued}...}, fewer 0|1}
-- | {'sa', student, spell, state} | {'sg', student, last state, finished chat or ''}.
local grace = tonumber(ARGV[1])
local now = now_ms()
redis.call('ZADD', k('nodes'), now + NODE_TTL_MS, NODE)
local declared = ''
local late = redis.call('ZRANGEBYSCORE', k('nodes'), '-inf', now, 'LIMIT', 0, 1)
if late[1] then
  declared = late[1]
  redis.call('ZREM', k('nodes'), declared)
  redis.call('SADD', k('dead'), declared)
  redis.call('SADD', k('reaping'), declared)
end
local out = {}
local dead = redis.call('SRANDMEMBER', k('reaping'))
if dead then
  local key = k('on:' .. dead)
  local batch = redis.call('HSCAN', key, 0, 'COUNT', 100)[2]
  for i = 1, #batch, 2 do
    local kind, user = string.match(batch[i], '^(%a)|(.*)$')
    local channels = tonumber(batch[i + 1])
    redis.call('HDEL', key, batch[i])
    local kept = grace > 0 and string.sub(user, 1, 2) == 's:'
    if kind == 't' and redis.call('HEXISTS', k('tch'), user) == 1
        and redis.call('HEXISTS', k('tch:away'), user) == 0 then
      local before = teacher_total()
      if redis.call('HINCRBY', k('tch'), user, -channels) <= 0 then
        redis.call('HSET', k('tch'), user, 0)
        if kept then
          local spell = redis.call('INCR', k('spell:t'))
          redis.call('HSET', k('tch:away'), user, spell)
          due('t', user, spell, grace)
          out[#out + 1] = {'ta', user, spell, redis.call('HGET', k('tch:chats'), user) or ''}
        else
          local abandoned = teacher_gone(user)
          out[#out + 1] = {'tg', user, abandoned, before ~= teacher_total() and 1 or 0}
        end
      end
    elseif kind == 's' and redis.call('HEXISTS', k('st'), user) == 1
        and redis.call('HEXISTS', k('st:away'), user) == 0 then
      if redis.call('HINCRBY', k('st:ch'), user, -channels) <= 0 then
        redis.call('HSET', k('st:ch'), user, 0)
        if kept then
          local spell = redis.call('INCR', k('spell:s'))
          redis.call('HSET', k('st:away'), user, spell)
          due('s', user, spell, grace)
          out[#out + 1] = {'sa', user, spell, redis.call('HGET', k('st'), user)}
        else
          local was, finished = student_gone(user)
          out[#out + 1] = {'sg', user, was, finished}
        end
      end
    end
  end
  if redis.call('EXISTS', key) == 0 then redis.call('SREM', k('reaping'), dead) end
end
-- Away windows that ended, whoever ran them: leased to this node for
-- NODE_TTL_MS (another node takes them if this one dies before it ends them;
-- ending one is idempotent: the leave scripts check the spell).
local ended = redis.call('ZRANGEBYSCORE', k('due'), '-inf', now, 'LIMIT', 0, 100)
for _, member in ipairs(ended) do
  redis.call('ZADD', k('due'), now + NODE_TTL_MS, member)
end
return {out, declared, ended, status()}
