-- Who may read what: users (web logins, Slack user ids, API token names, CLI identities) with their access
-- groups, an admin role for feedback review and evals, and legal holds that block deletion.
CREATE TABLE app_users (
    name       text PRIMARY KEY,
    groups     text[] NOT NULL DEFAULT '{}',
    admin      boolean NOT NULL DEFAULT false,
    legal_hold boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE source_holds (
    source     text PRIMARY KEY,
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- which documents a web UI source element shows, so deleting a document can scrub the stored passage
CREATE TABLE ui_element_sources (
    element_id  text NOT NULL,
    document_id text NOT NULL,
    PRIMARY KEY (element_id, document_id)
);
CREATE INDEX ui_element_sources_document_idx ON ui_element_sources (document_id);
CREATE INDEX turns_created_idx ON turns (created_at);
