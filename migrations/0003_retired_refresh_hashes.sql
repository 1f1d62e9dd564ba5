-- fhirgate schema, version 3: rotated-out refresh tokens live only in fhirgate_login_hashes.
--
-- Version 1 kept every retired refresh hash of a family both in its login's record (an array
-- rewritten at each rotation, growing without bound) and in fhirgate_login_hashes. From now
-- on the hashes table alone remembers them, marked `retired_refresh`; a rotation writes one
-- row instead of the whole array, and the record stays the size of one family member.

ALTER TABLE fhirgate_login_hashes
    ADD COLUMN retired_refresh boolean NOT NULL DEFAULT false;

-- Mark the hashes the records list as retired (stored there as unpadded base64url text).
UPDATE fhirgate_login_hashes h
SET retired_refresh = true
FROM fhirgate_logins l,
     jsonb_array_elements_text(COALESCE(l.record #> '{refresh,retired}', '[]'::jsonb)) AS r(text)
WHERE h.login_id = l.id
  AND h.hash = decode(
        translate(r.text, '-_', '+/')
            || repeat('=', (4 - length(r.text) % 4) % 4),
        'base64');

UPDATE fhirgate_logins
SET record = record #- '{refresh,retired}'
WHERE record #> '{refresh,retired}' IS NOT NULL;
