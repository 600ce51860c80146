-- Retrievers learned from feedback (citewise learn): each a version with its weights, what it was trained on, how it
-- measured, and its state. At most one is active; rollback re-activates the one active before it. Every turn
-- records the version its search used (NULL: none, the base model alone).
CREATE TABLE retrievers (
    id           serial PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('query-adapter')),
    base_model   text NOT NULL,
    dim          integer NOT NULL,
    weights      bytea NOT NULL,           -- float32, row-major dim x dim
    training     jsonb NOT NULL,           -- pairs found and used, held-out split, settings, seconds
    metrics      jsonb NOT NULL DEFAULT '{}',  -- the gate: candidate against the version in use
    status       text NOT NULL CHECK (status IN ('candidate', 'active', 'retired', 'rejected')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    retired_at   timestamptz
);
CREATE UNIQUE INDEX retrievers_one_active ON retrievers ((true)) WHERE status = 'active';

ALTER TABLE turns ADD COLUMN IF NOT EXISTS retriever_version integer REFERENCES retrievers (id);

-- A thumb on one cited source ("this passage was / was not what I needed") names the source's number and, so that
-- learning needs no guess, the chunk it showed. A thumb on the whole answer has neither.
ALTER TABLE feedback ADD COLUMN IF NOT EXISTS chunk_id text;
ALTER TABLE feedback ADD COLUMN IF NOT EXISTS on_source boolean NOT NULL DEFAULT false;
