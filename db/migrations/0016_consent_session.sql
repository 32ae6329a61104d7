-- 0016: a consent is bound to the signed-in session that started it, and a Microsoft
-- directory to one district.
-- The directory a Microsoft consent is for: the `tid` of the verified id_token of the
-- signed-in admin's own Microsoft sign-in (admin_sessions.provider_tenant), kept with the
-- state so that the admin-consent result must name that directory.
ALTER TABLE oauth_states ADD COLUMN provider_tenant text;
-- One Entra directory belongs to at most one district (de-authorizing clears it). Before this
-- rule a directory could have been connected to two districts; which one owns it cannot be
-- told from the data, so every connection of such a directory is stopped (grant erased, a
-- message for the admins) and the district that owns it connects again. Without this step the
-- index below would fail and the upgrade with it.
UPDATE connections c
   SET status = 'revoked', grant_sealed = NULL, grant_key_id = NULL, provider_tenant = NULL,
       granted_scopes = '{}', revoked_at = now(), updated_at = now(),
       status_message = 'This Microsoft directory was connected to more than one district; '
                        'an admin of the district it belongs to must connect it again.'
 WHERE c.provider = 'azure' AND c.provider_tenant IS NOT NULL
   AND (SELECT count(*) FROM connections o
         WHERE o.provider = 'azure' AND lower(o.provider_tenant) = lower(c.provider_tenant)) > 1;
CREATE UNIQUE INDEX connections_azure_directory ON connections (lower(provider_tenant))
    WHERE provider = 'azure' AND provider_tenant IS NOT NULL;
-- A delta link belongs to the directory it was read from: a link of another directory (or of
-- a link stored before directories were recorded) is never followed.
ALTER TABLE azure_delta_state ADD COLUMN directory_id text;
