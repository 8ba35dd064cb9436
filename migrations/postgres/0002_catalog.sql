-- The configuration catalogue: providers and their keys, models and their
-- routing targets, client API keys and their spend, the audit log and the
-- revision counter every replica polls. Times are Unix milliseconds; *_json
-- columns hold JSON text written by the gateway. PostgreSQL and MySQL enforce the
-- VARCHAR lengths; SQLite does not.

CREATE TABLE providers (
    id                  BIGINT       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                VARCHAR(128) NOT NULL,
    adapter             VARCHAR(64)  NOT NULL,
    base_url            TEXT         NOT NULL,
    options_json        TEXT         NOT NULL,
    key_strategy        VARCHAR(32)  NOT NULL,
    error_matchers_json TEXT         NOT NULL,
    probe_interval_s    BIGINT       NULL,
    enabled             BOOLEAN      NOT NULL,
    managed_by          VARCHAR(8)   NOT NULL,   -- 'file' (imported from the TOML file) | 'api'
    created_ms          BIGINT       NOT NULL,
    updated_ms          BIGINT       NOT NULL,
    CONSTRAINT providers_managed_by_check CHECK (managed_by IN ('file', 'api'))
);
CREATE UNIQUE INDEX providers_name_key ON providers (name);

-- A provider's upstream API keys: an `env:NAME` reference or a blob sealed
-- with the master key `key_id`, never both.
CREATE TABLE provider_keys (
    id          BIGINT       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider_id BIGINT       NOT NULL,
    position    INT          NOT NULL,
    label       VARCHAR(128) NULL,
    env_ref     VARCHAR(255) NULL,
    sealed      BYTEA        NULL,
    key_id      VARCHAR(32)  NULL,
    masked      VARCHAR(32)  NOT NULL,           -- e.g. 'sk-a…wxyz'
    fingerprint CHAR(64)     NOT NULL,           -- hex SHA-256 of the secret
    enabled     BOOLEAN      NOT NULL,
    created_ms  BIGINT       NOT NULL,
    CONSTRAINT provider_keys_provider_fk FOREIGN KEY (provider_id)
        REFERENCES providers (id) ON DELETE CASCADE,
    CONSTRAINT provider_keys_secret_check CHECK ((env_ref IS NULL) <> (sealed IS NULL)),
    CONSTRAINT provider_keys_key_id_check CHECK ((sealed IS NULL) = (key_id IS NULL)),
    CONSTRAINT provider_keys_fingerprint_check CHECK (length(fingerprint) = 64)
);
CREATE UNIQUE INDEX provider_keys_provider_fingerprint_key ON provider_keys (provider_id, fingerprint);

CREATE TABLE models (
    id             BIGINT       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           VARCHAR(255) NOT NULL,
    aliases_json   TEXT         NOT NULL,
    strategy       VARCHAR(32)  NOT NULL,
    session_header VARCHAR(128) NULL,
    max_attempts   INT          NULL,
    enabled        BOOLEAN      NOT NULL,
    managed_by     VARCHAR(8)   NOT NULL,
    created_ms     BIGINT       NOT NULL,
    updated_ms     BIGINT       NOT NULL,
    CONSTRAINT models_managed_by_check CHECK (managed_by IN ('file', 'api'))
);
CREATE UNIQUE INDEX models_name_key ON models (name);

-- A model's routing targets. Deleting a provider that a target still uses fails.
CREATE TABLE targets (
    id                BIGINT       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id          BIGINT       NOT NULL,
    position          INT          NOT NULL,
    provider_id       BIGINT       NOT NULL,
    upstream_model    VARCHAR(255) NOT NULL,
    weight            INT          NOT NULL,
    priority          INT          NOT NULL,
    overrides_json    TEXT         NOT NULL,
    headers_json      TEXT         NOT NULL,
    capabilities_json TEXT         NULL,
    timeout_ms        BIGINT       NULL,
    ttft_timeout_ms   BIGINT       NULL,
    enabled           BOOLEAN      NOT NULL,
    CONSTRAINT targets_model_fk FOREIGN KEY (model_id)
        REFERENCES models (id) ON DELETE CASCADE,
    CONSTRAINT targets_provider_fk FOREIGN KEY (provider_id) REFERENCES providers (id)
);
CREATE INDEX targets_model_id_idx ON targets (model_id);
CREATE INDEX targets_provider_id_idx ON targets (provider_id);

CREATE TABLE client_keys (
    id             BIGINT       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           VARCHAR(128) NOT NULL,
    prefix         VARCHAR(16)  NOT NULL,
    hash           CHAR(64)     NOT NULL,        -- hex SHA-256 of the key
    policy_json    TEXT         NOT NULL,
    expires_ms     BIGINT       NULL,
    enabled        BOOLEAN      NOT NULL,
    capture_bodies BOOLEAN      NOT NULL DEFAULT FALSE,
    metadata_json  TEXT         NOT NULL,
    created_ms     BIGINT       NOT NULL,
    updated_ms     BIGINT       NOT NULL,
    CONSTRAINT client_keys_hash_check CHECK (length(hash) = 64)
);
CREATE UNIQUE INDEX client_keys_hash_key ON client_keys (hash);

-- Tokens used per client key and budget period.
CREATE TABLE client_key_spend (
    client_key_id   BIGINT NOT NULL,
    period_start_ms BIGINT NOT NULL,
    tokens          BIGINT NOT NULL,
    PRIMARY KEY (client_key_id, period_start_ms),
    CONSTRAINT client_key_spend_key_fk FOREIGN KEY (client_key_id)
        REFERENCES client_keys (id) ON DELETE CASCADE
);
CREATE INDEX client_key_spend_period_idx ON client_key_spend (period_start_ms);

CREATE TABLE audit_log (
    id          BIGINT       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts_ms       BIGINT       NOT NULL,
    actor       VARCHAR(64)  NOT NULL,
    action      VARCHAR(32)  NOT NULL,
    entity      VARCHAR(32)  NOT NULL,
    entity_name VARCHAR(255) NOT NULL,
    detail_json TEXT         NOT NULL
);
CREATE INDEX audit_log_ts_ms_idx ON audit_log (ts_ms);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_name, ts_ms);

-- One row, bumped by every catalogue change; replicas reload when it moves.
CREATE TABLE config_revision (
    id         INT    PRIMARY KEY,
    revision   BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    CONSTRAINT config_revision_single_row CHECK (id = 1)
);
INSERT INTO config_revision (id, revision, updated_ms) VALUES (1, 0, 0);
