-- Sources that sync (retrieval/sources.py): a named folder whose documents follow it. `source_files` remembers each
-- file's size and modification time as of its last successful ingest, so an unchanged file costs a stat; a file
-- that failed keeps no row and is read again next time. Documents keep `source` = the source's name.
CREATE TABLE IF NOT EXISTS sources (
    name          text PRIMARY KEY,
    kind          text NOT NULL DEFAULT 'folder' CHECK (kind IN ('folder')),
    location      text NOT NULL,
    access_groups text[] NOT NULL DEFAULT '{}',
    include       text[] NOT NULL DEFAULT '{}',
    exclude       text[] NOT NULL DEFAULT '{}',
    every_s       integer CHECK (every_s IS NULL OR every_s >= 60),
    created_at    timestamptz NOT NULL DEFAULT now(),
    synced_at     timestamptz,
    result        text,
    counts        jsonb NOT NULL DEFAULT '{}',
    failures      jsonb NOT NULL DEFAULT '[]',
    seconds       real
);

CREATE TABLE IF NOT EXISTS source_files (
    source   text NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    path     text NOT NULL,
    size     bigint NOT NULL,
    mtime_ns bigint NOT NULL,
    PRIMARY KEY (source, path)
);
