-- Why a turn abstained (no_sources, below_similarity, model_declined, too_short, ungrounded, unsupported),
-- so false abstentions can be broken down by the gate that caused them.
ALTER TABLE turns ADD COLUMN IF NOT EXISTS abstain_reason text;
