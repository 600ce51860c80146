-- What the model wrote before verification (the answer column holds what the user was shown). Kept for audits,
-- labelled evaluation sets and replay; never sent to a door.
ALTER TABLE turns ADD COLUMN IF NOT EXISTS model_output text;
