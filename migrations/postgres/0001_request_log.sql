-- One row per client request handled by the gateway, written in batches by the
-- request-log writer. Text values are capped at 255 characters by the writer.
CREATE TABLE request_log (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts_ms           BIGINT  NOT NULL,           -- Unix time in milliseconds
    request_id      TEXT    NOT NULL,
    ingress_dialect TEXT    NOT NULL,
    requested_model TEXT    NOT NULL,
    provider        TEXT,
    upstream_model  TEXT,
    plugin          TEXT,                       -- e.g. 'openai@0.1.0'
    status          INTEGER NOT NULL,           -- HTTP status sent to the client
    error_class     TEXT,
    attempts        INTEGER NOT NULL,
    latency_us      BIGINT  NOT NULL,
    ttft_us         BIGINT,
    input_tokens    BIGINT,                     -- BIGINT: the Rust side is u32
    output_tokens   BIGINT,
    cached_tokens   BIGINT,
    streamed        BOOLEAN NOT NULL,
    outcome         TEXT    NOT NULL            -- 'ok' | 'error' | 'cancelled' | 'partial'
);

CREATE INDEX request_log_ts_ms_idx ON request_log (ts_ms);
CREATE INDEX request_log_model_ts_ms_idx ON request_log (requested_model, ts_ms);
