//! A client acting for itself (`client_credentials`): no user, no browser and no code — the
//! grant is stored directly in the stage every token points at. Only this named constructor
//! mints such a login.

use std::net::IpAddr;

use crate::engine::Engine;
use crate::error::LoginError;
use crate::model::{
    AuthMethod, ClientApplication, LoginId, LoginParams, LoginRecord, ProjectMembership, StageTag,
};
use crate::scope::ScopeSet;
use crate::secret::BearerSecret;

/// Stores the grant of `client` acting through its own `membership` (user and profile
/// are the client), with the scope it asked for and the scope it is granted. The record
/// lives as long as an access token; there is no refresh token and no handle anyone
/// holds.
pub(crate) async fn client_grant(
    engine: &Engine,
    client: &ClientApplication,
    membership: &ProjectMembership,
    requested: &ScopeSet,
    granted: &ScopeSet,
    remote_address: Option<IpAddr>,
    user_agent: Option<String>,
) -> Result<LoginRecord, LoginError> {
    let now = engine.now();
    // Nobody continues this login: its handle is drawn and forgotten.
    let handle = BearerSecret::generate(engine.random())?;
    let mut record = LoginRecord::new(
        LoginId::generate(engine.random())?,
        handle.hash(),
        LoginParams {
            client: Some(client.id.clone()),
            project: Some(client.project.clone()),
            scope: requested.to_string(),
            remote_address,
            user_agent,
            ..LoginParams::default()
        },
        AuthMethod::Client,
        now,
        now.saturating_add(engine.config().oauth.access_token_lifetime),
    );
    record.stage = StageTag::Granted;
    record.auth_time = Some(now);
    record.membership = Some(membership.id.clone());
    record.project = Some(membership.project.clone());
    record.profile = Some(membership.profile.clone());
    record.profile_display = membership.profile_display.clone();
    record.granted_scope = Some(granted.to_string());
    engine.login_store().create_login(&record).await?;
    Ok(record)
}
