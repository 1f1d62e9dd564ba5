//! Domain stage: check the request, then decide how this person authenticates — with a
//! password, or at an external identity provider chosen by the client's configuration or by
//! the email's domain.

use std::net::IpAddr;

use url::Url;

use super::{Credentials, External, Login, Stage, create, new_handle, sealed};
use crate::audit::AuditKind;
use crate::engine::Engine;
use crate::error::{LoginError, RequestError, ServerError};
use crate::model::{
    AuthMethod, ClientApplication, ClientStatus, ExternalPending, IdentityProvider, LaunchId,
    LoginId, LoginParams, LoginRecord, PkceChallenge, PkceMethod, PkcePolicy, ProjectId,
    ProviderSource, normalize_email,
};
use crate::pkce;
use crate::scope::ScopeSet;
use crate::secret::BearerSecret;

/// Longest accepted redirect URI.
const MAX_URI: usize = 2048;
/// Longest accepted nonce, scope, user agent, id or other short text.
const MAX_TEXT: usize = 512;
/// Longest accepted scope string.
const MAX_SCOPE: usize = 4096;
/// How long a login waits for an identity provider's callback.
pub const EXTERNAL_LIFETIME: time::Duration = time::Duration::minutes(10);

/// What a client sends to start a login (the fields of Medplum's `/auth/login`, `/auth/method`
/// and the authorization request). Empty strings count as absent, as Medplum's clients send
/// `clientId: ""` when they have none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginRequest {
    /// OAuth client id.
    pub client_id: Option<String>,
    /// Project to restrict the login to.
    pub project_id: Option<String>,
    /// Redirect URI the code will be delivered to (must be registered for the client).
    pub redirect_uri: Option<String>,
    /// Requested scope (default: the client's default scope, else `openid`).
    pub scope: Option<String>,
    /// OpenID Connect nonce.
    pub nonce: Option<String>,
    /// PKCE challenge.
    pub code_challenge: Option<String>,
    /// PKCE method: `S256` (or `plain` for clients marked insecure).
    pub code_challenge_method: Option<String>,
    /// Only memberships whose profile is of this resource type (`Patient`, `Practitioner`).
    pub resource_type: Option<String>,
    /// SMART launch context id.
    pub launch: Option<String>,
    /// Client address (from the transport, after the trusted-proxy rule).
    pub remote_address: Option<IpAddr>,
    /// User agent.
    pub user_agent: Option<String>,
    /// The browser's `Origin` header, if any.
    pub origin: Option<String>,
    /// The client's OAuth `state`, echoed when fhirgate itself redirects the browser to the
    /// redirect URI with the code (after an external identity provider's callback).
    pub state: Option<String>,
}

/// Domain stage: the request is checked; no secret has been presented yet. Not stored.
#[derive(Debug)]
pub struct Domain {
    params: LoginParams,
    client: Option<ClientApplication>,
}
impl sealed::Sealed for Domain {}
impl Stage for Domain {}

impl Domain {
    /// The checked request, for the stage after this one.
    pub(super) fn into_params(self) -> LoginParams {
        self.params
    }
}

/// How the person behind an email authenticates.
// Returned once per login and matched at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Method {
    /// With a password: continue with [`Login::password`].
    Password(Login<Credentials>),
    /// At an external identity provider. Nothing is stored yet: the provider leg must start
    /// in the browser, which gets a binding cookie there — call [`Login::federate`] from a
    /// request the browser navigated to (the HTTP layer answers the `/auth/external/start`
    /// URL, as Medplum's `/auth/method` does).
    External {
        /// The login, still in the Domain stage.
        login: Login<Domain>,
        /// The email domain whose configuration chose the provider (`None` when the client's
        /// configuration did).
        domain: Option<String>,
    },
}

/// A login sent to an external identity provider.
pub struct ExternalRedirect {
    /// The stored login waiting for the provider's callback.
    pub login: Login<External>,
    /// Where to send the browser: the provider's authorization endpoint with `state`, `nonce`
    /// and a PKCE S256 challenge whose verifier stays on the server.
    pub authorize_url: Url,
    /// The email domain whose configuration chose the provider (`None` when the client's
    /// configuration did).
    pub domain: Option<String>,
    /// The browser binding: set it as a `__Host-` cookie (`Secure; HttpOnly;
    /// SameSite=Lax`) on the response that sends the browser to the provider. The callback
    /// is accepted only from a browser that presents it ([`ExternalCallback::browser`]), so
    /// a callback URL planted in another browser signs nobody in (login CSRF). Only its hash
    /// is stored.
    ///
    /// [`ExternalCallback::browser`]: crate::idp::ExternalCallback::browser
    pub browser_binding: BearerSecret,
}

impl std::fmt::Debug for ExternalRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL's query carries the login's handle as `state`, and the nonce: only the
        // endpoint is shown.
        let mut endpoint = self.authorize_url.clone();
        endpoint.set_query(None);
        f.debug_struct("ExternalRedirect")
            .field("login", &self.login)
            .field("authorize_url", &format_args!("{endpoint}?<redacted>"))
            .field("domain", &self.domain)
            .field("browser_binding", &self.browser_binding)
            .finish()
    }
}

fn text(
    value: Option<String>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, LoginError> {
    match value {
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.chars().count() > max => Err(RequestError::TooLong { field, max }.into()),
        Some(v) if v.chars().any(char::is_control) => {
            Err(RequestError::ControlCharacters { field }.into())
        }
        other => Ok(other),
    }
}

fn is_resource_type(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && text.chars().all(|c| c.is_ascii_alphabetic())
}

impl Engine {
    /// Starts a login: checks the client, project, redirect URI, PKCE, scope and launch
    /// context, in that order. Nothing is stored yet.
    pub async fn start(&self, request: LoginRequest) -> Result<Login<Domain>, LoginError> {
        let client_id = text(request.client_id, "clientId", MAX_TEXT)?;
        let project_id = text(request.project_id, "projectId", MAX_TEXT)?;
        let redirect_uri = text(request.redirect_uri, "redirectUri", MAX_URI)?;
        let scope = text(request.scope, "scope", MAX_SCOPE)?;
        let nonce = text(request.nonce, "nonce", MAX_TEXT)?;
        let challenge = text(request.code_challenge, "codeChallenge", MAX_TEXT)?;
        let method = text(
            request.code_challenge_method,
            "codeChallengeMethod",
            MAX_TEXT,
        )?;
        let resource_type = text(request.resource_type, "resourceType", MAX_TEXT)?;
        let launch = text(request.launch, "launch", MAX_TEXT)?;
        let origin = text(request.origin, "origin", MAX_URI)?;
        let state = text(request.state, "state", MAX_URI)?;
        let user_agent = request.user_agent.filter(|ua| !ua.is_empty()).map(|ua| {
            ua.chars()
                .filter(|c| !c.is_control())
                .take(MAX_TEXT)
                .collect::<String>()
        });

        // Client, then project.
        let client = match &client_id {
            Some(id) => {
                let client = self
                    .directory()
                    .client(&id.as_str().into())
                    .await?
                    .ok_or(RequestError::UnknownClient)?;
                if client.status != ClientStatus::Active {
                    return Err(RequestError::ClientInactive.into());
                }
                if let Some(origin) = &origin
                    && !client.origin_allowed(origin)
                {
                    return Err(RequestError::InvalidOrigin.into());
                }
                Some(client)
            }
            None => None,
        };
        let project = match (&client, project_id) {
            (Some(client), Some(named)) if named != client.project.as_str() => {
                return Err(RequestError::InvalidProject.into());
            }
            (Some(client), _) => Some(client.project.clone()),
            (None, Some(named)) => {
                let id = ProjectId::new(named);
                if self.directory().project(&id).await?.is_none() {
                    return Err(RequestError::InvalidProject.into());
                }
                Some(id)
            }
            (None, None) => None,
        };

        // Redirect URI: exactly registered for the client.
        if let Some(uri) = &redirect_uri {
            let registered = client
                .as_ref()
                .is_some_and(|c| c.redirect_uri_registered(uri));
            if !registered {
                return Err(RequestError::InvalidRedirectUri.into());
            }
        }

        // PKCE.
        // PKCE may be optional only for a client that authenticates itself at the token
        // endpoint; a public client (or a login without a client) always needs it.
        let policy = match &client {
            Some(c) if c.pkce == PkcePolicy::Optional && c.is_public() => PkcePolicy::Required,
            Some(c) => c.pkce,
            None => PkcePolicy::Required,
        };
        let code_challenge = check_pkce(policy, challenge, method)?;

        // Scope.
        let scope_text = scope
            .or_else(|| client.as_ref().and_then(|c| c.default_scope.clone()))
            .unwrap_or_else(|| "openid".to_owned());
        let requested = ScopeSet::parse(&scope_text)?;

        // Profile type and launch context.
        if let Some(rt) = &resource_type
            && !is_resource_type(rt)
        {
            return Err(RequestError::InvalidResourceType.into());
        }
        let launch = match launch {
            Some(id) => {
                let id = LaunchId::new(id);
                if self.directory().launch(&id).await?.is_none() {
                    return Err(RequestError::LaunchNotFound.into());
                }
                Some(id)
            }
            None => None,
        };

        Ok(Login {
            engine: self.clone(),
            stage: Domain {
                params: LoginParams {
                    client: client.as_ref().map(|c| c.id.clone()),
                    project,
                    redirect_uri,
                    scope: requested.to_string(),
                    nonce,
                    code_challenge,
                    profile_type: resource_type,
                    launch,
                    remote_address: request.remote_address,
                    user_agent,
                    state,
                },
                client,
            },
        })
    }
}

fn check_pkce(
    policy: PkcePolicy,
    challenge: Option<String>,
    method: Option<String>,
) -> Result<Option<PkceChallenge>, LoginError> {
    match (challenge, method) {
        (None, None) => {
            if policy == PkcePolicy::Optional {
                Ok(None)
            } else {
                Err(RequestError::MissingCodeChallenge.into())
            }
        }
        (None, Some(_)) => Err(RequestError::InvalidCodeChallenge.into()),
        // RFC 7636 would default a missing method to `plain`; we refuse instead.
        (Some(_), None) => Err(RequestError::InvalidCodeChallengeMethod.into()),
        (Some(challenge), Some(method)) => match method.as_str() {
            "S256" => {
                if pkce::is_valid_s256_challenge(&challenge) {
                    Ok(Some(PkceChallenge {
                        challenge,
                        method: PkceMethod::S256,
                    }))
                } else {
                    Err(RequestError::InvalidCodeChallenge.into())
                }
            }
            "plain" => {
                if policy != PkcePolicy::InsecureAllowPlain {
                    Err(RequestError::PlainPkceRefused.into())
                } else if pkce::is_valid_verifier(&challenge) {
                    Ok(Some(PkceChallenge {
                        challenge,
                        method: PkceMethod::Plain,
                    }))
                } else {
                    Err(RequestError::InvalidCodeChallenge.into())
                }
            }
            _ => Err(RequestError::InvalidCodeChallengeMethod.into()),
        },
    }
}

/// Checks and normalises an email address: one `@`, a non-empty local part of at most 64
/// characters, a domain with a dot, no whitespace or control characters, at most 254 in all.
pub(crate) fn parse_email(email: &str) -> Option<String> {
    let email = normalize_email(email);
    if email.chars().count() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    let domain_ok = !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || local.chars().count() > 64 || !domain_ok {
        return None;
    }
    Some(email)
}

impl Engine {
    /// The external identity provider configured for an email's domain, if any, with the
    /// (lower-case) domain: what Medplum's `/auth/method` reports. Reveals which domains are
    /// configured (by design), nothing about accounts.
    pub async fn domain_provider(
        &self,
        email: &str,
    ) -> Result<Option<(String, IdentityProvider)>, LoginError> {
        let email = parse_email(email).ok_or(RequestError::InvalidEmail)?;
        let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        Ok(self
            .directory()
            .domain(domain)
            .await?
            .and_then(|c| c.identity_provider.map(|p| (c.domain.to_lowercase(), p))))
    }
}

impl Login<Domain> {
    /// What the client asked for.
    pub fn params(&self) -> &LoginParams {
        &self.stage.params
    }

    /// The client the login runs through, if any.
    pub fn client(&self) -> Option<&ClientApplication> {
        self.stage.client.as_ref()
    }

    /// Decides how `email` authenticates: the client's identity provider if it has one, else
    /// the provider configured for the email's domain (case-insensitive), else a password.
    pub async fn method(self, email: &str) -> Result<Method, LoginError> {
        let email = parse_email(email).ok_or(RequestError::InvalidEmail)?;
        match self.provider_for_email(&email).await? {
            Some((_, source)) => Ok(Method::External {
                login: self,
                domain: match source {
                    ProviderSource::Domain(domain) => Some(domain),
                    ProviderSource::Client(_) => None,
                },
            }),
            None => {
                let Login { engine, stage } = self;
                Ok(Method::Password(Login {
                    engine,
                    stage: Credentials {
                        params: stage.params,
                        email,
                    },
                }))
            }
        }
    }

    /// Sends the login to an external identity provider without an email: the client's
    /// provider if it has one, else the one configured for `domain`. This is how a browser
    /// that only knows the domain (Medplum's sign-in form after `/auth/method`) starts.
    pub async fn federate(self, domain: Option<&str>) -> Result<ExternalRedirect, LoginError> {
        let domain = domain.map(|d| d.trim().to_lowercase());
        let (provider, source) = self
            .provider_for(domain.as_deref())
            .await?
            .ok_or(crate::idp::ExternalError::NoProvider)?;
        let Login { engine, stage } = self;
        external(engine, stage.params, provider, source).await
    }

    /// The provider that governs sign-ins for `email`'s domain in this login: the client's,
    /// else the email domain's; `None` when a password (or Google) may be used.
    pub(crate) async fn provider_for_email(
        &self,
        email: &str,
    ) -> Result<Option<(IdentityProvider, ProviderSource)>, LoginError> {
        let domain = email.rsplit_once('@').map(|(_, d)| d.to_lowercase());
        self.provider_for(domain.as_deref()).await
    }

    async fn provider_for(
        &self,
        domain: Option<&str>,
    ) -> Result<Option<(IdentityProvider, ProviderSource)>, LoginError> {
        if let Some(client) = &self.stage.client
            && let Some(provider) = client.identity_provider.clone()
        {
            return Ok(Some((provider, ProviderSource::Client(client.id.clone()))));
        }
        let Some(domain) = domain.filter(|d| !d.is_empty()) else {
            return Ok(None);
        };
        Ok(self
            .engine
            .directory()
            .domain(domain)
            .await?
            .and_then(|config| {
                let source = ProviderSource::Domain(config.domain.to_lowercase());
                config.identity_provider.map(|p| (p, source))
            }))
    }
}

async fn external(
    engine: Engine,
    params: LoginParams,
    provider: IdentityProvider,
    source: ProviderSource,
) -> Result<ExternalRedirect, LoginError> {
    let callback = engine.config().external_callback_url.clone().ok_or({
        ServerError::Config(crate::config::ConfigError::Setting {
            setting: "external_callback_url",
            requirement: "must be set when an identity provider is configured",
        })
    })?;
    // An anonymous request is about to store a login: limited per client address.
    let throttle = &engine.config().throttle;
    if let Some(limit) = throttle.external_starts_per_address {
        let key = crate::store::OnceKey::new(
            crate::store::OnceKind::ExternalStartAddress,
            &params
                .remote_address
                .map(|a| a.to_string())
                .unwrap_or_default(),
        );
        if let Some(retry_after) = crate::store::take_attempts(
            engine.once_store(),
            &[(key, limit)],
            throttle.address_window,
            engine.now(),
        )
        .await?
        {
            return Err(LoginError::Throttled { retry_after });
        }
    }
    let random = engine.random();
    // The `state` is the login's handle: the callback resumes the login by it, and the
    // login continues under a new handle afterwards (the state travelled through URLs).
    let handle = new_handle(&engine)?;
    let nonce = BearerSecret::generate(random)?;
    let verifier = BearerSecret::generate(random)?;
    let browser_binding = BearerSecret::generate(random)?;
    let mut authorize_url = provider.authorize_url.clone();
    authorize_url
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &provider.client_id)
        .append_pair("redirect_uri", callback.as_str())
        .append_pair("scope", &provider.scope)
        .append_pair("state", handle.expose())
        .append_pair("nonce", nonce.expose())
        .append_pair("code_challenge", &pkce::s256_challenge(verifier.expose()))
        .append_pair("code_challenge_method", "S256");
    let now = engine.now();
    let mut record = LoginRecord::new(
        LoginId::generate(random)?,
        handle.hash(),
        params,
        AuthMethod::External,
        now,
        now.saturating_add(engine.config().login_lifetime),
    );
    record.browser = Some(browser_binding.hash());
    // Waiting at the provider is short: an anonymous request stored this.
    record.expires_at = now.saturating_add(EXTERNAL_LIFETIME.min(engine.config().login_lifetime));
    record.external = Some(ExternalPending {
        provider: source.clone(),
        authorize_url: provider.authorize_url.to_string(),
        state_hash: handle.hash(),
        nonce: nonce.expose().to_owned(),
        pkce_verifier: verifier.expose().to_owned(),
    });
    let host = provider
        .authorize_url
        .host_str()
        .unwrap_or_default()
        .to_owned();
    let context = super::record_context(&record);
    let login = create::<External>(engine.clone(), record, handle).await?;
    engine.audit(AuditKind::ExternalRedirect { provider: host }, context);
    let domain = match source {
        ProviderSource::Domain(domain) => Some(domain),
        ProviderSource::Client(_) => None,
    };
    Ok(ExternalRedirect {
        login,
        authorize_url,
        domain,
        browser_binding,
    })
}
