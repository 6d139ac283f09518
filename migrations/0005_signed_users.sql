-- Transcript store, schema version 5: whether each side of a chat proved
-- who it is with a token (PROTOCOL 1.7).
--
-- Users with a token and tokenless clients are separate namespaces: signed-in
-- "carol" and a tokenless client calling itself "carol" are two people. The
-- ids are stored as text either way, so these flags keep the namespaces apart
-- in the record, and a signed-in user's view of its chats never includes a
-- tokenless client's chats under the same id. Chats recorded before this
-- version were all tokenless.

ALTER TABLE chats ADD COLUMN teacher_signed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN student_signed INTEGER NOT NULL DEFAULT 0;
