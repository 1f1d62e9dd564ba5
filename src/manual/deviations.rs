//! Where fhirgate departs from Medplum's behaviour, and why (the same text as
//! `docs/deviations.md`, included here so the two never drift apart).
#![doc = include_str!("../../docs/deviations.md")]
