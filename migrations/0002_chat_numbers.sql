-- Transcript store, schema version 2: messages keyed by a small, increasing
-- chat number instead of the chat's UUID text.
--
-- In version 1 every message insert updated two B-trees (the rowid table and
-- the UNIQUE (chat_id, seq) index), and the index entry landed on a random
-- leaf page (chat ids are random UUIDs): each group commit dirtied about one
-- index page per message, and every dirty page is written whole to the WAL
-- and checkpointed later. Now a chat gets `num` (INTEGER PRIMARY KEY, so the
-- next number is one more than the largest), and `messages` is a WITHOUT
-- ROWID table clustered on (chat_num, seq): one B-tree per insert, and the
-- chats being relayed in, the most recently created, all sit at its right
-- edge. The writer keeps each active chat's number and next seq in memory
-- (see src/transcripts/store.rs), so an insert looks nothing up.
--
-- What the API returns is unchanged: chats are still identified and paged by
-- (created_at, id); `num` never leaves the database.

CREATE TABLE chats_v2 (
    num         INTEGER PRIMARY KEY,           -- 1, 2, 3, ... in creation order (rowid)
    id          TEXT    NOT NULL UNIQUE,       -- lowercase hyphenated UUID v4
    teacher     TEXT    NOT NULL,              -- canonical teacher key (PROTOCOL 5.1)
    student     TEXT    NOT NULL,              -- canonical student key
    created_at  INTEGER NOT NULL,              -- claim (new:chat)
    started_at  INTEGER,                       -- chat:ready, if both sides entered
    finished_at INTEGER,                       -- chat:terminated, or the teacher vanished
    ended_by    TEXT CHECK (ended_by IN ('terminated', 'student_left', 'teacher_left'))
);

-- Old chats are numbered in the order they were created.
INSERT INTO chats_v2 (id, teacher, student, created_at, started_at, finished_at, ended_by)
SELECT id, teacher, student, created_at, started_at, finished_at, ended_by
FROM chats
ORDER BY created_at, id;

-- Every relayed message, numbered 1, 2, ... per chat in relay order.
CREATE TABLE messages_v2 (
    chat_num INTEGER NOT NULL,                 -- chats.num
    seq      INTEGER NOT NULL,
    sender   TEXT    NOT NULL CHECK (sender IN ('teacher', 'student')),
    payload  TEXT    NOT NULL,                 -- the payload object exactly as relayed
    at       INTEGER NOT NULL,
    PRIMARY KEY (chat_num, seq)
) WITHOUT ROWID;

-- A version-1 message whose chat has no record could never be read (the API
-- finds messages through their chat); the join leaves such rows behind.
INSERT INTO messages_v2 (chat_num, seq, sender, payload, at)
SELECT chats_v2.num, messages.seq, messages.sender, messages.payload, messages.at
FROM messages JOIN chats_v2 ON chats_v2.id = messages.chat_id
ORDER BY chats_v2.num, messages.seq;

DROP TABLE messages;
DROP TABLE chats;
ALTER TABLE chats_v2 RENAME TO chats;
ALTER TABLE messages_v2 RENAME TO messages;

-- Newest first, keyset-paginated by (created_at, id), optionally per user
-- (as in version 1; dropped with the old table).
CREATE INDEX chats_by_created ON chats (created_at, id);
CREATE INDEX chats_by_teacher ON chats (teacher, created_at, id);
CREATE INDEX chats_by_student ON chats (student, created_at, id);
