-- Transcript store, schema version 1 (applied by rusqlite_migration, tracked in
-- PRAGMA user_version). Times are unix milliseconds (server clock).

-- One row per chat, written at claim time and completed as the chat goes on.
CREATE TABLE chats (
    id          TEXT    NOT NULL PRIMARY KEY,  -- lowercase hyphenated UUID v4
    teacher     TEXT    NOT NULL,              -- canonical teacher key (PROTOCOL 5.1)
    student     TEXT    NOT NULL,              -- canonical student key
    created_at  INTEGER NOT NULL,              -- claim (new:chat)
    started_at  INTEGER,                       -- chat:ready, if both sides entered
    finished_at INTEGER,                       -- chat:terminated, or the teacher vanished
    ended_by    TEXT CHECK (ended_by IN ('terminated', 'student_left', 'teacher_left'))
);

-- Newest first, keyset-paginated by (created_at, id), optionally per user.
CREATE INDEX chats_by_created ON chats (created_at, id);
CREATE INDEX chats_by_teacher ON chats (teacher, created_at, id);
CREATE INDEX chats_by_student ON chats (student, created_at, id);

-- Every relayed message, numbered 1, 2, ... per chat in relay order.
CREATE TABLE messages (
    chat_id TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    sender  TEXT    NOT NULL CHECK (sender IN ('teacher', 'student')),
    payload TEXT    NOT NULL,                  -- the payload object exactly as relayed
    at      INTEGER NOT NULL,
    UNIQUE (chat_id, seq)
);
