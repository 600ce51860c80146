-- A curated golden set: turns a maintainer promoted, with the chunks retrieval must keep finding for them.
CREATE TABLE golden_cases (
    id                 bigserial PRIMARY KEY,
    turn_id            uuid UNIQUE REFERENCES turns (id) ON DELETE SET NULL,
    question           text NOT NULL,
    filters            jsonb NOT NULL DEFAULT '[]',
    expected_chunk_ids text[] NOT NULL CHECK (cardinality(expected_chunk_ids) > 0),
    note               text,
    created_at         timestamptz NOT NULL DEFAULT now()
);
