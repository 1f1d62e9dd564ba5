//! The design notes, as documentation that builds with the code: what fhirgate defends
//! against and what it trusts ([`threat_model`]), what a store must guarantee
//! ([`storage_contract`]), and where fhirgate departs from Medplum and why ([`deviations`]).
//!
//! Nothing in this module is code; every claim here names the test that checks it.

pub mod deviations;
pub mod storage_contract;
pub mod threat_model;
