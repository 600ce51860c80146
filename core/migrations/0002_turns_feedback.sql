-- Every answered turn, and thumbs up/down against it, so evals can replay what users saw.
CREATE TABLE turns (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id     text NOT NULL,
    user_id             text,
    channel             text NOT NULL CHECK (channel IN ('cli', 'web', 'slack', 'api', 'eval')),
    question            text NOT NULL,
    standalone_question text,
    filters             jsonb NOT NULL DEFAULT '[]',
    sampling            jsonb NOT NULL,
    retrieved           jsonb NOT NULL DEFAULT '[]',  -- candidates with fused and re-ranked scores and ranks
    prompt_name         text,
    prompt_version      text,
    model               text,
    answer              text,
    citations           jsonb NOT NULL DEFAULT '[]',
    removed_markers     integer NOT NULL DEFAULT 0,       -- [n] markers naming no source, removed
    auto_cited          integer NOT NULL DEFAULT 0,       -- markers added or corrected by the overlap check
    abstained           boolean NOT NULL DEFAULT false,
    status              text NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'failed')),
    error               text,
    prompt_tokens       integer,
    completion_tokens   integer,
    latency             jsonb NOT NULL DEFAULT '{}',  -- embed_ms, search_ms, rerank_ms, first_token_ms, total_ms
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX turns_conversation_idx ON turns (conversation_id, created_at);
CREATE INDEX turns_user_idx ON turns (user_id, created_at);

CREATE TABLE feedback (
    id         bigserial PRIMARY KEY,
    turn_id    uuid NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
    value      smallint NOT NULL CHECK (value IN (-1, 1)),
    comment    text,
    citation   integer CHECK (citation > 0),
    user_id    text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_turn_idx ON feedback (turn_id, created_at);
