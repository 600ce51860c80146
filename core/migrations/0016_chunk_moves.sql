-- A renamed file's passages keep their ratings: when a sync finds a deleted file's whole text under a new name, each
-- old chunk id is mapped to the new one here, and learning (chat/feedback/collect.py) reads ratings through it. The
-- documents are kept too, so deleting the file later scrubs the answers that cited it under its old name.
CREATE TABLE IF NOT EXISTS chunk_moves (
    old_id          text PRIMARY KEY,
    new_id          text NOT NULL,
    old_document_id text NOT NULL,
    new_document_id text NOT NULL,
    moved_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS chunk_moves_new_document_idx ON chunk_moves (new_document_id);
