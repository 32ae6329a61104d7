-- 0023: a source row's addresses are a column the merger writes, and the GIN index is on it.
-- The index of 0007 was on the expression person_source_addresses(fields): PostgreSQL ran that
-- SQL function on every insert and non-HOT update of a row (0.135 ms a call, 282,000 calls in a
-- full-district first sync, docs/performance.md), and again in every query that reads a row's
-- addresses (the merger's candidate search, the api's people search and detail). The merger
-- now computes the same list in C (merge_person_addresses, services/merger/merge.c) and writes
-- it with the fields, in the same statement; person_source_addresses stays, unchanged, as the
-- definition the tests compare the column with.
--
-- Writers that do not give the addresses: the previous merger, which keeps running between
-- this migration and the roll of its Deployment (docs/operations.md, "Upgrading"), and tests'
-- fixtures. The two triggers below fill the column from the fields for them only: an insert
-- without addresses, and an update that changes the fields but leaves the addresses as they
-- were (the old merger's upsert). The current merger's inserts never run the function (the
-- WHEN clause is false); its updates run it only for a row whose fields changed but whose
-- addresses did not, as the expression index did for every such update before.
--
-- On an existing deployment this is one UPDATE of every source row, in the migration's
-- transaction: acceptable for a district's table (measured: 140,000 rows, 108 MB, 6.1 s on the
-- shared 2-core test machine; running services' statements on the table wait for its lock
-- meanwhile). The old
-- index goes first and the new one is built once at the end, so the UPDATE maintains no GIN
-- index. The rows' old versions are left for autovacuum.
-- The new index keeps 0021's small pending list (same reason: a search reads the whole list).
DROP INDEX person_sources_addresses;
ALTER TABLE person_sources ADD COLUMN addresses text[] NOT NULL DEFAULT '{}';
UPDATE person_sources SET addresses = person_source_addresses(fields);
ALTER TABLE person_sources ALTER COLUMN addresses DROP DEFAULT;
CREATE INDEX person_sources_addresses ON person_sources USING gin (addresses)
    WITH (gin_pending_list_limit = 64);

CREATE FUNCTION person_sources_fill_addresses() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.addresses := person_source_addresses(NEW.fields);
    RETURN NEW;
END
$$;
-- NOT NULL is checked after BEFORE triggers: an insert without the column gets here with NULL.
CREATE TRIGGER person_sources_addresses_on_insert BEFORE INSERT ON person_sources
    FOR EACH ROW WHEN (NEW.addresses IS NULL) EXECUTE FUNCTION person_sources_fill_addresses();
CREATE TRIGGER person_sources_addresses_on_update BEFORE UPDATE OF fields ON person_sources
    FOR EACH ROW WHEN (NEW.fields IS DISTINCT FROM OLD.fields
                       AND NEW.addresses IS NOT DISTINCT FROM OLD.addresses)
    EXECUTE FUNCTION person_sources_fill_addresses();
