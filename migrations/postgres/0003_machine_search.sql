-- Machine search and filters on large fleets. Keep in step with the other flavour.
-- Host-name prefix search: LIKE 'prefix%' on lower(hostname) uses this index.
CREATE INDEX machines_hostname_lc ON machines ((lower(hostname)) text_pattern_ops);
-- Site and health together (the Machines page's common filter), in host-name order.
CREATE INDEX machines_site_health ON machines (site, health, hostname);
