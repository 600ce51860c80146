-- Slack channel history as a source (retrieval/sources_slack.py): one document per thread.
ALTER TABLE sources DROP CONSTRAINT IF EXISTS sources_kind_check;
ALTER TABLE sources ADD CONSTRAINT sources_kind_check CHECK (kind IN ('folder', 'git', 'slack'));
