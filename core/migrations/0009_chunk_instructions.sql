-- The sentences of a chunk that address the assistant ("ignore previous instructions and ..."), found at ingest by
-- retrieval/instructions.py: kept out of prompts and marked in the sources panel. NULL: stored before ingest
-- flagged them (checked when retrieved instead; `citewise reindex` fills it in); an empty array: none found.
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS instructions text[];
