-- One row per client request handled by the gateway, written in batches by the
-- request-log writer. Text values are capped at 255 characters by the writer,
-- which is what VARCHAR(255) holds. The collation is case-insensitive
-- (unlike PostgreSQL and SQLite): sqlx 0.8 reads utf8mb4_bin columns as
-- VARBINARY and refuses to decode them into strings.
CREATE TABLE request_log (
    id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    ts_ms           BIGINT       NOT NULL,      -- Unix time in milliseconds
    request_id      VARCHAR(255) NOT NULL,
    ingress_dialect VARCHAR(255) NOT NULL,
    requested_model VARCHAR(255) NOT NULL,
    provider        VARCHAR(255) NULL,
    upstream_model  VARCHAR(255) NULL,
    plugin          VARCHAR(255) NULL,          -- e.g. 'openai@0.1.0'
    status          INT          NOT NULL,      -- HTTP status sent to the client
    error_class     VARCHAR(255) NULL,
    attempts        INT          NOT NULL,
    latency_us      BIGINT       NOT NULL,
    ttft_us         BIGINT       NULL,
    input_tokens    BIGINT       NULL,          -- BIGINT: the Rust side is u32
    output_tokens   BIGINT       NULL,
    cached_tokens   BIGINT       NULL,
    streamed        BOOLEAN      NOT NULL,
    outcome         VARCHAR(16)  NOT NULL,      -- 'ok' | 'error' | 'cancelled' | 'partial'
    INDEX request_log_ts_ms_idx (ts_ms),
    INDEX request_log_model_ts_ms_idx (requested_model, ts_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
