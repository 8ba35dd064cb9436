-- Usage accounting: which client key made each request, hourly and daily
-- rollups maintained by the request-log writer (in the transaction that writes
-- the log rows), and optionally captured request/response bodies.
--
-- client_key_id has no foreign key on purpose: a client key can be deleted
-- while its log rows and usage stay.
ALTER TABLE request_log
    ADD COLUMN client_key_id BIGINT NULL,
    ADD INDEX request_log_provider_ts_ms_idx (provider, ts_ms),
    ADD INDEX request_log_client_key_ts_ms_idx (client_key_id, ts_ms),
    ADD INDEX request_log_status_ts_ms_idx (status, ts_ms);

-- Sums per (UTC hour, model, provider, client key). No NULLs in the key:
-- provider is '' and client_key_id is 0 when the request had none.
-- errors: status >= 400 or outcome 'error'. gen_*: output tokens and
-- (latency - ttft) of requests with a ttft and output tokens, for tokens/s.
--
-- The key's text columns are utf8mb4_bin so that models differing only in
-- case or accents get rows of their own, as on PostgreSQL and SQLite (still
-- PAD SPACE: trailing spaces are ignored). sqlx cannot decode binary-collated
-- columns as text, so queries read them through CONVERT(... USING utf8mb4).
CREATE TABLE usage_hourly (
    bucket_ms         BIGINT       NOT NULL,    -- start of the UTC hour, Unix ms
    model             VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    provider          VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    client_key_id     BIGINT       NOT NULL,
    requests          BIGINT       NOT NULL,
    errors            BIGINT       NOT NULL,
    input_tokens      BIGINT       NOT NULL,
    output_tokens     BIGINT       NOT NULL,
    cached_tokens     BIGINT       NOT NULL,
    latency_us_sum    BIGINT       NOT NULL,
    ttft_us_sum       BIGINT       NOT NULL,
    ttft_count        BIGINT       NOT NULL,
    gen_output_tokens BIGINT       NOT NULL,
    gen_us_sum        BIGINT       NOT NULL,
    PRIMARY KEY (bucket_ms, model, provider, client_key_id),
    INDEX usage_hourly_provider_idx (provider, bucket_ms),
    INDEX usage_hourly_client_key_idx (client_key_id, bucket_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The same sums per UTC day; kept when hourly rows expire.
CREATE TABLE usage_daily (
    bucket_ms         BIGINT       NOT NULL,    -- start of the UTC day, Unix ms
    model             VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    provider          VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    client_key_id     BIGINT       NOT NULL,
    requests          BIGINT       NOT NULL,
    errors            BIGINT       NOT NULL,
    input_tokens      BIGINT       NOT NULL,
    output_tokens     BIGINT       NOT NULL,
    cached_tokens     BIGINT       NOT NULL,
    latency_us_sum    BIGINT       NOT NULL,
    ttft_us_sum       BIGINT       NOT NULL,
    ttft_count        BIGINT       NOT NULL,
    gen_output_tokens BIGINT       NOT NULL,
    gen_us_sum        BIGINT       NOT NULL,
    PRIMARY KEY (bucket_ms, model, provider, client_key_id),
    INDEX usage_daily_provider_idx (provider, bucket_ms),
    INDEX usage_daily_client_key_idx (client_key_id, bucket_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Captured bodies, cut by the writer to its configured size on a character
-- boundary (MEDIUMTEXT holds 16 MiB). Several rows may share a request_id; the
-- newest wins. request_id compares exactly (utf8mb4_bin); it is never read back.
CREATE TABLE request_bodies (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    request_id    VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    ts_ms         BIGINT       NOT NULL,        -- the request's arrival, Unix ms
    request_body  MEDIUMTEXT   NULL,
    response_body MEDIUMTEXT   NULL,
    INDEX request_bodies_request_id_idx (request_id),
    INDEX request_bodies_ts_ms_idx (ts_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
