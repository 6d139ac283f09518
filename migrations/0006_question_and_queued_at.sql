-- Transcript store, schema version 6 (issue 14): what the student asked when
-- it got in line, and when that was.
--
-- `question` is the text of `student:ready`'s "question" (trimmed, at most
-- 500 characters), NULL when the student asked none. `queued_at` is when the
-- student got in line (unix ms), NULL when the server did not know it; the
-- statistics take a chat's wait as `created_at - queued_at`. Chats recorded
-- before this version have neither.

ALTER TABLE chats ADD COLUMN question TEXT;
ALTER TABLE chats ADD COLUMN queued_at INTEGER;
