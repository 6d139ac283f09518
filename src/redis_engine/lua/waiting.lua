-- The waiting list (office hours): the head of the queue, at most ARGV[1]
-- students, each {student, id as sent, ticket or false, away 0|1}, and how
-- many wait. Returns {total, list}.
local heads = redis.call('ZRANGE', k('wait'), 0, tonumber(ARGV[1]) - 1)
local list = {}
for _, s in ipairs(heads) do
  list[#list + 1] = {s, redis.call('HGET', k('st:id'), s) or false, redis.call('HGET', k('tk'), s) or false,
    redis.call('HEXISTS', k('st:away'), s)}
end
return {redis.call('ZCARD', k('wait')), list}
