//! Invitations: a project admin adds a person by email — the account is created when it does
//! not exist, gets a membership, and a mailed link sets its password.

use super::{AccountError, Accounts, RegistrationRefusal, valid_email};
use crate::audit::AuditKind;
use crate::mail::template;
use crate::model::{
    AccessPolicyId, MembershipId, ProjectId, ProjectMembership, Reference, RequestKind, User,
    UserId,
};
use crate::secret::BearerSecret;

/// Who is invited, and as what (Medplum's invite request).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Invitation {
    /// The profile's resource type: `Practitioner` (default), `Patient` or `RelatedPerson`.
    pub resource_type: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// The invitee's email.
    pub email: String,
    /// Make the membership a project admin.
    pub admin: bool,
    /// The membership's access policy.
    pub access_policy: Option<AccessPolicyId>,
    /// Create a project-scoped account (Medplum's `scope: "project"`) instead of a
    /// server-scoped one.
    pub project_scoped: bool,
    /// Mail the invitation (default `true`).
    pub send_email: bool,
}

impl Invitation {
    /// A Practitioner invitation for `email`, mailed, server-scoped, not admin.
    pub fn new(email: &str) -> Self {
        Self {
            resource_type: "Practitioner".to_owned(),
            first_name: String::new(),
            last_name: String::new(),
            email: email.to_owned(),
            admin: false,
            access_policy: None,
            project_scoped: false,
            send_email: true,
        }
    }
}

/// What an invitation made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Invited {
    /// The new membership.
    pub membership: ProjectMembership,
    /// Whether the account was created by this invitation.
    pub created_user: bool,
    /// The link that sets the password, for an account without one (it was mailed when
    /// asked). Contains the secret: never log it.
    pub link: Option<BearerSecret>,
}

impl Accounts<'_> {
    /// Invites `invitation.email` into `project` on behalf of the membership `inviter`, which
    /// must be an active admin of that project. Refuses an invitee already in the project.
    /// An account without a password gets an invitation link (seven days, newest only) that
    /// sets it; an existing account with a password gets a notice instead.
    pub async fn invite(
        &self,
        inviter: &MembershipId,
        project: &ProjectId,
        invitation: Invitation,
    ) -> Result<Invited, AccountError> {
        let engine = self.engine;
        let directory = engine.directory();
        let admin = self.admin()?;
        let inviting = directory.membership(inviter).await?;
        if !inviting.is_some_and(|m| m.active && m.admin && &m.project == project) {
            return Err(RegistrationRefusal::NotProjectAdmin.into());
        }
        let Some(stored_project) = directory.project(project).await? else {
            return Err(RegistrationRefusal::UnknownProject.into());
        };
        let email = valid_email(&invitation.email).ok_or(AccountError::InvalidEmail)?;
        if !matches!(
            invitation.resource_type.as_str(),
            "Practitioner" | "Patient" | "RelatedPerson"
        ) {
            return Err(RegistrationRefusal::ProfileType.into());
        }
        if let Some(policy) = &invitation.access_policy
            && directory.access_policy(policy).await?.is_none()
        {
            return Err(RegistrationRefusal::UnknownAccessPolicy.into());
        }
        let scope = invitation.project_scoped.then_some(project);
        let (user, created_user) = match directory.user_by_email(&email, scope).await? {
            Some(user) => (user, false),
            None => {
                let mut user = User::new(UserId::generate(engine.random())?, &email);
                user.first_name = invitation.first_name.trim().to_owned();
                user.last_name = invitation.last_name.trim().to_owned();
                user.project = scope.cloned();
                directory.create_user(&user).await?;
                (user, true)
            }
        };
        if directory
            .memberships_of(&user.id)
            .await?
            .iter()
            .any(|m| &m.project == project)
        {
            return Err(RegistrationRefusal::AlreadyInProject.into());
        }
        let random = engine.random();
        let profile = Reference::parse(&format!(
            "{}/{}",
            invitation.resource_type,
            crate::model::random_uuid(random)?
        ))
        .map_err(|_| RegistrationRefusal::ProfileType)?;
        let mut membership = ProjectMembership::new(
            MembershipId::generate(random)?,
            project.clone(),
            user.id.clone(),
            profile,
        );
        membership.admin = invitation.admin;
        membership.access_policy = invitation.access_policy;
        let display = format!(
            "{} {}",
            invitation.first_name.trim(),
            invitation.last_name.trim()
        );
        membership.profile_display = Some(if display.trim().is_empty() {
            email.clone()
        } else {
            display.trim().to_owned()
        });
        admin.put_membership(&membership).await?;
        self.audit(
            AuditKind::InvitationSent {
                project: project.clone(),
            },
            &user.id,
            None,
        );

        let brand = crate::mail::template::Brand::new(&stored_project.name);
        let link = if user.password_hash.is_none() {
            let issued = self.issue(RequestKind::Invite, &user, None, None).await?;
            let link = self.link("setpassword", &issued);
            if invitation.send_email {
                let days = RequestKind::Invite.lifetime().whole_days();
                let mail = template::invitation(&user.email, &brand, link.expose(), days);
                engine.mailer().send(&mail).await?;
            }
            Some(link)
        } else {
            if invitation.send_email {
                let sign_in = engine.sign_in_url().to_string();
                let mail = template::added_to_project(&user.email, &brand, &sign_in);
                engine.mailer().send(&mail).await?;
            }
            None
        };
        Ok(Invited {
            membership,
            created_user,
            link,
        })
    }
}
