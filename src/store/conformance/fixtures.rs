//! The records the checks store: a fixed epoch, secret hashes by name, and logins at each
//! stage (waiting for a profile, holding a code, granted with a refresh family).

use time::OffsetDateTime;

use crate::model::*;
use crate::secret::SecretHash;
use crate::store::StoreError;

/// The fixtures' epoch: 2026-11-28T10:00:00Z.
pub const START: i64 = 1_795_860_000;

/// `START + seconds`.
pub fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(START + seconds).unwrap()
}

/// The hash of a presented secret `name`.
pub fn h(name: &str) -> SecretHash {
    SecretHash::of_presented(name)
}

/// A user `id` with `email`, project-scoped to `project` when given.
pub fn user(id: &str, email: &str, project: Option<&str>) -> User {
    let mut u = User::new(UserId::new(id), email);
    u.project = project.map(ProjectId::new);
    u
}

/// A login waiting for a membership choice, for user `u1`, alive for an hour.
pub fn login(id: &str, handle: &str) -> LoginRecord {
    let mut r = LoginRecord::new(
        LoginId::new(id),
        h(handle),
        LoginParams::default(),
        AuthMethod::Password,
        at(0),
        at(3600),
    );
    r.user = Some(UserId::new("u1"));
    r.auth_time = Some(at(0));
    r.amr = vec![Amr::Pwd];
    r
}

/// A login holding an unredeemed code (valid until `at(60)`) and a session.
pub fn authorized(id: &str, handle: &str, code: &str, client: Option<&str>) -> LoginRecord {
    let mut r = login(id, handle);
    r.version = 4;
    r.stage = StageTag::Authorized;
    r.params.client = client.map(ClientId::new);
    r.params.scope = "openid offline_access".to_owned();
    r.membership = Some(MembershipId::new("m1"));
    r.project = Some(ProjectId::new("p1"));
    r.profile = Some(Reference::parse("Practitioner/123").unwrap());
    r.granted_scope = Some("openid offline_access".to_owned());
    r.code = Some(CodeState {
        hash: h(code),
        expires_at: at(60),
        redeemed: false,
    });
    r.session = Some(SessionState {
        hash: h(&format!("session-of-{id}")),
        expires_at: at(3600),
    });
    r
}

/// A granted login with a refresh family (current token `token`, family ends at `at(1000)`).
pub fn granted(id: &str, handle: &str, token: &str, client: Option<&str>) -> LoginRecord {
    let mut r = authorized(id, handle, &format!("code-of-{id}"), client);
    r.version = 7;
    r.stage = StageTag::Granted;
    if let Some(code) = r.code.as_mut() {
        code.redeemed = true;
    }
    r.refresh = Some(RefreshState {
        current: h(token),
        expires_at: at(1000),
    });
    r
}

/// Whether `result` is a [`StoreError::Conflict`].
pub(super) fn is_conflict<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}
