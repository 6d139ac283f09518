-- Transcript store, schema version 4: a chat can end `interrupted`.
--
-- A chat still in progress when the server died (SIGKILL, crash, power
-- loss) had no finish record, and no later run could ever write one: it
-- stayed unfinished forever. Now the store, when it opens, finishes every
-- such chat with ended_by = 'interrupted' (see src/transcripts/store.rs).
-- SQLite cannot change a CHECK constraint in place, so `chats` is rebuilt
-- with the same columns and rows (`num` kept: messages refer to it).

CREATE TABLE chats_v4 (
    num         INTEGER PRIMARY KEY,           -- 1, 2, 3, ... in creation order (rowid)
    id          TEXT    NOT NULL UNIQUE,       -- lowercase hyphenated UUID v4
    teacher     TEXT    NOT NULL,              -- canonical teacher key (PROTOCOL 5.1)
    student     TEXT    NOT NULL,              -- canonical student key
    created_at  INTEGER NOT NULL,              -- claim (new:chat)
    started_at  INTEGER,                       -- chat:ready, if both sides entered
    finished_at INTEGER,                       -- chat:terminated, the teacher vanished,
                                               -- or its last record before a crash
    ended_by    TEXT CHECK (ended_by IN ('terminated', 'student_left', 'teacher_left',
                                         'interrupted'))
);

INSERT INTO chats_v4 (num, id, teacher, student, created_at, started_at, finished_at, ended_by)
SELECT num, id, teacher, student, created_at, started_at, finished_at, ended_by
FROM chats
ORDER BY num;

DROP TABLE chats;
ALTER TABLE chats_v4 RENAME TO chats;

CREATE INDEX chats_by_created ON chats (created_at, id);
CREATE INDEX chats_by_teacher ON chats (teacher, created_at, id);
CREATE INDEX chats_by_student ON chats (student, created_at, id);
