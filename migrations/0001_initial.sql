-- fhirgate schema, version 1.
--
-- Every entity keeps its whole serialised record in `record` (jsonb) and, next to it, the
-- columns that lookups and atomic conditions need. Statements that change a condition column
-- change the record in the same statement, so the two never disagree.
--
-- Identifiers and emails use the "C" collation: byte order (what the in-memory store sorts
-- by) and no locale-dependent equality.

-- Directory -----------------------------------------------------------------------------------

CREATE TABLE fhirgate_users (
    id          text COLLATE "C" PRIMARY KEY,
    -- normalised email; unique per scope (see the two indexes below)
    email       text COLLATE "C" NOT NULL,
    -- NULL: a server-scoped user
    project_id  text COLLATE "C",
    version     bigint NOT NULL CHECK (version >= 0),
    record      jsonb NOT NULL
);
-- One server-scoped user per email ...
CREATE UNIQUE INDEX fhirgate_users_server_email
    ON fhirgate_users (email) WHERE project_id IS NULL;
-- ... and one per email within each project.
CREATE UNIQUE INDEX fhirgate_users_project_email
    ON fhirgate_users (project_id, email) WHERE project_id IS NOT NULL;

CREATE TABLE fhirgate_projects (
    id      text COLLATE "C" PRIMARY KEY,
    record  jsonb NOT NULL
);

CREATE TABLE fhirgate_memberships (
    id          text COLLATE "C" PRIMARY KEY,
    user_id     text COLLATE "C" NOT NULL,
    project_id  text COLLATE "C" NOT NULL,
    record      jsonb NOT NULL
);
-- memberships_of(user), in id order
CREATE INDEX fhirgate_memberships_user ON fhirgate_memberships (user_id, id);

CREATE TABLE fhirgate_clients (
    id          text COLLATE "C" PRIMARY KEY,
    project_id  text COLLATE "C" NOT NULL,
    record      jsonb NOT NULL
);

-- Keyed by the lower-cased domain: one configuration per domain.
CREATE TABLE fhirgate_domains (
    domain  text COLLATE "C" PRIMARY KEY,
    record  jsonb NOT NULL
);

CREATE TABLE fhirgate_access_policies (
    id      text COLLATE "C" PRIMARY KEY,
    record  jsonb NOT NULL
);

CREATE TABLE fhirgate_launches (
    id      text COLLATE "C" PRIMARY KEY,
    record  jsonb NOT NULL
);

-- Logins ----------------------------------------------------------------------------------------

CREATE TABLE fhirgate_logins (
    id                  text COLLATE "C" PRIMARY KEY,
    version             bigint NOT NULL CHECK (version >= 0),
    stage               text NOT NULL,
    revoked             boolean NOT NULL,
    user_id             text COLLATE "C",
    -- params.client: the client a refresh token must be presented by
    client_id           text COLLATE "C",
    created_at          timestamptz NOT NULL,
    -- the login's deadline: purge_expired_logins deletes rows with expires_at <= now
    expires_at          timestamptz NOT NULL,
    handle_hash         bytea NOT NULL UNIQUE CHECK (octet_length(handle_hash) = 32),
    code_hash           bytea UNIQUE CHECK (octet_length(code_hash) = 32),
    code_expires_at     timestamptz,
    code_redeemed       boolean,
    session_hash        bytea CHECK (octet_length(session_hash) = 32),
    -- the refresh family's current token; retired ones are in the record and in
    -- fhirgate_login_hashes
    refresh_hash        bytea UNIQUE CHECK (octet_length(refresh_hash) = 32),
    refresh_expires_at  timestamptz,
    record              jsonb NOT NULL,
    CHECK ((code_hash IS NULL) = (code_expires_at IS NULL)
        AND (code_hash IS NULL) = (code_redeemed IS NULL)),
    CHECK ((refresh_hash IS NULL) = (refresh_expires_at IS NULL))
);
-- logins_of_user and revoke_user_logins
CREATE INDEX fhirgate_logins_user
    ON fhirgate_logins (user_id, created_at DESC, id) WHERE user_id IS NOT NULL;
-- purge_expired_logins
CREATE INDEX fhirgate_logins_expires ON fhirgate_logins (expires_at);

-- Every secret hash a login can be found by (handle, code, session, current and retired
-- refresh tokens), each pointing at its login: the primary key keeps every hash unique
-- across logins and kinds, and is the index for login_by_handle, login_by_session and
-- login_by_refresh. Rows go with their login.
CREATE TABLE fhirgate_login_hashes (
    hash      bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
    login_id  text COLLATE "C" NOT NULL REFERENCES fhirgate_logins (id) ON DELETE CASCADE
);
CREATE INDEX fhirgate_login_hashes_login ON fhirgate_login_hashes (login_id);

-- Single-use keys, watermarks, attempt counters --------------------------------------------------
-- Keys are the UTF-8 bytes of `kind:subject`: subjects can come from requests (a JWT `jti`)
-- and may hold characters PostgreSQL's text cannot (NUL).

CREATE TABLE fhirgate_once_claims (
    key         bytea PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX fhirgate_once_claims_expires ON fhirgate_once_claims (expires_at);

CREATE TABLE fhirgate_once_watermarks (
    key         bytea PRIMARY KEY,
    -- a u64: numeric keeps the whole range and its order
    value       numeric(20, 0) NOT NULL CHECK (value >= 0),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX fhirgate_once_watermarks_expires ON fhirgate_once_watermarks (expires_at);

CREATE TABLE fhirgate_once_attempts (
    key           bytea PRIMARY KEY,
    count         bigint NOT NULL CHECK (count >= 0),
    window_ends   timestamptz NOT NULL,
    -- whether the latest take_attempt was counted (what its statement returns)
    last_allowed  boolean NOT NULL
);
CREATE INDEX fhirgate_once_attempts_window ON fhirgate_once_attempts (window_ends);
