//! Checking a seed against itself and the password policy, then writing it.

use std::collections::{HashMap, HashSet};

use url::Url;

use super::schema::{Seed, SeedClient, SeedUser};
use super::{SeedError, SeedProblem};
use crate::credential::password::{Password, PasswordHasher, PasswordPolicy};
use crate::engine::Engine;
use crate::error::LoginError;
use crate::model::{
    AccessPolicy, AccessPolicyId, ClientApplication, ClientAuthMethod, ClientId, ClientSecretHash,
    DomainConfiguration, MembershipId, PkcePolicy, Project, ProjectId, ProjectMembership,
    ResourcePolicy, TotpSecret, TotpState, User, UserId, normalize_email,
};
use crate::scope::ScopeSet;
use crate::store::{DirectoryAdmin, StoreError};

/// What was loaded, for a banner or a test.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Summary {
    /// The users, in seed order.
    pub users: Vec<UserSummary>,
    /// The clients, in seed order.
    pub clients: Vec<ClientSummary>,
    /// Users the store already had (another instance seeded them first): kept as they were.
    pub existing_users: Vec<String>,
}

impl Summary {
    /// The client a person tries the sign-in with from a browser: the first public client
    /// with a redirect URI, else the first client with one.
    pub fn sign_in_client(&self) -> Option<&ClientSummary> {
        let with_redirect = || self.clients.iter().filter(|c| !c.redirect_uris.is_empty());
        with_redirect()
            .find(|c| c.auth_method == ClientAuthMethod::None)
            .or_else(|| with_redirect().next())
    }

    /// An authorization request a browser can open to try the sign-in page: the
    /// [`sign_in_client`](Self::sign_in_client) with its first redirect URI, its default
    /// scope (else `fallback_scope`), `state=demo-state` and the PKCE S256 `challenge`.
    pub fn try_url(&self, issuer: &str, challenge: &str, fallback_scope: &str) -> Option<String> {
        let client = self.sign_in_client()?;
        let scope = client.default_scope.as_deref().unwrap_or(fallback_scope);
        let params = [
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", client.redirect_uris.first()?),
            ("scope", scope),
            ("state", "demo-state"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ];
        let url = url::Url::parse_with_params(&format!("{issuer}/oauth2/authorize"), params);
        url.ok().map(String::from)
    }

    /// Moves every loopback `http` redirect URI on the issuer's host to the issuer's port
    /// (RFC 8252 §7.3 lets a loopback redirect URI vary in port), so a seed file's
    /// `http://127.0.0.1:8103/callback` reaches a server listening elsewhere.
    pub fn localize_redirects(&mut self, issuer: &str) {
        let Ok(issuer) = url::Url::parse(issuer) else {
            return;
        };
        for uri in self
            .clients
            .iter_mut()
            .flat_map(|c| c.redirect_uris.iter_mut())
        {
            if let Ok(mut parsed) = url::Url::parse(uri)
                && parsed.scheme() == "http"
                && issuer.scheme() == "http"
                && parsed.host() == issuer.host()
                && parsed.set_port(issuer.port()).is_ok()
            {
                *uri = parsed.into();
            }
        }
    }
}

/// One line per user (email, profiles, password and TOTP state) and per client (id, how it
/// authenticates, first redirect URI), labelled in a 15-column margin: what a start-up banner
/// prints.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, user) in self.users.iter().enumerate() {
            let mut notes = vec![user.profiles.join(", ")];
            if !user.password {
                notes.push("no password".to_owned());
            }
            if user.totp {
                notes.push(
                    "TOTP enrolled: add its totpSecretBase32 to an authenticator app".to_owned(),
                );
            } else if user.mfa_required {
                notes.push("must enrol TOTP at sign-in".to_owned());
            }
            notes.retain(|n| !n.is_empty());
            let label = if i == 0 { "users" } else { "" };
            writeln!(f, "  {label:<15} {}   ({})", user.email, notes.join("; "))?;
        }
        for (i, client) in self.clients.iter().enumerate() {
            let method = match client.auth_method {
                ClientAuthMethod::None => "public, PKCE S256".to_owned(),
                other => other.to_string(),
            };
            let redirect = client
                .redirect_uris
                .first()
                .map(|uri| format!(", redirect_uri {uri}"))
                .unwrap_or_default();
            let label = if i == 0 { "clients" } else { "" };
            writeln!(
                f,
                "  {label:<15} client_id {} ({method}){redirect}",
                client.id
            )?;
        }
        Ok(())
    }
}

/// A loaded user.
#[derive(Debug)]
#[non_exhaustive]
pub struct UserSummary {
    /// The normalised email address.
    pub email: String,
    /// Whether a password was set.
    pub password: bool,
    /// Whether a TOTP factor is enrolled.
    pub totp: bool,
    /// Whether the account must enrol TOTP at sign-in.
    pub mfa_required: bool,
    /// The profiles of its memberships.
    pub profiles: Vec<String>,
}

/// A loaded client.
#[derive(Debug)]
#[non_exhaustive]
pub struct ClientSummary {
    /// The client id.
    pub id: String,
    /// How it authenticates.
    pub auth_method: ClientAuthMethod,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Its default scope.
    pub default_scope: Option<String>,
}

/// Everything a valid seed writes, built before anything is written.
struct Plan {
    projects: Vec<(String, Project)>,
    policies: Vec<(String, AccessPolicy)>,
    clients: Vec<(String, ClientApplication)>,
    users: Vec<(String, User, Option<Password>)>,
    memberships: Vec<(String, ProjectMembership)>,
    domains: Vec<(String, DomainConfiguration)>,
    summary: Summary,
}

fn refuse<T>(at: &str, problem: SeedProblem) -> Result<T, SeedError> {
    Err(SeedError::new(at, problem))
}

impl Seed {
    /// Checks every entry — ids, references between entries, emails, scopes, redirect URIs,
    /// client credentials, TOTP secrets, and each password against `policy` — without
    /// writing anything.
    pub fn validate(&self, policy: &PasswordPolicy) -> Result<(), SeedError> {
        self.plan(policy).map(|_| ())
    }

    /// Validates the seed ([`Seed::validate`]), hashes its passwords with `hasher`, and writes
    /// it through `directory`: projects, access policies, clients, users, memberships,
    /// domains. A user whose id or email the store already has is kept as it is (several
    /// instances may seed one database) and listed in [`Summary::existing_users`].
    pub async fn load(
        self,
        directory: &dyn DirectoryAdmin,
        policy: &PasswordPolicy,
        hasher: &dyn PasswordHasher,
    ) -> Result<Summary, SeedError> {
        let mut plan = self.plan(policy)?;
        let mut users = Vec::with_capacity(plan.users.len());
        for (at, mut user, password) in std::mem::take(&mut plan.users) {
            if let Some(password) = password {
                let hash = hasher
                    .hash(&password)
                    .await
                    .map_err(|e| SeedError::new(&at, SeedProblem::Password(LoginError::from(e))))?;
                user.password_hash = Some(hash);
            }
            users.push((at, user));
        }
        let store = |at: &str| {
            let at = at.to_owned();
            move |e: StoreError| SeedError::new(&at, SeedProblem::Store(e))
        };
        for (at, project) in &plan.projects {
            directory.put_project(project).await.map_err(store(at))?;
        }
        for (at, policy) in &plan.policies {
            directory
                .put_access_policy(policy)
                .await
                .map_err(store(at))?;
        }
        for (at, client) in &plan.clients {
            directory.put_client(client).await.map_err(store(at))?;
        }
        for (at, user) in &users {
            match directory.create_user(user).await {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => {
                    plan.summary.existing_users.push(user.id.to_string());
                }
                Err(e) => return Err(store(at)(e)),
            }
        }
        for (at, membership) in &plan.memberships {
            directory
                .put_membership(membership)
                .await
                .map_err(store(at))?;
        }
        for (at, domain) in &plan.domains {
            directory.put_domain(domain).await.map_err(store(at))?;
        }
        Ok(plan.summary)
    }

    /// [`Seed::load`] with `engine`'s password policy and hasher.
    pub async fn load_for(
        self,
        engine: &Engine,
        directory: &dyn DirectoryAdmin,
    ) -> Result<Summary, SeedError> {
        let policy = engine.config().password_policy;
        self.load(directory, &policy, engine.password_hasher())
            .await
    }

    fn plan(&self, policy: &PasswordPolicy) -> Result<Plan, SeedError> {
        let mut plan = Plan {
            projects: Vec::new(),
            policies: Vec::new(),
            clients: Vec::new(),
            users: Vec::new(),
            memberships: Vec::new(),
            domains: Vec::new(),
            summary: Summary::default(),
        };

        let mut projects = HashSet::new();
        for (i, p) in self.projects.iter().enumerate() {
            let at = format!("projects[{i}]");
            check_id(&p.id, &at)?;
            unique(&mut projects, &p.id, &at)?;
            let mut project = Project::new(ProjectId::new(p.id.as_str()), &p.name);
            project.features = p.features.iter().cloned().collect();
            plan.projects.push((at, project));
        }

        let mut policies = HashSet::new();
        for (i, a) in self.access_policies.iter().enumerate() {
            let at = format!("accessPolicies[{i}]");
            check_id(&a.id, &at)?;
            unique(&mut policies, &a.id, &at)?;
            let mut resources = Vec::with_capacity(a.resources.len());
            for (j, r) in a.resources.iter().enumerate() {
                let type_ok = r.resource_type == "*"
                    || (r
                        .resource_type
                        .starts_with(|c: char| c.is_ascii_uppercase())
                        && r.resource_type.chars().all(|c| c.is_ascii_alphabetic()));
                if !type_ok {
                    return refuse(
                        &format!("{at}.resources[{j}]"),
                        SeedProblem::BadResourceType {
                            resource_type: r.resource_type.clone(),
                        },
                    );
                }
                resources.push(ResourcePolicy {
                    resource_type: r.resource_type.clone(),
                    compartment: r.compartment.clone(),
                    criteria: r.criteria.clone(),
                    readonly: r.readonly,
                    interactions: r.interactions.clone(),
                });
            }
            let policy = AccessPolicy {
                id: AccessPolicyId::new(a.id.as_str()),
                name: a.name.clone(),
                compartment: a.compartment.clone(),
                resources,
                ip_rules: a.ip_rules.clone(),
            };
            plan.policies.push((at, policy));
        }

        for ((at, project), p) in plan.projects.iter_mut().zip(&self.projects) {
            if let Some(policy) = &p.default_patient_access_policy {
                if !policies.contains(policy) {
                    return refuse(
                        at,
                        SeedProblem::UnknownAccessPolicy {
                            policy: policy.clone(),
                        },
                    );
                }
                project.default_patient_access_policy = Some(AccessPolicyId::new(policy.as_str()));
            }
        }

        let mut users: HashMap<String, (Option<String>, usize)> = HashMap::new();
        let mut emails = HashSet::new();
        for (i, u) in self.users.iter().enumerate() {
            let at = format!("users[{i}]");
            let (user, password) = user_of(u, &at, policy, &projects, &users, &mut emails)?;
            users.insert(u.id.clone(), (u.project.clone(), plan.summary.users.len()));
            plan.summary.users.push(UserSummary {
                email: user.email.clone(),
                password: password.is_some(),
                totp: user.mfa_enrolled(),
                mfa_required: user.mfa_required,
                profiles: Vec::new(),
            });
            plan.users.push((at, user, password));
        }

        let mut clients: HashMap<String, String> = HashMap::new();
        for (i, c) in self.clients.iter().enumerate() {
            let at = format!("clients[{i}]");
            check_id(&c.id, &at)?;
            if clients.contains_key(&c.id) {
                return refuse(&at, SeedProblem::DuplicateId { id: c.id.clone() });
            }
            if users.contains_key(&c.id) {
                return refuse(&at, SeedProblem::ClientIsUser { id: c.id.clone() });
            }
            if !projects.contains(&c.project) {
                return refuse(
                    &at,
                    SeedProblem::UnknownProject {
                        project: c.project.clone(),
                    },
                );
            }
            let client = client_of(c, &at)?;
            clients.insert(c.id.clone(), c.project.clone());
            plan.summary.clients.push(ClientSummary {
                id: c.id.clone(),
                auth_method: c.auth_method,
                redirect_uris: c.redirect_uris.clone(),
                default_scope: c.default_scope.clone(),
            });
            plan.clients.push((at, client));
        }

        let mut memberships = HashSet::new();
        for (i, m) in self.memberships.iter().enumerate() {
            let at = format!("memberships[{i}]");
            check_id(&m.id, &at)?;
            unique(&mut memberships, &m.id, &at)?;
            if !projects.contains(&m.project) {
                return refuse(
                    &at,
                    SeedProblem::UnknownProject {
                        project: m.project.clone(),
                    },
                );
            }
            match (users.get(&m.user), clients.get(&m.user)) {
                (Some((user_project, index)), _) => {
                    if let Some(own) = user_project
                        && *own != m.project
                    {
                        return refuse(
                            &at,
                            SeedProblem::UserOfOtherProject {
                                user: m.user.clone(),
                                project: own.clone(),
                            },
                        );
                    }
                    if let Some(user) = plan.summary.users.get_mut(*index) {
                        user.profiles.push(m.profile.as_str().to_owned());
                    }
                }
                (None, Some(client_project)) => {
                    let expected = format!("ClientApplication/{}", m.user);
                    if m.profile.as_str() != expected || *client_project != m.project {
                        return refuse(&at, SeedProblem::ClientMembership { expected });
                    }
                }
                (None, None) => {
                    return refuse(
                        &at,
                        SeedProblem::UnknownMember {
                            user: m.user.clone(),
                        },
                    );
                }
            }
            if let Some(policy) = &m.access_policy
                && !policies.contains(policy)
            {
                return refuse(
                    &at,
                    SeedProblem::UnknownAccessPolicy {
                        policy: policy.clone(),
                    },
                );
            }
            let mut membership = ProjectMembership::new(
                MembershipId::new(m.id.as_str()),
                ProjectId::new(m.project.as_str()),
                UserId::new(m.user.as_str()),
                m.profile.clone(),
            );
            membership.profile_display = m.profile_display.clone();
            membership.active = m.active.unwrap_or(true);
            membership.admin = m.admin;
            membership.access_policy = m.access_policy.as_deref().map(AccessPolicyId::new);
            membership.external_id = m.external_id.clone();
            membership.external_issuer = m.external_issuer.clone();
            plan.memberships.push((at, membership));
        }

        let mut domains = HashSet::new();
        for (i, d) in self.domains.iter().enumerate() {
            let at = format!("domains[{i}]");
            let domain = d.domain.trim().to_ascii_lowercase();
            if domain.is_empty() || domain.contains('@') || domain.contains('/') {
                return refuse(
                    &at,
                    SeedProblem::BadDomain {
                        domain: d.domain.clone(),
                    },
                );
            }
            if !domains.insert(domain.clone()) {
                return refuse(&at, SeedProblem::DuplicateDomain { domain });
            }
            plan.domains.push((
                at,
                DomainConfiguration {
                    domain,
                    identity_provider: Some(d.identity_provider.to_provider()),
                },
            ));
        }
        Ok(plan)
    }
}

/// A user entry as a record (without its password hash yet) and its checked password.
fn user_of(
    u: &SeedUser,
    at: &str,
    policy: &PasswordPolicy,
    projects: &HashSet<String>,
    users: &HashMap<String, (Option<String>, usize)>,
    emails: &mut HashSet<(String, Option<String>)>,
) -> Result<(User, Option<Password>), SeedError> {
    check_id(&u.id, at)?;
    if users.contains_key(&u.id) {
        return refuse(at, SeedProblem::DuplicateId { id: u.id.clone() });
    }
    let email = normalize_email(&u.email);
    if !email.contains('@') || email.len() > 320 {
        return refuse(
            at,
            SeedProblem::BadEmail {
                email: u.email.clone(),
            },
        );
    }
    if let Some(project) = &u.project
        && !projects.contains(project)
    {
        return refuse(
            at,
            SeedProblem::UnknownProject {
                project: project.clone(),
            },
        );
    }
    if !emails.insert((email.clone(), u.project.clone())) {
        return refuse(
            at,
            SeedProblem::EmailTaken {
                email,
                project: u.project.clone(),
            },
        );
    }
    let mut user = User::new(UserId::new(u.id.as_str()), &email);
    user.first_name = u.first_name.clone().unwrap_or_default();
    user.last_name = u.last_name.clone().unwrap_or_default();
    user.email_verified = u.email_verified.unwrap_or(true);
    user.project = u.project.as_deref().map(ProjectId::new);
    user.mfa_required = u.mfa_required;
    let password = match &u.password {
        Some(raw) => Some(
            policy
                .for_new_password(raw)
                .map_err(|e| SeedError::new(at, SeedProblem::Password(LoginError::from(e))))?,
        ),
        None => None,
    };
    if let Some(text) = &u.totp_secret_base32 {
        let Some(bytes) = base32_decode(text) else {
            return refuse(at, SeedProblem::TotpNotBase32);
        };
        let min = crate::credential::totp::MIN_SECRET_LEN;
        if bytes.len() < min {
            return refuse(
                at,
                SeedProblem::TotpTooShort {
                    bytes: bytes.len(),
                    min,
                },
            );
        }
        user.totp = TotpState::Enrolled {
            secret: TotpSecret::from_bytes(bytes),
        };
    }
    Ok((user, password))
}

/// A client entry as a record, after its scopes, redirect URIs and credentials check out.
fn client_of(c: &SeedClient, at: &str) -> Result<ClientApplication, SeedError> {
    let allowed = ScopeSet::parse(&c.allowed_scopes).map_err(|error| {
        SeedError::new(
            at,
            SeedProblem::BadScope {
                field: "allowedScopes",
                error,
            },
        )
    })?;
    if let Some(default) = &c.default_scope {
        let default = ScopeSet::parse(default).map_err(|error| {
            SeedError::new(
                at,
                SeedProblem::BadScope {
                    field: "defaultScope",
                    error,
                },
            )
        })?;
        if !allowed.covers(&default) {
            return refuse(at, SeedProblem::DefaultScopeTooWide);
        }
    }
    for uri in &c.redirect_uris {
        match Url::parse(uri) {
            Ok(url) if url.fragment().is_none() => {}
            Ok(_) => return refuse(at, SeedProblem::RedirectFragment { uri: uri.clone() }),
            Err(error) => {
                return refuse(
                    at,
                    SeedProblem::BadRedirect {
                        uri: uri.clone(),
                        error,
                    },
                );
            }
        }
    }
    let pkce = c.pkce.unwrap_or_default();
    match c.auth_method {
        ClientAuthMethod::None => {
            if c.secret.is_some() || c.jwks.is_some() || c.jwks_uri.is_some() {
                return refuse(at, SeedProblem::PublicClientCredentials);
            }
            if pkce == PkcePolicy::Optional {
                return refuse(at, SeedProblem::PublicClientWithoutPkce);
            }
        }
        ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => {
            match &c.secret {
                Some(secret) if secret.chars().count() >= 16 => {}
                Some(_) => return refuse(at, SeedProblem::ShortSecret),
                None => return refuse(at, SeedProblem::MissingSecret(c.auth_method)),
            }
        }
        ClientAuthMethod::PrivateKeyJwt => {
            if c.jwks.is_none() && c.jwks_uri.is_none() {
                return refuse(at, SeedProblem::NoKeys);
            }
            if c.jwks_uri
                .as_ref()
                .is_some_and(|uri| uri.scheme() != "https")
            {
                return refuse(at, SeedProblem::JwksUriNotHttps);
            }
        }
    }
    let mut client = ClientApplication::new(
        ClientId::new(c.id.as_str()),
        ProjectId::new(c.project.as_str()),
    );
    client.name = c.name.clone().unwrap_or_default();
    client.allowed_scopes = c.allowed_scopes.clone();
    client.default_scope = c.default_scope.clone();
    client.redirect_uris = c.redirect_uris.clone();
    client.pkce = pkce;
    client.auth_method = c.auth_method;
    client.secret = c.secret.as_deref().map(ClientSecretHash::of);
    client.jwks = c.jwks.clone();
    client.jwks_uri = c.jwks_uri.clone();
    client.identity_provider = c.identity_provider.as_ref().map(|p| p.to_provider());
    client.first_party = c.first_party;
    Ok(client)
}

/// A FHIR id: 1–64 characters of `[A-Za-z0-9.-]` (ids end up in references).
fn check_id(id: &str, at: &str) -> Result<(), SeedError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        refuse(at, SeedProblem::BadId { id: id.to_owned() })
    }
}

fn unique(seen: &mut HashSet<String>, id: &str, at: &str) -> Result<(), SeedError> {
    if seen.insert(id.to_owned()) {
        Ok(())
    } else {
        refuse(at, SeedProblem::DuplicateId { id: id.to_owned() })
    }
}

/// Decodes RFC 4648 base32 (case-insensitive; spaces and `=` padding ignored).
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let c = c.to_ascii_uppercase();
        let value = match c {
            'A'..='Z' => u32::from(c) - u32::from('A'),
            '2'..='7' => u32::from(c) - u32::from('2') + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}
