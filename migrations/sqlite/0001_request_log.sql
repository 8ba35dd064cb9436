-- One row per client request handled by the gateway, written in batches by the
-- request-log writer. Text values are capped at 255 characters by the writer.
CREATE TABLE request_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms           INTEGER NOT NULL,           -- Unix time in milliseconds
    request_id      TEXT    NOT NULL,
    ingress_dialect TEXT    NOT NULL,
    requested_model TEXT    NOT NULL,
    provider        TEXT,
    upstream_model  TEXT,
    plugin          TEXT,                       -- e.g. 'openai@0.1.0'
    status          INTEGER NOT NULL,           -- HTTP status sent to the client
    error_class     TEXT,
    attempts        INTEGER NOT NULL,
    latency_us      INTEGER NOT NULL,
    ttft_us         INTEGER,
    input_tokens    INTEGER,
    output_tokens   INTEGER,
    cached_tokens   INTEGER,
    streamed        BOOLEAN NOT NULL,
    outcome         TEXT    NOT NULL            -- 'ok' | 'error' | 'cancelled' | 'partial'
);

CREATE INDEX request_log_ts_ms_idx ON request_log (ts_ms);
CREATE INDEX request_log_model_ts_ms_idx ON request_log (requested_model, ts_ms);
