-- Agent releases (issue 17): the binary, its SHA-256 and the release key's signature.
-- The binary lives in the database so that every replica serves the same bytes.
CREATE TABLE agent_releases (
    id          TEXT PRIMARY KEY,
    version     TEXT NOT NULL,
    platform    TEXT NOT NULL CHECK (platform IN ('windows-x86_64', 'linux-x86_64')),
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL CHECK (size > 0),
    signature   TEXT NOT NULL,
    -- Fingerprint of the release key that signed it.
    key_fingerprint TEXT NOT NULL,
    content     BYTEA NOT NULL,
    added_by    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (version, platform)
);

-- The release key is registered and rotated like the job-signing key, in the same table.
ALTER TABLE signing_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'jobs' CHECK (purpose IN ('jobs', 'releases'));
