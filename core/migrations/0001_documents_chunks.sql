-- Documents, their chunks (dense + BM25 sparse vectors, full-text), keyword statistics kept by triggers.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE documents (
    id            text PRIMARY KEY,              -- content hash of identity, metadata and text
    source        text NOT NULL,
    uri           text NOT NULL,
    title         text NOT NULL DEFAULT '',
    author        text,
    created_at    timestamptz,
    updated_at    timestamptz,
    access_groups text[] NOT NULL DEFAULT '{}',
    metadata      jsonb NOT NULL DEFAULT '{}',
    char_count    integer NOT NULL,
    pii_counts    jsonb NOT NULL DEFAULT '{}',
    ingested_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, uri)
);
CREATE INDEX documents_author_idx ON documents (author);
CREATE INDEX documents_created_idx ON documents (created_at);
CREATE INDEX documents_updated_idx ON documents (updated_at);
CREATE INDEX documents_groups_idx ON documents USING gin (access_groups);
CREATE INDEX documents_metadata_idx ON documents USING gin (metadata jsonb_path_ops);

CREATE TABLE chunks (
    id            text PRIMARY KEY,              -- content hash of document id, ordinal and text
    document_id   text NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal       integer NOT NULL,
    text          text NOT NULL,
    text_hash     text NOT NULL,
    token_count   integer NOT NULL,
    char_start    integer NOT NULL,
    char_end      integer NOT NULL,
    heading_path  text[] NOT NULL DEFAULT '{}',
    embedding     halfvec NOT NULL,              -- typed to the model's dimension by embedding_config
    keyword_terms integer[] NOT NULL,            -- hashed stemmed terms, for candidates and statistics
    keyword_len   integer NOT NULL,              -- BM25 document length (terms after stop words)
    keyword_vec   sparsevec NOT NULL,            -- BM25 term weights; IDF is applied on the query side
    tsv           tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_terms_idx ON chunks USING gin (keyword_terms);
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
CREATE INDEX chunks_text_hash_idx ON chunks (text_hash);

CREATE TABLE keyword_df (
    term_id integer PRIMARY KEY,
    df      integer NOT NULL
);
CREATE TABLE keyword_stats (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    n_chunks  bigint NOT NULL,
    total_len bigint NOT NULL
);
INSERT INTO keyword_stats VALUES (true, 0, 0);

CREATE TABLE embedding_config (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    model      text NOT NULL,
    dim        integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Keyword statistics follow every insert, update and delete of chunks (cascades included) in the same
-- transaction, so BM25's IDF can never go stale against the rows it describes. Terms whose df falls to
-- zero keep their row: no chunk holds them, so they can never score.
CREATE FUNCTION chunks_keyword_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE keyword_df d SET df = d.df - o.c
        FROM (SELECT t, count(*) AS c FROM old_rows, unnest(keyword_terms) AS t GROUP BY t ORDER BY t) o
        WHERE d.term_id = o.t;
        UPDATE keyword_stats SET n_chunks = n_chunks - (SELECT count(*) FROM old_rows),
                                 total_len = total_len - (SELECT coalesce(sum(keyword_len), 0) FROM old_rows);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO keyword_df (term_id, df)
        SELECT t, count(*) FROM new_rows, unnest(keyword_terms) AS t GROUP BY t ORDER BY t
        ON CONFLICT (term_id) DO UPDATE SET df = keyword_df.df + EXCLUDED.df;
        UPDATE keyword_stats SET n_chunks = n_chunks + (SELECT count(*) FROM new_rows),
                                 total_len = total_len + (SELECT coalesce(sum(keyword_len), 0) FROM new_rows);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER chunks_keyword_insert AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION chunks_keyword_stats();
CREATE TRIGGER chunks_keyword_update AFTER UPDATE ON chunks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION chunks_keyword_stats();
CREATE TRIGGER chunks_keyword_delete AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION chunks_keyword_stats();
