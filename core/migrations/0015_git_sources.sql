-- Git sources (retrieval/sources_git.py): a repository at a branch, synced by the diff between the last synced
-- commit and the branch's head. Each file remembers the uri its document was stored under (a git file cites
-- path@commit, the commit that last changed it), so deletions compare what is stored, not what a path looks like.
ALTER TABLE sources DROP CONSTRAINT IF EXISTS sources_kind_check;
ALTER TABLE sources ADD CONSTRAINT sources_kind_check CHECK (kind IN ('folder', 'git'));
ALTER TABLE sources ADD COLUMN IF NOT EXISTS branch text;
ALTER TABLE sources ADD COLUMN IF NOT EXISTS commit text;
ALTER TABLE source_files ADD COLUMN IF NOT EXISTS uri text;
UPDATE source_files SET uri = path WHERE uri IS NULL;
ALTER TABLE source_files ALTER COLUMN uri SET NOT NULL;
