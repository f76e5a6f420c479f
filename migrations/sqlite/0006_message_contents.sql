-- A message's content apart from its state: the state is rewritten at every
-- claim and outcome, the content (kilobytes) only once. Small state rows
-- share pages, so each of those writes touches a fraction of the pages.
CREATE TABLE message_contents (
    id      TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    content TEXT NOT NULL
);
INSERT INTO message_contents (id, content) SELECT id, content FROM messages;
ALTER TABLE messages DROP COLUMN content;
