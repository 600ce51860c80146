-- The web UI's persistence (Chainlit data layer): users, threads, steps, elements. Feedback goes to the feedback
-- table against the turn; a turn keeps the id its caller gave it (the UI's run step, a Slack message) so a thumbs
-- click that names that id finds the turn.
ALTER TABLE turns ADD COLUMN client_ref text;
CREATE INDEX turns_client_ref_idx ON turns (client_ref) WHERE client_ref IS NOT NULL;

ALTER TABLE feedback ADD COLUMN channel text;
ALTER TABLE feedback ADD COLUMN sampling jsonb;     -- the sampling settings of the turn, copied when stored
ALTER TABLE feedback ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE ui_users (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    identifier text NOT NULL UNIQUE,
    metadata   jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ui_threads (
    id              text PRIMARY KEY,
    name            text,
    user_id         uuid REFERENCES ui_users (id) ON DELETE CASCADE,
    user_identifier text,
    tags            text[] NOT NULL DEFAULT '{}',
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ui_threads_user_idx ON ui_threads (user_id, updated_at DESC);

CREATE TABLE ui_steps (
    id         text PRIMARY KEY,
    thread_id  text NOT NULL REFERENCES ui_threads (id) ON DELETE CASCADE,
    parent_id  text,
    name       text,
    type       text NOT NULL,
    input      text,
    output     text,
    is_error   boolean NOT NULL DEFAULT false,
    metadata   jsonb NOT NULL DEFAULT '{}',
    props      jsonb NOT NULL DEFAULT '{}',  -- the rest of Chainlit's step dict (icons, language, streaming flags)
    created_at timestamptz,
    start_at   timestamptz,
    end_at     timestamptz
);
CREATE INDEX ui_steps_thread_idx ON ui_steps (thread_id, created_at);

CREATE TABLE ui_elements (
    id        text PRIMARY KEY,
    thread_id text REFERENCES ui_threads (id) ON DELETE CASCADE,
    for_id    text,
    type      text NOT NULL,
    name      text NOT NULL,
    display   text NOT NULL,
    mime      text,
    content   text,  -- text elements (cited passages) are kept here, served to their thread's owner only
    props     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX ui_elements_thread_idx ON ui_elements (thread_id);
