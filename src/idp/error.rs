//! Refusals of the external identity-provider paths: [`ExternalError`], defined with the other
//! refusals in [`crate::error`].

pub use crate::error::{ExternalError, ProviderSetup};
