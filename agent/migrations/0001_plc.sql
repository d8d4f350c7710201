-- geni-agent plc: the registry's records and the embedded PLC's tables, one schema for SQLite
-- and PostgreSQL. Only SQL both accept: ids are BIGINT handed out from plc_ids (SERIAL and
-- AUTOINCREMENT differ), booleans are BIGINT 0/1, everything else is TEXT. Applied by
-- agent/src/plc/db.rs; a change is a new file, never an edit of this one (the checksum of an
-- applied migration is checked at every start).

CREATE TABLE plc_ids (
    name TEXT PRIMARY KEY,
    next_id BIGINT NOT NULL
);

INSERT INTO plc_ids (name, next_id) VALUES
    ('site', 1), ('person', 1), ('key', 1), ('slice', 1), ('node', 1),
    ('slice_attribute', 1), ('initscript', 1);

-- The 2008 record {name, gid, type, pointer}: one table instead of one per authority, keyed by
-- (hrn, type) because sa and ma of one site share an hrn. `authority` is the hrn's parent, what
-- `list` selects on. `pointer` is the PLC id (site, person, slice or node), -1 when none.
CREATE TABLE registry_records (
    hrn TEXT NOT NULL,
    type TEXT NOT NULL,
    authority TEXT NOT NULL,
    gid TEXT NOT NULL,
    pointer BIGINT NOT NULL,
    PRIMARY KEY (hrn, type)
);
CREATE INDEX registry_records_authority ON registry_records (authority);
CREATE INDEX registry_records_pointer ON registry_records (type, pointer);

-- The embedded PLC: PLCAPI's tables as far as the registry and tickets use them. `extra` holds
-- the optional PLCAPI fields a row was given (url, phone, ...) as an XML-RPC struct.
CREATE TABLE plc_sites (
    site_id BIGINT PRIMARY KEY,
    login_base TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    abbreviated_name TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    is_public BIGINT NOT NULL,
    max_slices BIGINT NOT NULL,
    extra TEXT NOT NULL
);

CREATE TABLE plc_persons (
    person_id BIGINT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    extra TEXT NOT NULL
);

CREATE TABLE plc_person_sites (
    person_id BIGINT NOT NULL REFERENCES plc_persons ON DELETE CASCADE,
    site_id BIGINT NOT NULL REFERENCES plc_sites ON DELETE CASCADE,
    PRIMARY KEY (person_id, site_id)
);
CREATE INDEX plc_person_sites_site ON plc_person_sites (site_id);

CREATE TABLE plc_person_roles (
    person_id BIGINT NOT NULL REFERENCES plc_persons ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (person_id, role)
);

CREATE TABLE plc_keys (
    key_id BIGINT PRIMARY KEY,
    person_id BIGINT NOT NULL REFERENCES plc_persons ON DELETE CASCADE,
    key_type TEXT NOT NULL,
    key_text TEXT NOT NULL
);
CREATE INDEX plc_keys_person ON plc_keys (person_id);

CREATE TABLE plc_slices (
    slice_id BIGINT PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES plc_sites ON DELETE CASCADE,
    name TEXT NOT NULL UNIQUE,
    instantiation TEXT NOT NULL,
    max_nodes BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    extra TEXT NOT NULL
);
CREATE INDEX plc_slices_site ON plc_slices (site_id);

CREATE TABLE plc_slice_persons (
    slice_id BIGINT NOT NULL REFERENCES plc_slices ON DELETE CASCADE,
    person_id BIGINT NOT NULL REFERENCES plc_persons ON DELETE CASCADE,
    PRIMARY KEY (slice_id, person_id)
);
CREATE INDEX plc_slice_persons_person ON plc_slice_persons (person_id);

CREATE TABLE plc_nodes (
    node_id BIGINT PRIMARY KEY,
    site_id BIGINT NOT NULL REFERENCES plc_sites ON DELETE CASCADE,
    hostname TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    extra TEXT NOT NULL
);
CREATE INDEX plc_nodes_site ON plc_nodes (site_id);

-- node_id 0 means "on every node" (PLC ids start at 1), so that the UNIQUE constraint, which
-- treats NULLs as distinct, also holds for global attributes.
CREATE TABLE plc_slice_attributes (
    slice_attribute_id BIGINT PRIMARY KEY,
    slice_id BIGINT NOT NULL REFERENCES plc_slices ON DELETE CASCADE,
    node_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    UNIQUE (slice_id, name, node_id)
);

CREATE TABLE plc_initscripts (
    initscript_id BIGINT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    enabled BIGINT NOT NULL,
    script TEXT NOT NULL
);
