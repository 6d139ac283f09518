-- Transcript store, schema version 3: new messages are appended to a
-- staging table first and moved into `messages` in bulk.
--
-- In version 2 each group commit inserted into `messages` (clustered on
-- (chat_num, seq)) at one place per active chat: with N chats being relayed
-- in, a commit dirtied about N leaf pages, each written whole (4 KiB) to the
-- WAL and checkpointed later, for a few short messages each. Now the writer
-- appends to `message_log`, a plain rowid table with no index, so a commit
-- dirties only its right edge (about its bytes / 4 KiB pages). Once it holds
-- enough rows (and when the store closes) the writer moves them, sorted by
-- (chat_num, seq), into `messages` and empties it in one transaction, so
-- each chat's last page is written once per move instead of once per commit.
-- A message is always in exactly one of the two tables; reads look in both.

CREATE TABLE message_log (
    chat_num INTEGER NOT NULL,                 -- chats.num
    seq      INTEGER NOT NULL,
    sender   TEXT    NOT NULL CHECK (sender IN ('teacher', 'student')),
    payload  TEXT    NOT NULL,                 -- the payload object exactly as relayed
    at       INTEGER NOT NULL
);
