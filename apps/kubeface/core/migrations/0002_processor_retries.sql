-- The processor and the retry job. One ALTER, so a run that stops half-way leaves
-- either both columns or neither.
--   retryable: a failed image whose failure was transient trouble ("gave up after N attempts"),
--              which the retry job may re-publish; 0 for permanent errors (missing file, ...).
--   retries:   how many times the retry job revived it (capped by RETRY_MAX_RETRIES).
ALTER TABLE images
  ADD COLUMN retryable TINYINT(1) NOT NULL DEFAULT 0 AFTER last_error,
  ADD COLUMN retries INT UNSIGNED NOT NULL DEFAULT 0 AFTER attempts;
