-- The second kind of learned retriever (retrieval/adapter.py): the query adapter applies only near the questions it
-- was trained on, and a memory of ratings moves rated passages for close questions. Its anchors, gate and memory
-- travel as one .npz in `extra`; `weights` keeps W, so the first kind's rows load as before.
ALTER TABLE retrievers DROP CONSTRAINT IF EXISTS retrievers_kind_check;
ALTER TABLE retrievers ADD CONSTRAINT retrievers_kind_check CHECK (kind IN ('query-adapter', 'local-adapter'));
ALTER TABLE retrievers ADD COLUMN IF NOT EXISTS extra bytea;
