-- 0015: an Idempotency-Key replay repeats the stored reply's own header lines too (ETag of
-- the Asset it returned, Allow, Set-Cookie), not only its status and body.
ALTER TABLE idempotency_keys ADD COLUMN headers text NOT NULL DEFAULT '';
