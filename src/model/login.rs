//! `LoginRecord`: the stored, stage-tagged form of a login between requests.
//!
//! Inside a request a login is a typed `Login<S>`; between requests it is this plain record,
//! and the only way back to a typed login is the checked resume in [`crate::login`]. The record
//! holds no bearer secret in clear: the login handle and the authorization code are stored as
//! SHA-256 hashes.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{
    ClientId, LaunchId, LoginId, MembershipId, ProjectId, ProjectMembership, Reference, User,
    UserId,
};
use crate::secret::SecretHash;

/// The stage a stored login waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageTag {
    /// Credentials: waiting for the callback of an external identity provider.
    External,
    /// Credentials: the password passed; waiting for a TOTP code.
    SecondFactor,
    /// Credentials: the password passed; the user must enrol TOTP before going on.
    Enrolment,
    /// Profile: authenticated; waiting for a membership to be chosen.
    Profile,
    /// Scope: membership chosen; waiting for the scope to be granted.
    Scope,
    /// An authorization code was issued and waits for redemption.
    Authorized,
    /// The code was redeemed: the login is a session that tokens point at.
    Granted,
}

impl StageTag {
    /// The stage's name as used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            StageTag::External => "external",
            StageTag::SecondFactor => "second_factor",
            StageTag::Enrolment => "enrolment",
            StageTag::Profile => "profile",
            StageTag::Scope => "scope",
            StageTag::Authorized => "authorized",
            StageTag::Granted => "granted",
        }
    }
}

impl fmt::Display for StageTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the user proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Email and password (argon2id), plus TOTP when enrolled.
    Password,
    /// An external OpenID Connect provider.
    External,
    /// Google sign-in.
    Google,
    /// A confidential client acting for itself (`client_credentials`).
    Client,
}

/// Authentication method references (RFC 8176) accumulated by a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amr {
    /// Password.
    Pwd,
    /// One-time password (TOTP).
    Otp,
    /// Federated (external identity provider).
    Fed,
}

/// A PKCE code challenge bound to a login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkceChallenge {
    /// The challenge as sent by the client.
    pub challenge: String,
    /// The method.
    pub method: PkceMethod,
}

/// PKCE challenge method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PkceMethod {
    /// `S256`: BASE64URL(SHA-256(verifier)).
    S256,
    /// `plain`: only for clients explicitly marked insecure.
    #[serde(rename = "plain")]
    Plain,
}

impl PkceMethod {
    /// The wire name (`S256`, `plain`).
    pub fn as_str(self) -> &'static str {
        match self {
            PkceMethod::S256 => "S256",
            PkceMethod::Plain => "plain",
        }
    }
}

/// What the client asked for when the login started; fixed for the login's life.
///
/// `Debug` shows whether `nonce` and `state` are set, not their values: both bind responses
/// to one browser session and have no place in logs.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginParams {
    /// The OAuth client, if any (Medplum's own app logs in without one).
    pub client: Option<ClientId>,
    /// The project the login is restricted to (the client's project, or one named).
    pub project: Option<ProjectId>,
    /// The redirect URI the code is bound to, when the request named one.
    pub redirect_uri: Option<String>,
    /// The requested scope, normalised.
    pub scope: String,
    /// OpenID Connect nonce.
    pub nonce: Option<String>,
    /// PKCE challenge.
    pub code_challenge: Option<PkceChallenge>,
    /// Only memberships whose profile has this resource type are eligible.
    pub profile_type: Option<String>,
    /// SMART launch context.
    pub launch: Option<LaunchId>,
    /// Client address, for IP rules and the session list.
    pub remote_address: Option<IpAddr>,
    /// User agent, for the session list.
    pub user_agent: Option<String>,
    /// The client's OAuth `state`, for a redirect fhirgate makes itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl fmt::Debug for LoginParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("LoginParams")
            .field("client", &self.client)
            .field("project", &self.project)
            .field("redirect_uri", &self.redirect_uri)
            .field("scope", &self.scope)
            .field("nonce", &redacted(&self.nonce))
            .field("code_challenge", &self.code_challenge)
            .field("profile_type", &self.profile_type)
            .field("launch", &self.launch)
            .field("remote_address", &self.remote_address)
            .field("user_agent", &self.user_agent)
            .field("state", &redacted(&self.state))
            .finish()
    }
}

impl LoginParams {
    /// The memberships a login may act as: active ones of `user`, within the login's
    /// project when it names one, within the user's own project for a project-scoped user,
    /// and of the requested profile type when one was asked for.
    pub(crate) fn eligible<'a>(
        &'a self,
        user: &'a User,
        memberships: &'a [ProjectMembership],
    ) -> impl Iterator<Item = &'a ProjectMembership> + 'a {
        memberships
            .iter()
            .filter(move |m| m.active && m.user == user.id && self.fits(user, m))
    }

    /// Every eligibility rule of [`LoginParams::eligible`] except `active` (which has its
    /// own refusal text).
    pub(crate) fn fits(&self, user: &User, m: &ProjectMembership) -> bool {
        self.project.as_ref().is_none_or(|p| *p == m.project)
            && user.project.as_ref().is_none_or(|p| *p == m.project)
            && self
                .profile_type
                .as_ref()
                .is_none_or(|t| m.profile.resource_type() == t)
    }
}

/// An issued authorization code, stored as its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeState {
    /// SHA-256 of the code.
    pub hash: SecretHash,
    /// The code is refused from this instant on.
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
    /// Set by the store's atomic consume; a second presentation is a replay.
    pub redeemed: bool,
}

/// Which configuration chose an external identity provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderSource {
    /// The client's `identity_provider`.
    Client(ClientId),
    /// The domain configuration of the email's (lower-case) domain.
    Domain(String),
}

/// What a login waiting for an external identity provider remembers (server-side only).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalPending {
    /// Where the provider's configuration lives (read again at the callback, so the
    /// provider's client secret is never copied into login records).
    pub provider: ProviderSource,
    /// The provider's authorization endpoint the browser was sent to (for audit and the
    /// mix-up check at the callback).
    pub authorize_url: String,
    /// SHA-256 of the single-use `state` sent to the provider (the login's handle while it
    /// waits for the callback).
    pub state_hash: SecretHash,
    /// The nonce sent to the provider, checked against its ID token.
    pub nonce: String,
    /// The PKCE verifier for the provider leg; it never leaves the server.
    pub pkce_verifier: String,
}

impl fmt::Debug for ExternalPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalPending")
            .field("provider", &self.provider)
            .field("authorize_url", &self.authorize_url)
            .field("state_hash", &self.state_hash)
            // The nonce binds the provider's ID token to this login: kept out of logs too.
            .field("nonce", &"<redacted>")
            .field("pkce_verifier", &"<redacted>")
            .finish()
    }
}

/// The stored form of a login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRecord {
    /// Identifier (not secret).
    pub id: LoginId,
    /// SHA-256 of the login handle that continues this login.
    pub handle_hash: SecretHash,
    /// Optimistic-concurrency version; every stored update increments it.
    pub version: u64,
    /// The stage the login waits in.
    pub stage: StageTag,
    /// When the login was created.
    #[serde(with = "time::serde::timestamp")]
    pub created_at: OffsetDateTime,
    /// The login is dead from this instant on (the stage deadline).
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
    /// What the client asked for.
    pub params: LoginParams,
    /// How the user authenticated.
    pub auth_method: AuthMethod,
    /// The authenticated user (absent only while waiting for an external provider).
    pub user: Option<UserId>,
    /// When the user authenticated.
    #[serde(with = "time::serde::timestamp::option")]
    pub auth_time: Option<OffsetDateTime>,
    /// Authentication methods performed.
    pub amr: Vec<Amr>,
    /// The chosen membership.
    pub membership: Option<MembershipId>,
    /// The chosen membership's project.
    pub project: Option<ProjectId>,
    /// The chosen membership's profile (`Practitioner/123`).
    pub profile: Option<Reference>,
    /// The profile's display name, for token responses (`profile.display`).
    #[serde(default)]
    pub profile_display: Option<String>,
    /// The chosen membership's project name, for token responses (`project.display`).
    #[serde(default)]
    pub project_name: Option<String>,
    /// Patient in context (from the launch, or the profile itself when it is a Patient).
    pub patient: Option<Reference>,
    /// Encounter in context.
    pub encounter: Option<Reference>,
    /// The granted scope.
    pub granted_scope: Option<String>,
    /// The issued authorization code.
    pub code: Option<CodeState>,
    /// State kept while waiting for an external provider.
    pub external: Option<ExternalPending>,
    /// The refresh-token family of a granted login.
    #[serde(default)]
    pub refresh: Option<RefreshState>,
    /// SHA-256 of the single-sign-on session secret (the SSO cookie), once a code was issued.
    #[serde(default)]
    pub session: Option<SessionState>,
    /// The session login this grant was created from by single sign-on, if any.
    #[serde(default)]
    pub parent: Option<LoginId>,
    /// SHA-256 of the browser binding of an external sign-in: the value of the `__Host-`
    /// cookie set in the browser that started it. The provider's callback and the hand-off
    /// back to the sign-in page are accepted only from that browser.
    #[serde(default)]
    pub browser: Option<SecretHash>,
    /// Set while the login is handed to the browser through a URL (after an identity
    /// provider's callback): until this instant it can be picked up once, by the browser
    /// that holds the binding, and resumed in no other way.
    #[serde(default, with = "time::serde::timestamp::option")]
    pub handoff_until: Option<OffsetDateTime>,
    /// Revoked logins can never be resumed, redeemed or refreshed.
    pub revoked: bool,
}

/// A login's refresh-token family: the current token. Every earlier one is remembered by the
/// store beside the record (not in it, so the record stays small and a rotation writes one
/// hash, not the family's history), so that presenting it again is recognised as reuse and
/// revokes the family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshState {
    /// SHA-256 of the current refresh token.
    pub current: SecretHash,
    /// The family's absolute end: no rotation extends it.
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
}

/// A single-sign-on session carried by a cookie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// SHA-256 of the cookie value.
    pub hash: SecretHash,
    /// The session cannot be reused for sign-on after this.
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
}

impl LoginRecord {
    /// A login that has only just started: no user, membership, scope or code yet. The
    /// stage is set when the record is first stored.
    pub fn new(
        id: LoginId,
        handle_hash: SecretHash,
        params: LoginParams,
        auth_method: AuthMethod,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            handle_hash,
            version: 0,
            stage: StageTag::Profile,
            created_at,
            expires_at,
            params,
            auth_method,
            user: None,
            auth_time: None,
            amr: Vec::new(),
            membership: None,
            project: None,
            profile: None,
            profile_display: None,
            project_name: None,
            patient: None,
            encounter: None,
            granted_scope: None,
            code: None,
            external: None,
            refresh: None,
            session: None,
            parent: None,
            browser: None,
            handoff_until: None,
            revoked: false,
        }
    }

    /// Whether the login is past its deadline at `now`.
    pub fn expired_at(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }
}
