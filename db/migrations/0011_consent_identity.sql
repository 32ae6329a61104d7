-- 0011: a Google consent is bound to the admin who started it and to one Google Workspace.
-- The consent asks for `openid email` too; its id_token must carry the nonce sent with it and
-- name the admin who started the consent. The Workspace customer id (from that admin's own
-- Directory record) is kept in connections.provider_tenant, and one Workspace belongs to at
-- most one district.
ALTER TABLE oauth_states ADD COLUMN nonce text;
CREATE UNIQUE INDEX connections_google_customer ON connections (provider_tenant)
    WHERE provider = 'google' AND provider_tenant IS NOT NULL;
