-- Shared by every step (prepended to each script). KEYS[1] is the prefix of
-- this deployment's keys, "tq:{<name>}", one hash tag, so every key a step
-- touches is in one slot. Layout (PROTOCOL 5 to 7 and 6.3, as domain::rosters
-- and domain::chats keep them in memory):
--   :tch        HASH teacher -> presence channels
--   :tch:away   HASH teacher -> away spell
--   :tch:chats  HASH teacher -> its active chats, "cid,cid" (at most 5)
--   :st         HASH student -> state: "P" | "W|arrival" | "C|arrival|cid" | "F"
--   :st:ch      HASH student -> presence channels
--   :st:away    HASH student -> away spell
--   :st:id      HASH student -> its id as first sent (JSON)
--   :wait       ZSET student -> arrival (FIFO by arrival)
--   :seq        STRING the next arrival
--   :counts     HASH w, c, f: students waiting, chatting, finished
--   :spell:t, :spell:s  STRING the last away spell handed out
--   :chat:<cid> HASH t, s, obj, ph (a active, f finished, x abandoned), te, se,
--               tj, sj (the ids as sent), n (its home: the node that claimed it)
--   :ver        STRING the version of the last user:status snapshot
--   :q:<cid>    HASH n: messages a chat's home relayed; a:<node>: the last fid relayed from it
--   :nodes      ZSET node -> deadline (ms, Redis time); :dead SET fenced nodes;
--   :on:<node>  HASH presence channels on a node; :reaping SET dead nodes
--               whose users are still being handled
--   :due        ZSET the ends of away windows (see due() below)
--   :epoch      STRING set once by the first node (see below)
--   :ret, :retired  HASH cid -> "teacher\nstudent", LIST cid: the most
--                   recently discarded chats (a late join: "chat finished")
--   :tk         HASH student -> its ticket (JSON: name, question, since), while
--               it waits or chats (office hours)
--   :qs         HASH open ("1" | "0"), message: whether students may get in line
--   :claims     ZSET chat -> when it was claimed (ms, Redis time), the last 10
--               minutes: the service rate behind the estimated wait
-- A user is "u:<id>" (tokenless) or "s:<id>" (signed in).
local P = KEYS[1]
local function k(name) return P .. ':' .. name end

-- The last argument is the epoch the node knows: the value of :epoch when it
-- first connected. If Redis lost its data (restarted empty, flushed), :epoch
-- is gone or new, and no step may act on what the node believes: refuse, so
-- the node resets.
if redis.call('GET', k('epoch')) ~= ARGV[#ARGV] then
  return redis.error_reply('TQEPOCH the shared state was reset')
end

-- The one before it is the node running the step. A node is alive while its
-- deadline in :nodes (Redis time, ms) is ahead; one that missed it was
-- declared dead by another node (tick.lua), which handled its users: it is
-- fenced, and may not write again.
local NODE = ARGV[#ARGV - 1]
local NODE_TTL_MS = 5000
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
if not redis.call('ZSCORE', k('nodes'), NODE) then
  if redis.call('SISMEMBER', k('dead'), NODE) == 1 then
    return redis.error_reply('TQFENCED this node was declared dead')
  end
  redis.call('ZADD', k('nodes'), now_ms() + NODE_TTL_MS, NODE)
end

-- The end of an away window, kept in :due (member "t|spell|user" or
-- "s|spell|user", score: the end, Redis time), so that any node expires it
-- (tick.lua) even if the node that ran the window died.
local function due(kind, user, spell, grace_ms)
  redis.call('ZADD', k('due'), now_ms() + grace_ms, kind .. '|' .. spell .. '|' .. user)
end

-- Presence channels per node (:on:<node> HASH "t|user" or "s|user" -> count),
-- so that a dead node's users can be handled.
local function on_node(kind, user, delta)
  local key, field = k('on:' .. NODE), kind .. '|' .. user
  if redis.call('HINCRBY', key, field, delta) <= 0 then redis.call('HDEL', key, field) end
end

local function split(list)
  local out = {}
  if not list or list == '' then return out end
  for item in string.gmatch(list, '[^,]+') do out[#out + 1] = item end
  return out
end

-- The counter a state is counted in (nil for Present).
local function slot(state)
  local t = string.sub(state, 1, 1)
  if t == 'W' then return 'w' elseif t == 'C' then return 'c' elseif t == 'F' then return 'f' end
  return nil
end

local function set_state(student, old, new)
  local a, b = old and slot(old), slot(new)
  if a then redis.call('HINCRBY', k('counts'), a, -1) end
  if b then redis.call('HINCRBY', k('counts'), b, 1) end
  redis.call('HSET', k('st'), student, new)
  -- A ticket is kept while the student waits or chats (a requeue keeps it).
  local t = string.sub(new, 1, 1)
  if t ~= 'W' and t ~= 'C' then redis.call('HDEL', k('tk'), student) end
end

-- The user:status snapshot: teachers, waiting, chatting, finished, and its
-- version: bumped by every step, so versions follow the order in which Redis
-- ran the steps of every node (nodes drop a snapshot older than one they sent).
local function status()
  local c = redis.call('HMGET', k('counts'), 'w', 'c', 'f')
  return {redis.call('HLEN', k('tch')), tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0,
    redis.call('INCR', k('ver'))}
end

local function teacher_total() return redis.call('HLEN', k('tch')) end

-- An integer as text, never in exponent form.
local function num(x) return string.format('%d', x) end

local function parse_waiting(state)
  if string.sub(state, 1, 2) ~= 'W|' then return nil end
  return tonumber(string.sub(state, 3))
end

-- "C|arrival|cid" -> arrival, cid
local function parse_chatting(state)
  local arrival, chat = string.match(state, '^C|(%d+)|(.+)$')
  if not arrival then return nil end
  return tonumber(arrival), chat
end

-- The chat object (PROTOCOL 5.5), in the key order of the Elixir struct,
-- the ids as the users sent them.
local function chat_object(chat, tjson, sjson, te, se)
  return '{"id":"' .. chat .. '","status":"active","teacher_id":' .. tjson ..
    ',"student_id":' .. sjson .. ',"teacher_entered":' .. tostring(te) ..
    ',"student_entered":' .. tostring(se) .. ',"messages":[]}'
end

-- The chat object as it is now: which sides have entered.
local function current_object(chat)
  local got = redis.call('HMGET', k('chat:' .. chat), 'obj', 'te', 'se', 'tj', 'sj')
  if not got[1] then return false end
  if got[2] ~= '1' and got[3] ~= '1' then return got[1] end
  return chat_object(chat, got[4], got[5], got[2] == '1', got[3] == '1')
end

-- Takes `chat` out of the teacher's slots; false if it held none.
local function release(teacher, chat)
  local chats = split(redis.call('HGET', k('tch:chats'), teacher))
  for i, c in ipairs(chats) do
    if c == chat then
      chats[i] = chats[#chats]
      chats[#chats] = nil
      if redis.call('HEXISTS', k('tch'), teacher) == 1 then
        redis.call('HSET', k('tch:chats'), teacher, table.concat(chats, ','))
      end
      return true
    end
  end
  return false
end

-- Active -> finished, the teacher's slot freed; the two sides, or nil.
local function end_chat(chat)
  local key = k('chat:' .. chat)
  local got = redis.call('HMGET', key, 'ph', 't', 's')
  if got[1] ~= 'a' then return nil end
  redis.call('HSET', key, 'ph', 'f')
  release(got[2], chat)
  return got[2], got[3]
end

-- Out of the roster and the queue; its last state.
local function remove_student(student)
  local state = redis.call('HGET', k('st'), student)
  if not state then return nil end
  redis.call('HDEL', k('st'), student)
  redis.call('HDEL', k('st:ch'), student)
  redis.call('HDEL', k('st:away'), student)
  redis.call('HDEL', k('st:id'), student)
  redis.call('HDEL', k('tk'), student)
  redis.call('ZREM', k('wait'), student)
  local a = slot(state)
  if a then redis.call('HINCRBY', k('counts'), a, -1) end
  return state
end

-- A student vanishes (6.1): out, and a chat it was in finishes.
-- Returns its last state and the chat finished (or '').
local function student_gone(student)
  local was = remove_student(student)
  if not was then return nil end
  local finished = ''
  local _, chat = parse_chatting(was)
  if chat and end_chat(chat) then finished = chat end
  return was, finished
end

local function discard(chat)
  local key = k('chat:' .. chat)
  local got = redis.call('HMGET', key, 'ph', 't', 's')
  if not got[1] or got[1] == 'a' then return false end
  redis.call('DEL', key)
  redis.call('DEL', k('q:' .. chat))
  if redis.call('HSET', k('ret'), chat, got[2] .. '\n' .. got[3]) == 1 then
    redis.call('RPUSH', k('retired'), chat)
  end
  while redis.call('LLEN', k('retired')) > 4096 do
    redis.call('HDEL', k('ret'), redis.call('LPOP', k('retired')))
  end
  return true
end

-- A teacher vanishes (6.2): each chat abandoned, its student requeued with its
-- arrival, the chat forgotten. Returns {cid, requeued student or ''} pairs.
local function teacher_gone(teacher)
  local chats = split(redis.call('HGET', k('tch:chats'), teacher))
  redis.call('HDEL', k('tch'), teacher)
  redis.call('HDEL', k('tch:away'), teacher)
  redis.call('HDEL', k('tch:chats'), teacher)
  local out = {}
  for _, chat in ipairs(chats) do
    local key = k('chat:' .. chat)
    local got = redis.call('HMGET', key, 'ph', 's')
    local requeued = ''
    if got[1] == 'a' then
      redis.call('HSET', key, 'ph', 'x')
      local student = got[2]
      local state = redis.call('HGET', k('st'), student)
      local arrival, current = nil, nil
      if state then arrival, current = parse_chatting(state) end
      if current == chat then
        local holder = redis.call('ZRANGEBYSCORE', k('wait'), arrival, arrival)
        if not holder[1] or holder[1] == student then
          redis.call('ZADD', k('wait'), arrival, student)
          local next = tonumber(redis.call('GET', k('seq')) or '0')
          if arrival >= next then redis.call('SET', k('seq'), arrival + 1) end
          set_state(student, state, 'W|' .. num(arrival))
          requeued = student
        end
      end
    end
    discard(chat)
    out[#out + 1] = {chat, requeued}
  end
  return out
end
