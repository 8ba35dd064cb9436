-- Usage accounting: which client key made each request, hourly and daily
-- rollups maintained by the request-log writer (in the transaction that writes
-- the log rows), and optionally captured request/response bodies.
--
-- client_key_id has no foreign key on purpose: a client key can be deleted
-- while its log rows and usage stay.
ALTER TABLE request_log ADD COLUMN client_key_id BIGINT NULL;

CREATE INDEX request_log_provider_ts_ms_idx ON request_log (provider, ts_ms);
CREATE INDEX request_log_client_key_ts_ms_idx ON request_log (client_key_id, ts_ms);
CREATE INDEX request_log_status_ts_ms_idx ON request_log (status, ts_ms);

-- Sums per (UTC hour, model, provider, client key). No NULLs in the key:
-- provider is '' and client_key_id is 0 when the request had none.
-- errors: status >= 400 or outcome 'error'. gen_*: output tokens and
-- (latency - ttft) of requests with a ttft and output tokens, for tokens/s.
CREATE TABLE usage_hourly (
    bucket_ms         BIGINT  NOT NULL,         -- start of the UTC hour, Unix ms
    model             TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    client_key_id     BIGINT  NOT NULL,
    requests          BIGINT  NOT NULL,
    errors            BIGINT  NOT NULL,
    input_tokens      BIGINT  NOT NULL,
    output_tokens     BIGINT  NOT NULL,
    cached_tokens     BIGINT  NOT NULL,
    latency_us_sum    BIGINT  NOT NULL,
    ttft_us_sum       BIGINT  NOT NULL,
    ttft_count        BIGINT  NOT NULL,
    gen_output_tokens BIGINT  NOT NULL,
    gen_us_sum        BIGINT  NOT NULL,
    PRIMARY KEY (bucket_ms, model, provider, client_key_id)
);

CREATE INDEX usage_hourly_provider_idx ON usage_hourly (provider, bucket_ms);
CREATE INDEX usage_hourly_client_key_idx ON usage_hourly (client_key_id, bucket_ms);

-- The same sums per UTC day; kept when hourly rows expire.
CREATE TABLE usage_daily (
    bucket_ms         BIGINT  NOT NULL,         -- start of the UTC day, Unix ms
    model             TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    client_key_id     BIGINT  NOT NULL,
    requests          BIGINT  NOT NULL,
    errors            BIGINT  NOT NULL,
    input_tokens      BIGINT  NOT NULL,
    output_tokens     BIGINT  NOT NULL,
    cached_tokens     BIGINT  NOT NULL,
    latency_us_sum    BIGINT  NOT NULL,
    ttft_us_sum       BIGINT  NOT NULL,
    ttft_count        BIGINT  NOT NULL,
    gen_output_tokens BIGINT  NOT NULL,
    gen_us_sum        BIGINT  NOT NULL,
    PRIMARY KEY (bucket_ms, model, provider, client_key_id)
);

CREATE INDEX usage_daily_provider_idx ON usage_daily (provider, bucket_ms);
CREATE INDEX usage_daily_client_key_idx ON usage_daily (client_key_id, bucket_ms);

-- Captured bodies, cut by the writer to its configured size on a character
-- boundary. Several rows may share a request_id; the newest wins.
CREATE TABLE request_bodies (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id    TEXT    NOT NULL,
    ts_ms         BIGINT  NOT NULL,             -- the request's arrival, Unix ms
    request_body  TEXT    NULL,
    response_body TEXT    NULL
);

CREATE INDEX request_bodies_request_id_idx ON request_bodies (request_id);
CREATE INDEX request_bodies_ts_ms_idx ON request_bodies (ts_ms);
