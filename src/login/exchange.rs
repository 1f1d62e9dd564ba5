//! Token exchange (RFC 8693): an identity a client's provider vouched for, through an access
//! token rather than a browser, enters the machine at the Profile stage — and goes the same
//! `choose` and `grant` path as any login, the code being redeemed at once by the token
//! endpoint.

use super::credentials::new_record;
use super::{Login, Profile, create, new_handle};
use crate::engine::Engine;
use crate::error::LoginError;
use crate::model::{Amr, AuthMethod, LoginParams, User};

impl Login<Profile> {
    /// A login for `user`, whose identity the provider behind `params.client` vouched for,
    /// waiting for its membership choice. The account must have no second factor: nothing
    /// could ask for it here.
    pub(crate) async fn exchanged(
        engine: &Engine,
        params: LoginParams,
        user: &User,
    ) -> Result<Login<Profile>, LoginError> {
        let record = new_record(engine, params, AuthMethod::External, user, Amr::Fed)?;
        create(engine.clone(), record, new_handle(engine)?).await
    }
}
