-- The average chunk length each chunk's BM25 weights were computed with. BM25 normalises a chunk's length by the
-- corpus average, which moves as documents come and go; store.reweight recomputes the chunks whose average is
-- further than CITEWISE_BM25_REWEIGHT_DRIFT from today's. NULL: written before this was recorded (re-weighted
-- at the next check).
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS keyword_avgdl real;
