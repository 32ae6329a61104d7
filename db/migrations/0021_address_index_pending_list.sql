-- 0021: the GIN index of source rows' addresses keeps a small pending list.
-- The merger's candidate search looks a batch's addresses up in person_sources_addresses, and
-- a GIN search reads the index's whole pending list (entries not yet merged into the tree)
-- against every key it looks for. With the server's default limit (4 MB) that list held
-- tens of thousands of entries during a large first sync and each 2,000-event batch's search
-- took 2.4 s at 60,000 people (0.2 s right after the list was merged; docs/performance.md).
-- At 64 kB an insert merges the list into the tree once it passes the limit, for every
-- writer of the table.
ALTER INDEX person_sources_addresses SET (gin_pending_list_limit = 64);
