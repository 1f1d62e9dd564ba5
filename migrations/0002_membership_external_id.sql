-- Memberships found by the subject an external identity provider uses for the member
-- (Directory::memberships_by_external_id).
CREATE INDEX fhirgate_memberships_external_id
    ON fhirgate_memberships (project_id, (record ->> 'external_id'))
    WHERE record ->> 'external_id' IS NOT NULL;
