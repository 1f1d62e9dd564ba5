//! The identity model: users, projects, memberships, clients, domain configurations, access
//! policies, and the stored form of a login.

mod access_policy;
mod client;
mod ids;
mod login;
mod project;
mod security_request;
mod user;

pub use access_policy::{
    AccessPolicy, Interaction, InvalidIpRule, IpAccessRule, IpAction, IpMatch, IpNotAllowed,
    ResourcePolicy,
};
pub use client::{
    ClientApplication, ClientAuthMethod, ClientSecretHash, ClientStatus, DomainConfiguration,
    IdentityProvider, IdpTokenAuth, PkcePolicy, RefreshPolicy, generate_client_secret,
};
pub(crate) use ids::random_uuid;
pub use ids::{
    AccessPolicyId, ClientId, InvalidReference, LaunchId, LoginId, MembershipId, ProjectId,
    Reference, RequestId, UserId,
};
pub use login::*;
pub use project::{FEATURE_GOOGLE_AUTH_REQUIRED, Project, ProjectMembership, SmartLaunch};
pub use security_request::{RequestKind, SecurityRequest};
pub use user::{PasswordHash, TotpSecret, TotpState, User, normalize_email};
