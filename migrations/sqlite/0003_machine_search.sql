-- Machine search and filters on large fleets. Keep in step with the other flavour.
-- Host-name prefix search: a range on lower(hostname) uses this index.
CREATE INDEX machines_hostname_lc ON machines (lower(hostname));
-- Site and health together (the Machines page's common filter), in host-name order.
CREATE INDEX machines_site_health ON machines (site, health, hostname);
