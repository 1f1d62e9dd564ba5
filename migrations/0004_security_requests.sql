-- fhirgate schema, version 4: security requests (password-reset, invitation and
-- email-verification links, mailed sign-in codes).
--
-- The secret exists only as its SHA-256 hash. `seq` orders requests by issue: only the newest
-- request of a kind per user can be consumed, which the consuming UPDATE checks itself.

CREATE TABLE fhirgate_security_requests (
    id          text PRIMARY KEY,
    seq         bigserial NOT NULL UNIQUE,
    kind        text NOT NULL,
    user_id     text NOT NULL,
    secret      bytea NOT NULL,
    used        boolean NOT NULL DEFAULT false,
    expires_at  timestamptz NOT NULL,
    record      jsonb NOT NULL
);

CREATE INDEX fhirgate_security_requests_newest
    ON fhirgate_security_requests (user_id, kind, seq DESC);
CREATE INDEX fhirgate_security_requests_expiry
    ON fhirgate_security_requests (expires_at);
