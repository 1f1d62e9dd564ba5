//! fhirgate: authentication and identity for healthcare servers.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod credential;
pub mod model;
pub mod random;
pub mod scope;
pub mod secret;
