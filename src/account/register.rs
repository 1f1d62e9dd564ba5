//! Registration: a new account (`/auth/newuser`), then its first membership — a project of
//! its own (`/auth/newproject`) or a patient in a project open to registration
//! (`/auth/newpatient`).

use std::net::IpAddr;
use std::sync::Arc;

use super::{AccountError, Accounts, RegistrationRefusal, valid_email};
use crate::audit::AuditKind;
use crate::login::{Consent, Credentials, Domain, Login, Method, Passed, Profile};
use crate::model::{
    ClientApplication, ClientAuthMethod, ClientId, MembershipId, Project, ProjectId,
    ProjectMembership, Reference, User, UserId, generate_client_secret,
};
use crate::store::{DirectoryAdmin, StoreError};

/// What a person registering gives.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct NewUser {
    /// Given name (1 to 128 characters).
    pub first_name: String,
    /// Family name (1 to 128 characters).
    pub last_name: String,
    /// Sign-in email.
    pub email: String,
    /// The password (policy and breach check apply).
    pub password: String,
    /// The human-check token from the sign-up form, when a check is configured.
    pub human_token: Option<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl NewUser {
    /// A registration for `email` with `password`.
    pub fn new(first_name: &str, last_name: &str, email: &str, password: &str) -> Self {
        Self {
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            email: email.to_owned(),
            password: password.to_owned(),
            human_token: None,
        }
    }
}

fn name_ok(name: &str) -> bool {
    (1..=128).contains(&name.trim().chars().count())
}

impl Accounts<'_> {
    /// The human check, when configured: a token must come and pass.
    pub async fn check_human(
        &self,
        token: Option<&str>,
        remote: Option<IpAddr>,
    ) -> Result<(), AccountError> {
        let Some(check) = self.engine.human_check() else {
            return Ok(());
        };
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(RegistrationRefusal::HumanTokenMissing)?;
        if check.verify(token, remote).await? {
            Ok(())
        } else {
            Err(RegistrationRefusal::HumanCheckFailed.into())
        }
    }

    /// Registers a new account through `login` (started from the sign-up request, so its
    /// client, project, scope and PKCE challenge are checked like any sign-in) and signs it
    /// in: the account is project-scoped when the login names a project (which must be open
    /// to registration), server-scoped otherwise. Cheap checks run first; the password is
    /// hashed last. The login continues in the Profile stage with no membership yet (or at
    /// its second factor, never for a new account).
    pub async fn register(
        &self,
        login: Login<Domain>,
        details: NewUser,
    ) -> Result<Passed, AccountError> {
        let engine = self.engine;
        let remote = login.params().remote_address;
        if !engine.config().accounts.registration_enabled {
            return Err(RegistrationRefusal::Disabled.into());
        }
        if !name_ok(&details.first_name) {
            return Err(RegistrationRefusal::FirstName.into());
        }
        if !name_ok(&details.last_name) {
            return Err(RegistrationRefusal::LastName.into());
        }
        let email = valid_email(&details.email).ok_or(AccountError::InvalidEmail)?;
        self.check_human(details.human_token.as_deref(), remote)
            .await?;
        let project = login.params().project.clone();
        if let Some(id) = &project {
            let project = engine
                .directory()
                .project(id)
                .await?
                .ok_or(RegistrationRefusal::UnknownProject)?;
            if !project.open_registration() {
                return Err(RegistrationRefusal::ProjectClosed.into());
            }
        }
        let login: Login<Credentials> = match login.method(&email).await? {
            Method::Password(login) => login,
            Method::External { .. } => return Err(RegistrationRefusal::ExternalDomain.into()),
        };
        let directory = engine.directory();
        if directory
            .user_by_email(&email, project.as_ref())
            .await?
            .is_some()
        {
            return Err(RegistrationRefusal::EmailTaken.into());
        }
        let hash = self.new_password_hash(&details.password).await?;
        let mut user = User::new(UserId::generate(engine.random())?, &email);
        user.first_name = details.first_name.trim().to_owned();
        user.last_name = details.last_name.trim().to_owned();
        user.project = project;
        user.password_hash = Some(hash);
        match directory.create_user(&user).await {
            Ok(()) => {}
            // Another registration of the same email won the race.
            Err(StoreError::Conflict(_)) => return Err(RegistrationRefusal::EmailTaken.into()),
            Err(e) => return Err(e.into()),
        }
        self.audit(AuditKind::Registered, &user.id, remote);
        Ok(login.registered(&user).await?)
    }

    pub(super) fn admin(&self) -> Result<Arc<dyn DirectoryAdmin>, AccountError> {
        self.engine
            .directory_admin()
            .ok_or_else(|| RegistrationRefusal::NoDirectoryAdmin.into())
    }

    /// The user of a login waiting in the Profile stage that has no membership yet.
    async fn newcomer(&self, login: &Login<Profile>) -> Result<User, AccountError> {
        let user_id = login
            .record()
            .user
            .clone()
            .ok_or(crate::error::RequestError::UnknownLogin)
            .map_err(crate::error::LoginError::from)?;
        if login.record().membership.is_some() || !login.memberships().await?.is_empty() {
            return Err(RegistrationRefusal::AlreadyMember.into());
        }
        self.engine
            .directory()
            .user(&user_id)
            .await?
            .ok_or(AccountError::UserNotFound)
    }

    /// Creates a project named `name` owned by the login's user — with a default client and
    /// an admin membership acting as a new Practitioner — and chooses that membership: the
    /// login moves on to Consent like any sign-in. Refused for a login that already has a
    /// membership.
    pub async fn create_project(
        &self,
        login: Login<Profile>,
        name: &str,
    ) -> Result<Login<Consent>, AccountError> {
        let name = name.trim();
        if !(4..=72).contains(&name.chars().count()) {
            return Err(RegistrationRefusal::ProjectName.into());
        }
        let admin = self.admin()?;
        let user = self.newcomer(&login).await?;
        let engine = self.engine;
        let random = engine.random();
        let mut project = Project::new(ProjectId::generate(random)?, name);
        project.owner = Some(user.id.clone());
        admin.put_project(&project).await?;
        let mut client = ClientApplication::new(ClientId::generate(random)?, project.id.clone());
        client.name = format!("{name} Default Client");
        client.auth_method = ClientAuthMethod::ClientSecretBasic;
        // The secret is shown nowhere: an administrator rotates it before use.
        let (_, secret_hash) = generate_client_secret(random)?;
        client.secret = Some(secret_hash);
        admin.put_client(&client).await?;
        let profile = Reference::parse(&format!(
            "Practitioner/{}",
            crate::model::random_uuid(random)?
        ))
        .map_err(|_| AccountError::UserNotFound)?;
        let mut membership = ProjectMembership::new(
            MembershipId::generate(random)?,
            project.id.clone(),
            user.id.clone(),
            profile,
        );
        membership.admin = true;
        membership.profile_display = Some(display_name(&user));
        admin.put_membership(&membership).await?;
        self.audit(
            AuditKind::ProjectCreated {
                project: project.id.clone(),
            },
            &user.id,
            login.record().params.remote_address,
        );
        Ok(login.choose(&membership.id).await?)
    }

    /// Makes the login's (project-scoped) user a patient of `project`, which must be the
    /// project the account is scoped to and open to registration: a new Patient profile
    /// and a membership under the project's default patient access policy, then chosen
    /// like any membership.
    pub async fn create_patient(
        &self,
        login: Login<Profile>,
        project: &ProjectId,
    ) -> Result<Login<Consent>, AccountError> {
        let admin = self.admin()?;
        let user = self.newcomer(&login).await?;
        if user.project.as_ref() != Some(project) {
            return Err(RegistrationRefusal::NotScopedToProject.into());
        }
        let engine = self.engine;
        let stored = engine
            .directory()
            .project(project)
            .await?
            .ok_or(RegistrationRefusal::UnknownProject)?;
        let Some(policy) = stored.default_patient_access_policy else {
            return Err(RegistrationRefusal::ProjectClosed.into());
        };
        let random = engine.random();
        let profile = Reference::parse(&format!("Patient/{}", crate::model::random_uuid(random)?))
            .map_err(|_| AccountError::UserNotFound)?;
        let mut membership = ProjectMembership::new(
            MembershipId::generate(random)?,
            project.clone(),
            user.id.clone(),
            profile,
        );
        membership.access_policy = Some(policy);
        membership.profile_display = Some(display_name(&user));
        admin.put_membership(&membership).await?;
        self.audit(
            AuditKind::PatientRegistered {
                project: project.clone(),
            },
            &user.id,
            login.record().params.remote_address,
        );
        Ok(login.choose(&membership.id).await?)
    }
}

fn display_name(user: &User) -> String {
    let name = format!("{} {}", user.first_name, user.last_name);
    let name = name.trim();
    if name.is_empty() {
        user.email.clone()
    } else {
        name.to_owned()
    }
}
