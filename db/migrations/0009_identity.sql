-- 0009: identity — Panel admin accounts, their signed-in sessions, and the OpenID Connect
-- sign-in states. Sessions are created by auth after a verified id_token and checked by the
-- api on every cookie-authenticated request. (0006-0008 are other changes of the same release.)

-- Who may sign in to a district's admin page, with which role and which provider identity.
-- The provider subject is bound at the first sign-in; later sign-ins must present the same one.
CREATE TABLE admin_accounts (
    account_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    email           text NOT NULL CHECK (email = lower(btrim(email)) AND email LIKE '%_@_%'),
    role            text NOT NULL CHECK (role IN ('admin', 'viewer')),
    allow_google    boolean NOT NULL DEFAULT true,
    allow_microsoft boolean NOT NULL DEFAULT true,
    google_sub      text,                 -- Google id_token 'sub', bound at first sign-in
    microsoft_tid   text,                 -- Microsoft id_token 'tid' (directory), bound likewise
    microsoft_oid   text,                 -- Microsoft id_token 'oid' (user in that directory)
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL,        -- 'panelctl', 'person:<email>' or 'apikey:<key_id>'
    last_signin_at  timestamptz,
    removed_at      timestamptz,
    removed_by      text
);
CREATE UNIQUE INDEX admin_accounts_email ON admin_accounts (tenant_id, email)
    WHERE removed_at IS NULL;
CREATE UNIQUE INDEX admin_accounts_google ON admin_accounts (tenant_id, google_sub)
    WHERE removed_at IS NULL AND google_sub IS NOT NULL;
CREATE UNIQUE INDEX admin_accounts_microsoft ON admin_accounts (tenant_id, microsoft_tid, microsoft_oid)
    WHERE removed_at IS NULL AND microsoft_oid IS NOT NULL;
CREATE INDEX admin_accounts_by_email ON admin_accounts (email) WHERE removed_at IS NULL;

-- A signed-in session. The session id (the cookie) is never stored: only its SHA-256 (hex).
-- The account's current role is read on every request, so a removed account or a changed role
-- takes effect at once.
CREATE TABLE admin_sessions (
    id_hash         text PRIMARY KEY CHECK (id_hash ~ '^[0-9a-f]{64}$'),
    tenant_id       text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    account_id      uuid NOT NULL REFERENCES admin_accounts ON DELETE CASCADE,
    provider        text NOT NULL CHECK (provider IN ('google', 'microsoft')),
    subject         text NOT NULL,        -- Google 'sub' or Microsoft 'oid'
    email           text NOT NULL,        -- the verified address the person signed in with
    provider_tenant text,                 -- Microsoft 'tid'; Google 'hd' (Workspace domain)
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL, -- absolute timeout
    ended_at        timestamptz           -- signed out (or ended by an admin)
);
CREATE INDEX admin_sessions_account ON admin_sessions (account_id) WHERE ended_at IS NULL;
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- A started sign-in: single use, expiring, bound to the browser that started it (the hash of
-- the short-lived sign-in cookie) and carrying the nonce and sealed PKCE verifier.
CREATE TABLE signin_states (
    state_hash      text PRIMARY KEY,     -- sha256 of the state; the state itself is not stored
    provider        text NOT NULL CHECK (provider IN ('google', 'microsoft')),
    tenant_hint     text,                 -- optional ?tenant= of the start (never trusted alone)
    browser_hash    text NOT NULL,        -- sha256 of the sign-in cookie set at the start
    nonce           text NOT NULL,
    verifier_sealed bytea NOT NULL,
    verifier_key_id text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX signin_states_expiry ON signin_states (expires_at);

-- A consent (cloud connection) is started by a signed-in admin: its state is bound to that
-- session, so a callback in another browser or with another session's state is refused.
ALTER TABLE oauth_states ADD COLUMN session_hash text;

-- An Idempotency-Key reply is stored per caller (the signed-in person or the API key), not per
-- district: another caller replaying the same key gets its own request, never this reply.
ALTER TABLE idempotency_keys ADD COLUMN caller text NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (tenant_id, caller, idem_key);
