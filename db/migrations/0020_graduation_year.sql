-- 0020: a student's graduation year (Person.graduation_year, read from a Google custom schema
-- field and an Entra directory extension the district names in configuration; docs/sources.md).
-- The merged value lives in people.fields like every other shown field (Azure's value wins);
-- this adds it to the People JSON of the API and indexes the `graduation_year` filter.
-- api_person_json repeats its body from 0007 on purpose: SQL redefines a function whole.
CREATE OR REPLACE FUNCTION api_person_json(p people) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'person_id', p.person_id, 'email', p.email_norm, 'display_name', p.display_name,
        'given_name', p.given_name, 'family_name', p.family_name,
        'org_unit_path', p.org_unit_path, 'suspended', p.suspended,
        'archived', coalesce(p.fields ->> 'archived' = 'true', false), 'sources', p.sources,
        'status', CASE WHEN p.removed_at IS NOT NULL THEN 'removed'
                       WHEN p.suspended THEN 'suspended'
                       WHEN p.fields ->> 'archived' = 'true' THEN 'archived' ELSE 'active' END,
        'graduation_year', CASE WHEN jsonb_typeof(p.fields -> 'graduation_year') = 'number'
                                THEN (p.fields ->> 'graduation_year')::int END,
        'removed_at', p.removed_at, 'version', p.version,
        'created_at', p.created_at, 'updated_at', p.updated_at)
$$;

CREATE INDEX people_graduation_year ON people (tenant_id, (fields ->> 'graduation_year'));
