-- 0016: a consent is bound to the signed-in session that started it, and a Microsoft
-- directory to one district.
-- The directory a Microsoft consent is for: the `tid` of the verified id_token of the
-- signed-in admin's own Microsoft sign-in (admin_sessions.provider_tenant), kept with the
-- state so that the admin-consent result must name that directory.
ALTER TABLE oauth_states ADD COLUMN provider_tenant text;
-- One Entra directory belongs to at most one district (de-authorizing clears it).
CREATE UNIQUE INDEX connections_azure_directory ON connections (lower(provider_tenant))
    WHERE provider = 'azure' AND provider_tenant IS NOT NULL;
-- A delta link belongs to the directory it was read from: a link of another directory (or of
-- a link stored before directories were recorded) is never followed.
ALTER TABLE azure_delta_state ADD COLUMN directory_id text;
