-- 0001: the core schema. Every table carries tenant_id and every query filters by it.
-- Later changes go in new numbered files; never edit an applied migration.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- A district.
CREATE TABLE tenants (
    tenant_id                text PRIMARY KEY CHECK (tenant_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    display_name             text NOT NULL DEFAULT '',
    sync_interval_seconds    integer NOT NULL DEFAULT 14400 CHECK (sync_interval_seconds >= 300),
    delete_threshold_count   integer NOT NULL DEFAULT 500 CHECK (delete_threshold_count >= 0),
    delete_threshold_percent integer NOT NULL DEFAULT 10 CHECK (delete_threshold_percent BETWEEN 0 AND 100),
    created_at               timestamptz NOT NULL DEFAULT now()
);

-- ------------------------------------------------------------------ auth (cloud connections)

-- One row per tenant and cloud. The grant (Google refresh token) is only ever stored sealed
-- with AES-256-GCM; grant_key_id names the key so keys can be rotated.
CREATE TABLE connections (
    tenant_id          text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    provider           text NOT NULL CHECK (provider IN ('google', 'azure')),
    status             text NOT NULL DEFAULT 'never'
                       CHECK (status IN ('never', 'pending', 'connected', 'revoked', 'deauthorized', 'scope_missing')),
    provider_tenant    text,               -- Azure directory (tenant) id; Google customer id
    granted_scopes     text[] NOT NULL DEFAULT '{}',
    missing_scopes     text[] NOT NULL DEFAULT '{}',
    grant_sealed       bytea,              -- nonce | ciphertext | tag
    grant_key_id       text,
    authorized_by      text,
    authorized_at      timestamptz,
    revoked_at         timestamptz,
    status_message     text,               -- provider's words, never a token
    remote_revoke_pending boolean NOT NULL DEFAULT false,
    sync_interval_seconds integer CHECK (sync_interval_seconds IS NULL OR sync_interval_seconds >= 300),
    next_sync_at       timestamptz,
    last_requested_at  timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, provider)
);
CREATE INDEX connections_due ON connections (next_sync_at) WHERE status = 'connected';

-- Single-use, expiring OAuth state, bound to the tenant and the admin who started the flow.
CREATE TABLE oauth_states (
    state_hash     text PRIMARY KEY,      -- sha256 of the state; the state itself is not stored
    tenant_id      text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    provider       text NOT NULL CHECK (provider IN ('google', 'azure')),
    admin          text NOT NULL,
    verifier_sealed bytea,                -- PKCE code verifier, sealed
    redirect_uri   text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);

-- Pause windows: scheduled runs are skipped inside them; an admin's immediate request runs.
CREATE TABLE pause_windows (
    tenant_id  text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    window_id  uuid NOT NULL DEFAULT gen_random_uuid(),
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL CHECK (ends_at > starts_at),
    reason     text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, window_id)
);

-- ------------------------------------------------------------------ runs

CREATE TABLE sync_runs (
    tenant_id     text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    run_id        uuid NOT NULL,
    source        text NOT NULL CHECK (source IN ('google', 'azure')),
    kind          text NOT NULL DEFAULT 'full' CHECK (kind IN ('full', 'delta')),
    preview       boolean NOT NULL DEFAULT false,
    reason        text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'requested'
                  CHECK (status IN ('requested', 'running', 'completed', 'failed', 'held', 'approved', 'rejected')),
    failure_reason text,
    message       text,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    seen          bigint NOT NULL DEFAULT 0,
    created       bigint NOT NULL DEFAULT 0,
    updated       bigint NOT NULL DEFAULT 0,
    unchanged     bigint NOT NULL DEFAULT 0,
    removed       bigint NOT NULL DEFAULT 0,
    skipped       bigint NOT NULL DEFAULT 0,
    match_cases   bigint NOT NULL DEFAULT 0,
    pending_removals bigint NOT NULL DEFAULT 0,  -- held deletions awaiting approval
    fetched_counts jsonb NOT NULL DEFAULT '{}',  -- the fetcher's RunCompleted counts
    report        jsonb,                         -- preview runs: what would happen
    decided_by    text,
    decided_at    timestamptz,
    PRIMARY KEY (tenant_id, run_id)
);
CREATE INDEX sync_runs_recent ON sync_runs (tenant_id, source, requested_at DESC);

-- Objects of a run that need an admin's attention (skipped, invalid, match case).
CREATE TABLE run_outcomes (
    tenant_id   text NOT NULL,
    run_id      uuid NOT NULL,
    outcome_id  bigserial,
    object_kind text NOT NULL CHECK (object_kind IN ('person', 'org_unit', 'device')),
    source_id   text,
    email       text,
    outcome     text NOT NULL,       -- skipped, invalid, match_case, held_removal
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, run_id, outcome_id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES sync_runs ON DELETE CASCADE
);

-- ------------------------------------------------------------------ directory (merger writes)

-- The Person the product shows, computed from its source rows (Google overlaid by Azure).
CREATE TABLE people (
    tenant_id     text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    person_id     uuid NOT NULL DEFAULT gen_random_uuid(),
    email_norm    text NOT NULL,           -- trimmed, lower-case merge key
    display_name  text NOT NULL DEFAULT '',
    given_name    text,
    family_name   text,
    org_unit_path text,
    suspended     boolean NOT NULL DEFAULT false,
    fields        jsonb NOT NULL DEFAULT '{}',   -- every shown field
    provenance    jsonb NOT NULL DEFAULT '{}',   -- field -> "google" | "azure"
    sources       text[] NOT NULL DEFAULT '{}',  -- clouds that currently have this Person
    removed_at    timestamptz,                   -- tombstone; checkouts stay
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, person_id)
);
CREATE UNIQUE INDEX people_email_live ON people (tenant_id, email_norm) WHERE removed_at IS NULL;
CREATE INDEX people_name ON people (tenant_id, lower(display_name), person_id);
CREATE INDEX people_ou ON people (tenant_id, org_unit_path);

-- One cloud's view of a Person.
CREATE TABLE person_sources (
    tenant_id     text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    source        text NOT NULL CHECK (source IN ('google', 'azure')),
    source_id     text NOT NULL,           -- the cloud's immutable id
    person_id     uuid,                    -- NULL while in an open match case
    email_norm    text,
    fields        jsonb NOT NULL DEFAULT '{}',   -- only the fields the cloud provided
    content_hash  text NOT NULL,
    suspended_in_source boolean NOT NULL DEFAULT false, -- Azure soft delete
    last_seen_run uuid,
    removed_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, source, source_id),
    FOREIGN KEY (tenant_id, person_id) REFERENCES people
);
CREATE INDEX person_sources_person ON person_sources (tenant_id, person_id);
CREATE INDEX person_sources_email ON person_sources (tenant_id, email_norm);
CREATE INDEX person_sources_seen ON person_sources (tenant_id, source, last_seen_run);

CREATE TABLE org_units (
    tenant_id    text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    org_unit_id  text NOT NULL,            -- Google "id:..."
    path         text NOT NULL,
    name         text NOT NULL DEFAULT '',
    description  text,
    parent_id    text,
    parent_path  text,
    content_hash text NOT NULL,
    last_seen_run uuid,
    removed_at   timestamptz,
    version      bigint NOT NULL DEFAULT 1,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, org_unit_id)
);
CREATE INDEX org_units_path ON org_units (tenant_id, lower(path));
CREATE INDEX org_units_parent ON org_units (tenant_id, parent_id);

-- Assets: every Chromebook (one per Google deviceId) and the ones admins add by hand.
CREATE TABLE assets (
    tenant_id       text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    asset_id        uuid NOT NULL DEFAULT gen_random_uuid(),
    device_id       text,                  -- Google deviceId; NULL for manual assets
    asset_tag       text,
    serial_number   text,
    model           text,
    google_status   text,                  -- ACTIVE, DEPROVISIONED, ... as Google says
    lifecycle       text NOT NULL DEFAULT 'deployed'
                    CHECK (lifecycle IN ('in_storage', 'deployed', 'in_repair', 'lost_stolen', 'retired')),
    lifecycle_changed_by text,
    lifecycle_changed_at timestamptz,
    org_unit_id     text,
    org_unit_path   text,
    device          jsonb NOT NULL DEFAULT '{}', -- every Chromebook field as last seen
    auto_update_expiry date,
    last_sync       timestamptz,
    in_google       boolean NOT NULL DEFAULT false,
    manual          boolean NOT NULL DEFAULT false,
    content_hash    text,
    last_seen_run   uuid,
    left_google_at  timestamptz,
    audited_at      timestamptz,
    audited_by      text,
    next_audit_due  date,
    version         bigint NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, asset_id)
);
CREATE UNIQUE INDEX assets_device ON assets (tenant_id, device_id) WHERE device_id IS NOT NULL;
CREATE INDEX assets_serial ON assets (tenant_id, serial_number);
CREATE UNIQUE INDEX assets_tag ON assets (tenant_id, asset_tag) WHERE asset_tag IS NOT NULL;
CREATE INDEX assets_ou ON assets (tenant_id, org_unit_path);
CREATE INDEX assets_aue ON assets (tenant_id, auto_update_expiry);

CREATE TABLE checkouts (
    tenant_id      text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    checkout_id    uuid NOT NULL DEFAULT gen_random_uuid(),
    asset_id       uuid NOT NULL,
    person_id      uuid NOT NULL,
    checked_out_at timestamptz NOT NULL DEFAULT now(),
    checked_out_by text NOT NULL,
    due_at         timestamptz,
    note           text,
    checked_in_at  timestamptz,
    checked_in_by  text,
    condition      text,
    checkin_note   text,
    PRIMARY KEY (tenant_id, checkout_id),
    FOREIGN KEY (tenant_id, asset_id) REFERENCES assets,
    FOREIGN KEY (tenant_id, person_id) REFERENCES people
);
-- At most one open checkout per Asset.
CREATE UNIQUE INDEX checkouts_open ON checkouts (tenant_id, asset_id) WHERE checked_in_at IS NULL;
CREATE INDEX checkouts_person ON checkouts (tenant_id, person_id, checked_out_at DESC);
CREATE INDEX checkouts_asset ON checkouts (tenant_id, asset_id, checked_out_at DESC);
CREATE INDEX checkouts_due ON checkouts (tenant_id, due_at) WHERE checked_in_at IS NULL;

-- A source row whose email matches two different People (or whose proxy address and mail
-- point at different People) is not merged: an admin decides.
CREATE TABLE match_cases (
    tenant_id     text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    case_id       uuid NOT NULL DEFAULT gen_random_uuid(),
    source        text NOT NULL,
    source_id     text NOT NULL,
    candidates    uuid[] NOT NULL,
    reason        text NOT NULL,
    run_id        uuid,
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'dismissed')),
    resolved_person_id uuid,
    resolved_by   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    PRIMARY KEY (tenant_id, case_id)
);
CREATE UNIQUE INDEX match_cases_open ON match_cases (tenant_id, source, source_id) WHERE status = 'open';

-- ------------------------------------------------------------------ exactly-once plumbing

-- The merger's consumed offsets, written in the same transaction as the data.
CREATE TABLE consumer_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Public events waiting to be published (transactional outbox).
CREATE TABLE outbox (
    outbox_id   bigserial PRIMARY KEY,
    tenant_id   text NOT NULL,
    event_id    uuid NOT NULL UNIQUE,
    topic       text NOT NULL,
    msg_key     text NOT NULL,
    payload     bytea NOT NULL,         -- a packed panel.v1.Envelope
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX outbox_unsent ON outbox (outbox_id) WHERE sent_at IS NULL;

-- ------------------------------------------------------------------ api

CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,        -- public part of the key
    tenant_id   text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('admin', 'viewer')),
    secret_hash text NOT NULL,           -- sha256 of the secret part
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE idempotency_keys (
    tenant_id    text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    idem_key     text NOT NULL,
    request_hash text NOT NULL,
    status       integer NOT NULL,
    response     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idem_key)
);

-- ------------------------------------------------------------------ azure-sync state

-- Where the next Graph delta round starts, per tenant (a restart continues from it).
CREATE TABLE azure_delta_state (
    tenant_id    text PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    delta_link   text NOT NULL,
    last_full_at timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
