//! Store conformance: the behaviour of `Directory`, `LoginStore` and `OnceStore`, written once
//! and run against every store: `MemoryStore` always, `PgStore` with the `postgres` feature.
//!
//! Each behaviour test gets two handles on the same data (`Stores::a` and `Stores::b`): two
//! clones of one `MemoryStore`, or two `PgStore`s with separate pools on one database
//! schema, so every atomic operation is also checked across instances.
//!
//! PostgreSQL is found through `FHIRGATE_TEST_DATABASE_URL`. When it is unset or unreachable
//! the PostgreSQL tests print `SKIPPED: …` and pass, unless `FHIRGATE_REQUIRE_POSTGRES=1`,
//! when they fail. Each PostgreSQL test works in a schema of its own, dropped at its end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use fhirgate::model::*;
use fhirgate::secret::SecretHash;
use fhirgate::store::{
    Attempt, CodeRedemption, Directory, LoginStore, MemoryStore, OnceKey, OnceStore,
    RefreshRotation, StoreError, take_attempts,
};
use time::{Duration, OffsetDateTime};

/// Every store trait at once.
trait Store: Directory + LoginStore + OnceStore {}
impl<T: Directory + LoginStore + OnceStore> Store for T {}

/// Two handles on the same data.
struct Stores {
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
}

impl Stores {
    /// Handle `i` of a race: alternates between the two instances.
    fn nth(&self, i: usize) -> Arc<dyn Store> {
        if i.is_multiple_of(2) {
            self.a.clone()
        } else {
            self.b.clone()
        }
    }
}

fn memory_stores() -> Stores {
    let store = MemoryStore::new();
    Stores {
        a: Arc::new(store.clone()),
        b: Arc::new(store),
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&super::memory_stores()).await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = super::pg::TestDb::new().await else {
                        return;
                    };
                    super::$name(&super::pg::stores(&db).await).await;
                    db.finish().await;
                }
            )*
        }
    };
}

conformance!(
    users_are_unique_per_scope,
    update_user_is_compare_and_swap,
    memberships_are_listed_per_user_in_id_order,
    memberships_are_found_by_external_id_within_a_project,
    directory_records_round_trip,
    domains_are_keyed_by_lower_case,
    logins_are_created_once_and_found_by_their_hashes,
    update_login_is_compare_and_swap,
    update_login_can_rotate_the_handle,
    codes_are_redeemed_once,
    code_expiry_stage_and_revocation_refuse,
    refresh_tokens_rotate_once_and_reuse_is_detected,
    refresh_client_condition_and_revoked_families,
    revocation_and_session_lists,
    expired_logins_are_purged,
    claims_are_single_use_until_they_expire,
    watermarks_only_rise,
    attempts_are_capped_per_window,
    expired_once_entries_are_purged,
    lookups_by_keys_with_nul_find_nothing,
    race_one_of_64_redeems_a_code,
    race_one_of_64_rotates_a_refresh_token,
    race_one_of_64_claims_a_key,
    race_one_of_64_raises_a_watermark,
    race_64_attempts_under_a_cap_of_10,
    race_one_of_64_compare_and_swaps_wins,
    race_one_of_64_creates_a_user_per_email,
    race_redemption_against_revocation,
);

// ---- fixtures ------------------------------------------------------------------------------

/// 2026-11-28T10:00:00Z
const START: i64 = 1_795_860_000;

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(START + seconds).unwrap()
}

fn h(name: &str) -> SecretHash {
    SecretHash::of_presented(name)
}

fn user(id: &str, email: &str, project: Option<&str>) -> User {
    let mut u = User::new(UserId::new(id), email);
    u.project = project.map(ProjectId::new);
    u
}

/// A login waiting for a membership choice, for user `u1`, alive for an hour.
fn login(id: &str, handle: &str) -> LoginRecord {
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
fn authorized(id: &str, handle: &str, code: &str, client: Option<&str>) -> LoginRecord {
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
fn granted(id: &str, handle: &str, token: &str, client: Option<&str>) -> LoginRecord {
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

fn is_conflict<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

// ---- Directory -----------------------------------------------------------------------------

async fn users_are_unique_per_scope(s: &Stores) {
    let email = "alice@example.org";
    let alice = user("u1", email, None);
    s.a.create_user(&alice).await.unwrap();
    assert_eq!(s.b.user(&alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(
        s.b.user_by_email(email, None).await.unwrap(),
        Some(alice.clone())
    );
    // Server-scoped users are not found in a project's scope.
    assert_eq!(
        s.a.user_by_email(email, Some(&ProjectId::new("p1")))
            .await
            .unwrap(),
        None
    );

    // A second server-scoped user with the same email: refused, nothing stored.
    let second = s.b.create_user(&user("u2", email, None)).await;
    assert!(is_conflict(&second), "{second:?}");
    assert_eq!(s.a.user(&UserId::new("u2")).await.unwrap(), None);
    // The same id again, even with another email.
    let same_id =
        s.a.create_user(&user("u1", "other@example.org", None))
            .await;
    assert!(is_conflict(&same_id), "{same_id:?}");
    assert_eq!(
        s.a.user_by_email("other@example.org", None).await.unwrap(),
        None
    );

    // The same email once per project is fine.
    let in_p1 = user("u3", email, Some("p1"));
    let in_p2 = user("u4", email, Some("p2"));
    s.a.create_user(&in_p1).await.unwrap();
    s.b.create_user(&in_p2).await.unwrap();
    assert_eq!(
        s.a.user_by_email(email, Some(&ProjectId::new("p1")))
            .await
            .unwrap(),
        Some(in_p1)
    );
    assert_eq!(
        s.b.user_by_email(email, Some(&ProjectId::new("p2")))
            .await
            .unwrap(),
        Some(in_p2)
    );
    assert_eq!(s.a.user_by_email(email, None).await.unwrap(), Some(alice));
    // ... but not twice in one project.
    let twice = s.a.create_user(&user("u5", email, Some("p1"))).await;
    assert!(is_conflict(&twice), "{twice:?}");
    assert_eq!(s.b.user(&UserId::new("u5")).await.unwrap(), None);

    assert_eq!(
        s.a.user_by_email("nobody@example.org", None).await.unwrap(),
        None
    );
    assert_eq!(s.a.user(&UserId::new("nobody")).await.unwrap(), None);
}

async fn update_user_is_compare_and_swap(s: &Stores) {
    let mut alice = user("u1", "alice@example.org", None);
    alice.version = 3;
    alice.password_hash = Some(PasswordHash::new(
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    ));
    alice.totp = TotpState::Enrolled {
        secret: TotpSecret::from_bytes(b"12345678901234567890".to_vec()),
    };
    s.a.create_user(&alice).await.unwrap();

    // The stored version becomes expected + 1, whatever the record says.
    let mut named = alice.clone();
    named.first_name = "Alice".to_owned();
    named.version = 99;
    assert!(s.a.update_user(&named, 3).await.unwrap());
    let stored = s.b.user(&alice.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 4);
    assert_eq!(
        stored,
        User {
            version: 4,
            ..named.clone()
        }
    );

    // A stale version changes nothing.
    let mut stale = named.clone();
    stale.last_name = "Stale".to_owned();
    assert!(!s.b.update_user(&stale, 3).await.unwrap());
    assert_eq!(s.a.user(&alice.id).await.unwrap(), Some(stored.clone()));
    // An unknown user is not created.
    let ghost = user("ghost", "ghost@example.org", None);
    assert!(!s.a.update_user(&ghost, 0).await.unwrap());
    assert_eq!(s.a.user(&ghost.id).await.unwrap(), None);
    assert_eq!(
        s.a.user_by_email("ghost@example.org", None).await.unwrap(),
        None
    );

    // Changing the email moves the lookup.
    let mut moved = stored.clone();
    moved.email = "alice@new.example.org".to_owned();
    assert!(s.a.update_user(&moved, 4).await.unwrap());
    assert_eq!(
        s.b.user_by_email("alice@example.org", None).await.unwrap(),
        None
    );
    let moved =
        s.b.user_by_email("alice@new.example.org", None)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(moved.version, 5);

    // Changing it to a taken email is a conflict and changes nothing.
    let bob = user("u2", "bob@example.org", None);
    s.a.create_user(&bob).await.unwrap();
    let mut clash = moved.clone();
    clash.email = "bob@example.org".to_owned();
    let result = s.b.update_user(&clash, 5).await;
    assert!(is_conflict(&result), "{result:?}");
    assert_eq!(s.a.user(&moved.id).await.unwrap(), Some(moved.clone()));
    assert_eq!(
        s.a.user_by_email("bob@example.org", None).await.unwrap(),
        Some(bob.clone())
    );

    // The same email in another scope is free.
    let mut scoped = moved.clone();
    scoped.email = "bob@example.org".to_owned();
    scoped.project = Some(ProjectId::new("p1"));
    assert!(s.a.update_user(&scoped, 5).await.unwrap());
    assert_eq!(
        s.b.user_by_email("bob@example.org", Some(&ProjectId::new("p1")))
            .await
            .unwrap()
            .map(|u| u.id),
        Some(moved.id.clone())
    );
    assert_eq!(
        s.b.user_by_email("bob@example.org", None).await.unwrap(),
        Some(bob)
    );
    // The server-scoped email it left is free again.
    s.a.create_user(&user("u3", "alice@new.example.org", None))
        .await
        .unwrap();
}

fn membership(id: &str, project: &str, user: &str) -> ProjectMembership {
    ProjectMembership::new(
        MembershipId::new(id),
        ProjectId::new(project),
        UserId::new(user),
        Reference::parse("Practitioner/123").unwrap(),
    )
}

async fn memberships_are_listed_per_user_in_id_order(s: &Stores) {
    // Byte order: "B1" < "b" < "m2" (a locale collation would put "b" first).
    let b = membership("b", "p2", "u1");
    let upper = membership("B1", "p1", "u1");
    let mut m2 = membership("m2", "p1", "u1");
    m2.access_policy = Some(AccessPolicyId::new("ap1"));
    m2.external_id = Some("ext-7".to_owned());
    let other = membership("m3", "p1", "u2");
    for m in [&m2, &b, &other, &upper] {
        s.a.put_membership(m).await.unwrap();
    }
    assert_eq!(
        s.b.memberships_of(&UserId::new("u1")).await.unwrap(),
        vec![upper.clone(), b.clone(), m2.clone()]
    );
    assert_eq!(
        s.b.memberships_of(&UserId::new("u2")).await.unwrap(),
        vec![other.clone()]
    );
    assert_eq!(
        s.a.memberships_of(&UserId::new("nobody")).await.unwrap(),
        vec![]
    );
    assert_eq!(s.b.membership(&m2.id).await.unwrap(), Some(m2.clone()));
    assert_eq!(
        s.b.membership(&MembershipId::new("nope")).await.unwrap(),
        None
    );

    // Replacing a membership with another user moves it between the lists.
    let mut moved = m2.clone();
    moved.user = UserId::new("u2");
    moved.admin = true;
    moved.active = false;
    s.b.put_membership(&moved).await.unwrap();
    assert_eq!(
        s.a.memberships_of(&UserId::new("u1")).await.unwrap(),
        vec![upper, b]
    );
    assert_eq!(
        s.a.memberships_of(&UserId::new("u2")).await.unwrap(),
        vec![moved.clone(), other]
    );
    assert_eq!(s.a.membership(&m2.id).await.unwrap(), Some(moved));
}

async fn memberships_are_found_by_external_id_within_a_project(s: &Stores) {
    let mut a = membership("m-a", "p1", "u1");
    a.external_id = Some("sub-123".into());
    let mut b = membership("m-b", "p2", "u2");
    b.external_id = Some("sub-123".into());
    let mut c = membership("m-c", "p1", "u3");
    c.external_id = Some("sub-456".into());
    for m in [&a, &b, &c, &membership("m-d", "p1", "u4")] {
        s.a.put_membership(m).await.unwrap();
    }
    let found =
        s.b.memberships_by_external_id(&ProjectId::new("p1"), "sub-123")
            .await
            .unwrap();
    assert_eq!(found, vec![a.clone()]);
    assert!(
        s.b.memberships_by_external_id(&ProjectId::new("p1"), "SUB-123")
            .await
            .unwrap()
            .is_empty(),
        "external ids are case-sensitive"
    );
    assert!(
        s.b.memberships_by_external_id(&ProjectId::new("p3"), "sub-123")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn directory_records_round_trip(s: &Stores) {
    let mut project = Project::new(ProjectId::new("p1"), "Clinic");
    project
        .features
        .insert(FEATURE_GOOGLE_AUTH_REQUIRED.to_owned());
    project.super_admin = true;
    project
        .settings
        .insert("theme".to_owned(), "dark \"quoted\" ünïcode".to_owned());
    s.a.put_project(&project).await.unwrap();
    assert_eq!(
        s.b.project(&project.id).await.unwrap(),
        Some(project.clone())
    );
    let mut renamed = project.clone();
    renamed.name = "Renamed".to_owned();
    renamed.features.clear();
    s.b.put_project(&renamed).await.unwrap();
    assert_eq!(s.a.project(&project.id).await.unwrap(), Some(renamed));
    assert_eq!(s.a.project(&ProjectId::new("p9")).await.unwrap(), None);

    let mut client = ClientApplication::new(ClientId::new("app"), ProjectId::new("p1"));
    client.name = "App".to_owned();
    client.status = ClientStatus::Off;
    client.allowed_scopes = "openid profile patient/*.rs offline_access".to_owned();
    client.default_scope = Some("openid".to_owned());
    client.redirect_uris = vec!["https://app.example.org/cb".to_owned()];
    client.pkce = PkcePolicy::InsecureAllowPlain;
    client.allowed_origins = vec!["https://app.example.org".to_owned()];
    client.identity_provider = Some(IdentityProvider {
        issuer: Some("https://idp.example.org".to_owned()),
        authorize_url: "https://idp.example.org/authorize".parse().unwrap(),
        token_url: "https://idp.example.org/token".parse().unwrap(),
        userinfo_url: None,
        jwks_uri: Some("https://idp.example.org/jwks".parse().unwrap()),
        client_id: "fhirgate".to_owned(),
        client_secret: Some("idp-secret".to_owned()),
        token_auth_method: IdpTokenAuth::ClientSecretPost,
        use_subject: true,
        scope: "openid email".to_owned(),
        access_token_audiences: Vec::new(),
        iss_parameter_supported: false,
        introspection_url: None,
    });
    client.auth_method = ClientAuthMethod::ClientSecretBasic;
    client.secret = Some(ClientSecretHash::of("s3cret"));
    client.retiring_secret = Some(ClientSecretHash::of("old"));
    client.jwks_uri = Some("https://app.example.org/jwks".parse().unwrap());
    client.access_token_lifetime = Some(600);
    client.refresh_tokens = RefreshPolicy::Always;
    s.b.put_client(&client).await.unwrap();
    assert_eq!(s.a.client(&client.id).await.unwrap(), Some(client.clone()));
    let mut moved = client.clone();
    moved.project = ProjectId::new("p2");
    moved.secret = None;
    s.a.put_client(&moved).await.unwrap();
    assert_eq!(s.b.client(&client.id).await.unwrap(), Some(moved));
    assert_eq!(s.b.client(&ClientId::new("nope")).await.unwrap(), None);

    let mut policy = AccessPolicy::new(AccessPolicyId::new("ap1"));
    policy.name = Some("Nurses".to_owned());
    policy.compartment = Some(Reference::parse("Organization/9").unwrap());
    policy.resources = vec![
        ResourcePolicy {
            resource_type: "Observation".to_owned(),
            compartment: None,
            criteria: Some("Observation?subject=Patient/1".to_owned()),
            readonly: true,
            interactions: vec![Interaction::Read, Interaction::Search],
        },
        ResourcePolicy::any("Patient"),
    ];
    policy.ip_rules = vec![
        IpAccessRule {
            name: Some("office".to_owned()),
            value: "10.0.0.0/8".parse().unwrap(),
            action: IpAction::Allow,
        },
        IpAccessRule {
            name: None,
            value: "*".parse().unwrap(),
            action: IpAction::Block,
        },
    ];
    s.a.put_access_policy(&policy).await.unwrap();
    assert_eq!(
        s.b.access_policy(&policy.id).await.unwrap(),
        Some(policy.clone())
    );
    let full = AccessPolicy::full_access(policy.id.clone());
    s.b.put_access_policy(&full).await.unwrap();
    assert_eq!(s.a.access_policy(&policy.id).await.unwrap(), Some(full));
    assert_eq!(
        s.a.access_policy(&AccessPolicyId::new("nope"))
            .await
            .unwrap(),
        None
    );

    let launch = SmartLaunch {
        id: LaunchId::new("launch-1"),
        patient: Some(Reference::parse("Patient/p-1").unwrap()),
        encounter: Some(Reference::parse("Encounter/e.2").unwrap()),
    };
    s.a.put_launch(&launch).await.unwrap();
    assert_eq!(s.b.launch(&launch.id).await.unwrap(), Some(launch.clone()));
    let bare = SmartLaunch {
        patient: None,
        encounter: None,
        ..launch.clone()
    };
    s.b.put_launch(&bare).await.unwrap();
    assert_eq!(s.a.launch(&launch.id).await.unwrap(), Some(bare));
    assert_eq!(s.a.launch(&LaunchId::new("nope")).await.unwrap(), None);
}

async fn domains_are_keyed_by_lower_case(s: &Stores) {
    let config = DomainConfiguration {
        domain: "Example.ORG".to_owned(),
        identity_provider: None,
    };
    s.a.put_domain(&config).await.unwrap();
    let stored = DomainConfiguration {
        domain: "example.org".to_owned(),
        identity_provider: None,
    };
    assert_eq!(
        s.b.domain("example.org").await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(s.b.domain("EXAMPLE.org").await.unwrap(), Some(stored));
    assert_eq!(s.b.domain("other.org").await.unwrap(), None);

    // The same domain in another case replaces the configuration: one per domain.
    let mut replaced = DomainConfiguration {
        domain: "EXAMPLE.ORG".to_owned(),
        identity_provider: Some(IdentityProvider {
            issuer: None,
            authorize_url: "https://sso.example.org/auth".parse().unwrap(),
            token_url: "https://sso.example.org/token".parse().unwrap(),
            userinfo_url: Some("https://sso.example.org/me".parse().unwrap()),
            jwks_uri: None,
            client_id: "c".to_owned(),
            client_secret: None,
            token_auth_method: IdpTokenAuth::ClientSecretBasic,
            use_subject: false,
            scope: "openid profile email".to_owned(),
            access_token_audiences: Vec::new(),
            iss_parameter_supported: false,
            introspection_url: None,
        }),
    };
    s.b.put_domain(&replaced).await.unwrap();
    replaced.domain = "example.org".to_owned();
    assert_eq!(s.a.domain("Example.Org").await.unwrap(), Some(replaced));
}

// ---- LoginStore ----------------------------------------------------------------------------

async fn logins_are_created_once_and_found_by_their_hashes(s: &Stores) {
    let r = authorized("l1", "h1", "c1", Some("app"));
    s.a.create_login(&r).await.unwrap();
    assert_eq!(s.b.login(&r.id).await.unwrap(), Some(r.clone()));
    assert_eq!(
        s.b.login_by_handle(&h("h1")).await.unwrap(),
        Some(r.clone())
    );
    assert_eq!(
        s.b.login_by_session(&h("session-of-l1")).await.unwrap(),
        Some(r.clone())
    );
    // Each lookup finds a login only by the hash in its own role.
    assert_eq!(s.a.login_by_handle(&h("c1")).await.unwrap(), None);
    assert_eq!(
        s.a.login_by_handle(&h("session-of-l1")).await.unwrap(),
        None
    );
    assert_eq!(s.a.login_by_session(&h("h1")).await.unwrap(), None);
    assert_eq!(s.a.login_by_refresh(&h("h1")).await.unwrap(), None);
    assert_eq!(s.a.login_by_refresh(&h("c1")).await.unwrap(), None);
    assert_eq!(s.a.login_by_handle(&h("nope")).await.unwrap(), None);
    assert_eq!(s.a.login(&LoginId::new("nope")).await.unwrap(), None);

    // The same id again.
    let same_id = s.b.create_login(&login("l1", "h-other")).await;
    assert!(is_conflict(&same_id), "{same_id:?}");
    assert_eq!(s.a.login_by_handle(&h("h-other")).await.unwrap(), None);
    // The same handle under another id.
    let same_handle = s.b.create_login(&login("l2", "h1")).await;
    assert!(is_conflict(&same_handle), "{same_handle:?}");
    assert_eq!(s.a.login(&LoginId::new("l2")).await.unwrap(), None);
    // A hash of another login in another role (here l1's code as a session).
    let mut cross = login("l3", "h3");
    cross.session = Some(SessionState {
        hash: h("c1"),
        expires_at: at(3600),
    });
    let cross_result = s.a.create_login(&cross).await;
    assert!(is_conflict(&cross_result), "{cross_result:?}");
    assert_eq!(s.b.login(&cross.id).await.unwrap(), None);
    assert_eq!(s.b.login_by_handle(&h("h3")).await.unwrap(), None);
    // l1 is untouched.
    assert_eq!(s.b.login(&r.id).await.unwrap(), Some(r));
}

async fn update_login_is_compare_and_swap(s: &Stores) {
    let r0 = login("l1", "h1");
    s.a.create_login(&r0).await.unwrap();

    let mut r1 = r0.clone();
    r1.version = 1;
    r1.stage = StageTag::Scope;
    r1.membership = Some(MembershipId::new("m1"));
    assert!(s.a.update_login(&r1, 0).await.unwrap());
    assert_eq!(s.b.login(&r1.id).await.unwrap(), Some(r1.clone()));

    // Refused, changing nothing: a stale expected version, a record version that is not
    // expected + 1, an unknown login.
    let mut stale = r1.clone();
    stale.granted_scope = Some("stale".to_owned());
    assert!(!s.b.update_login(&stale, 0).await.unwrap());
    let mut skipping = r1.clone();
    skipping.version = 3;
    assert!(!s.b.update_login(&skipping, 1).await.unwrap());
    let mut ghost = login("ghost", "h-ghost");
    ghost.version = 1;
    assert!(!s.a.update_login(&ghost, 0).await.unwrap());
    assert_eq!(s.a.login(&ghost.id).await.unwrap(), None);
    assert_eq!(s.a.login(&r1.id).await.unwrap(), Some(r1.clone()));

    // New hashes become findable.
    let mut r2 = r1.clone();
    r2.version = 2;
    r2.stage = StageTag::Authorized;
    r2.code = Some(CodeState {
        hash: h("c1"),
        expires_at: at(60),
        redeemed: false,
    });
    r2.session = Some(SessionState {
        hash: h("s1"),
        expires_at: at(3600),
    });
    assert!(s.b.update_login(&r2, 1).await.unwrap());
    assert_eq!(
        s.a.login_by_session(&h("s1")).await.unwrap(),
        Some(r2.clone())
    );

    // Replacing the code retires the old hash.
    let mut r3 = r2.clone();
    r3.version = 3;
    r3.code = Some(CodeState {
        hash: h("c2"),
        expires_at: at(60),
        redeemed: false,
    });
    assert!(s.a.update_login(&r3, 2).await.unwrap());
    assert_eq!(
        s.b.consume_code(&h("c1"), at(1)).await.unwrap(),
        CodeRedemption::Unknown
    );
    assert_eq!(
        s.b.login_by_session(&h("s1")).await.unwrap(),
        Some(r3.clone())
    );

    // A hash another login owns, in any role, is a conflict and changes nothing.
    let mut other = login("l2", "h2");
    other.session = Some(SessionState {
        hash: h("s2"),
        expires_at: at(3600),
    });
    s.b.create_login(&other).await.unwrap();
    let mut clash = r3.clone();
    clash.version = 4;
    clash.session = Some(SessionState {
        hash: h("s2"),
        expires_at: at(3600),
    });
    let result = s.a.update_login(&clash, 3).await;
    assert!(is_conflict(&result), "{result:?}");
    let mut clash = r3.clone();
    clash.version = 4;
    clash.code = Some(CodeState {
        hash: h("h2"),
        expires_at: at(60),
        redeemed: false,
    });
    let result = s.b.update_login(&clash, 3).await;
    assert!(is_conflict(&result), "{result:?}");
    assert_eq!(s.a.login(&r3.id).await.unwrap(), Some(r3.clone()));
    assert_eq!(s.a.login_by_session(&h("s2")).await.unwrap(), Some(other));
    assert_eq!(
        s.a.login_by_session(&h("s1")).await.unwrap(),
        Some(r3.clone())
    );

    // Dropping the session frees its hash.
    let mut r4 = r3.clone();
    r4.version = 4;
    r4.session = None;
    assert!(s.a.update_login(&r4, 3).await.unwrap());
    assert_eq!(s.b.login_by_session(&h("s1")).await.unwrap(), None);
    s.b.create_login(&login("l3", "s1")).await.unwrap();

    // A revoked login refuses updates.
    assert!(s.b.revoke_login(&r4.id).await.unwrap());
    let revoked = s.a.login(&r4.id).await.unwrap().unwrap();
    assert!(revoked.revoked);
    assert_eq!(revoked.version, 5);
    let mut revived = revoked.clone();
    revived.version = 6;
    revived.revoked = false;
    assert!(!s.a.update_login(&revived, 5).await.unwrap());
    assert_eq!(s.b.login(&r4.id).await.unwrap(), Some(revoked));
}

async fn update_login_can_rotate_the_handle(s: &Stores) {
    let r0 = login("l1", "h1");
    s.a.create_login(&r0).await.unwrap();
    // After it travelled through a URL, a login's handle is replaced: the new one finds the
    // login, the old one nothing.
    let mut r1 = r0.clone();
    r1.version = 1;
    r1.handle_hash = h("h-new");
    assert!(s.a.update_login(&r1, 0).await.unwrap());
    assert_eq!(
        s.b.login_by_handle(&h("h-new")).await.unwrap(),
        Some(r1.clone())
    );
    assert_eq!(s.b.login_by_handle(&h("h1")).await.unwrap(), None);
    // A second login cannot take a handle in use.
    let mut other = login("l2", "h2");
    s.a.create_login(&other).await.unwrap();
    other.version = 1;
    other.handle_hash = h("h-new");
    assert!(matches!(
        s.b.update_login(&other, 0).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.a.login_by_handle(&h("h2"))
            .await
            .unwrap()
            .map(|r| r.version),
        Some(0)
    );
}

async fn codes_are_redeemed_once(s: &Stores) {
    let r = authorized("l1", "h1", "c1", Some("app"));
    s.a.create_login(&r).await.unwrap();
    assert_eq!(
        s.a.consume_code(&h("nope"), at(1)).await.unwrap(),
        CodeRedemption::Unknown
    );
    // The handle is not a code.
    assert_eq!(
        s.a.consume_code(&h("h1"), at(1)).await.unwrap(),
        CodeRedemption::Unknown
    );

    let mut expected = r.clone();
    expected.version = 5;
    expected.stage = StageTag::Granted;
    expected.code.as_mut().unwrap().redeemed = true;
    assert_eq!(
        s.a.consume_code(&h("c1"), at(1)).await.unwrap(),
        CodeRedemption::Redeemed(expected.clone())
    );
    assert_eq!(s.b.login(&r.id).await.unwrap(), Some(expected.clone()));
    // Every later presentation is a replay, on either instance, and changes nothing.
    assert_eq!(
        s.b.consume_code(&h("c1"), at(2)).await.unwrap(),
        CodeRedemption::Replayed(expected.clone())
    );
    assert_eq!(
        s.a.consume_code(&h("c1"), at(3)).await.unwrap(),
        CodeRedemption::Replayed(expected.clone())
    );
    assert_eq!(s.a.login(&r.id).await.unwrap(), Some(expected.clone()));

    // The stored version moved with the record: a CAS from the returned one succeeds.
    let mut next = expected.clone();
    next.version = 6;
    next.refresh = Some(RefreshState {
        current: h("r1"),
        expires_at: at(1000),
    });
    assert!(s.b.update_login(&next, 5).await.unwrap());
    assert_eq!(
        s.a.login_by_refresh(&h("r1")).await.unwrap(),
        Some(next.clone())
    );
}

async fn code_expiry_stage_and_revocation_refuse(s: &Stores) {
    // Expired at exactly expires_at; nothing changes.
    let r = authorized("l1", "h1", "c1", None);
    s.a.create_login(&r).await.unwrap();
    assert_eq!(
        s.b.consume_code(&h("c1"), at(60)).await.unwrap(),
        CodeRedemption::Expired
    );
    assert_eq!(
        s.b.consume_code(&h("c1"), at(600)).await.unwrap(),
        CodeRedemption::Expired
    );
    assert_eq!(s.a.login(&r.id).await.unwrap(), Some(r.clone()));
    assert!(matches!(
        s.a.consume_code(&h("c1"), at(59)).await.unwrap(),
        CodeRedemption::Redeemed(_)
    ));

    // A code on a login that is not waiting in Authorized is not redeemable.
    let mut scope = authorized("l2", "h2", "c2", None);
    scope.stage = StageTag::Scope;
    s.a.create_login(&scope).await.unwrap();
    assert_eq!(
        s.b.consume_code(&h("c2"), at(1)).await.unwrap(),
        CodeRedemption::Expired
    );
    assert_eq!(s.a.login(&scope.id).await.unwrap(), Some(scope));

    // A revoked login's code is unknown, redeemed or not.
    let fresh = authorized("l3", "h3", "c3", None);
    s.a.create_login(&fresh).await.unwrap();
    assert!(s.a.revoke_login(&fresh.id).await.unwrap());
    let revoked = s.a.login(&fresh.id).await.unwrap().unwrap();
    assert_eq!(
        s.b.consume_code(&h("c3"), at(1)).await.unwrap(),
        CodeRedemption::Unknown
    );
    assert_eq!(s.a.login(&fresh.id).await.unwrap(), Some(revoked));
    let mut spent = granted("l4", "h4", "r4", None);
    spent.code.as_mut().unwrap().hash = h("c4");
    s.b.create_login(&spent).await.unwrap();
    assert!(matches!(
        s.a.consume_code(&h("c4"), at(1)).await.unwrap(),
        CodeRedemption::Replayed(_)
    ));
    assert!(s.b.revoke_login(&spent.id).await.unwrap());
    assert_eq!(
        s.a.consume_code(&h("c4"), at(1)).await.unwrap(),
        CodeRedemption::Unknown
    );

    // A redeemed code stays a replay after it expired (replay is checked first).
    let mut old = granted("l5", "h5", "r5", None);
    old.code.as_mut().unwrap().hash = h("c5");
    s.a.create_login(&old).await.unwrap();
    assert_eq!(
        s.b.consume_code(&h("c5"), at(5000)).await.unwrap(),
        CodeRedemption::Replayed(old)
    );
}

async fn refresh_tokens_rotate_once_and_reuse_is_detected(s: &Stores) {
    let app = ClientId::new("app");
    let g = granted("l1", "h1", "r1", Some("app"));
    s.a.create_login(&g).await.unwrap();
    assert_eq!(
        s.b.login_by_refresh(&h("r1")).await.unwrap(),
        Some(g.clone())
    );

    let RefreshRotation::Rotated(x) =
        s.a.rotate_refresh(&h("r1"), &h("r2"), Some(&app), at(10))
            .await
            .unwrap()
    else {
        panic!("not rotated")
    };
    let mut expected = g.clone();
    expected.version = 8;
    expected.refresh = Some(RefreshState {
        current: h("r2"),
        expires_at: at(1000),
    });
    assert_eq!(x, expected);
    assert_eq!(s.b.login(&g.id).await.unwrap(), Some(expected.clone()));

    // The old token again: reuse, nothing changes, the offered next is not indexed.
    assert_eq!(
        s.b.rotate_refresh(&h("r1"), &h("r3"), Some(&app), at(11))
            .await
            .unwrap(),
        RefreshRotation::Reused(expected.clone())
    );
    assert_eq!(s.a.login(&g.id).await.unwrap(), Some(expected.clone()));
    assert_eq!(s.a.login_by_refresh(&h("r3")).await.unwrap(), None);
    // Current and retired tokens both find the family.
    assert_eq!(
        s.a.login_by_refresh(&h("r1")).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        s.a.login_by_refresh(&h("r2")).await.unwrap(),
        Some(expected.clone())
    );

    // Rotating again keeps every retired token.
    let RefreshRotation::Rotated(y) =
        s.b.rotate_refresh(&h("r2"), &h("r3"), Some(&app), at(12))
            .await
            .unwrap()
    else {
        panic!("not rotated")
    };
    let family = y.refresh.clone().unwrap();
    assert_eq!(family.current, h("r3"));
    assert_eq!(y.version, 9);
    for retired in ["r1", "r2"] {
        assert_eq!(
            s.a.rotate_refresh(&h(retired), &h("r9"), Some(&app), at(13))
                .await
                .unwrap(),
            RefreshRotation::Reused(y.clone())
        );
        assert_eq!(
            s.b.login_by_refresh(&h(retired)).await.unwrap(),
            Some(y.clone())
        );
    }
    // The record itself does not grow with the family's history.
    assert_eq!(
        serde_json::to_string(&y).unwrap().len(),
        serde_json::to_string(&x).unwrap().len()
    );

    // Unknown tokens, and hashes of other roles.
    for presented in ["nope", "h1", "code-of-l1", "session-of-l1"] {
        assert_eq!(
            s.a.rotate_refresh(&h(presented), &h("r4"), Some(&app), at(13))
                .await
                .unwrap(),
            RefreshRotation::Unknown,
            "{presented}"
        );
    }

    // A `next` that is already a hash (of any login, any role) is a conflict, whether or
    // not the presented token is valid, and changes nothing.
    for next in ["r1", "r3", "h1", "session-of-l1"] {
        let result =
            s.b.rotate_refresh(&h("r3"), &h(next), Some(&app), at(13))
                .await;
        assert!(is_conflict(&result), "{next}: {result:?}");
    }
    let result =
        s.a.rotate_refresh(&h("nope"), &h("h1"), Some(&app), at(13))
            .await;
    assert!(is_conflict(&result), "{result:?}");
    assert_eq!(s.a.login(&g.id).await.unwrap(), Some(y.clone()));

    // The family's end is absolute.
    assert_eq!(
        s.a.rotate_refresh(&h("r3"), &h("r4"), Some(&app), at(1000))
            .await
            .unwrap(),
        RefreshRotation::Expired
    );
    assert_eq!(s.b.login(&g.id).await.unwrap(), Some(y.clone()));
    let RefreshRotation::Rotated(z) =
        s.b.rotate_refresh(&h("r3"), &h("r4"), Some(&app), at(999))
            .await
            .unwrap()
    else {
        panic!("not rotated")
    };
    assert_eq!(z.refresh.as_ref().unwrap().expires_at, at(1000));

    // The stored version moved with the record.
    let mut next = z.clone();
    next.version = z.version + 1;
    next.granted_scope = Some("openid".to_owned());
    assert!(s.a.update_login(&next, z.version).await.unwrap());
    assert_eq!(s.b.login_by_refresh(&h("r1")).await.unwrap(), Some(next));
}

async fn refresh_client_condition_and_revoked_families(s: &Stores) {
    let app = ClientId::new("app");
    let other = ClientId::new("other");

    // A family issued to a client is refused to another client and to none.
    let g = granted("l1", "h1", "r1", Some("app"));
    s.a.create_login(&g).await.unwrap();
    for client in [Some(&other), None] {
        assert_eq!(
            s.b.rotate_refresh(&h("r1"), &h("r2"), client, at(1))
                .await
                .unwrap(),
            RefreshRotation::Unknown
        );
    }
    assert_eq!(s.a.login(&g.id).await.unwrap(), Some(g.clone()));
    assert_eq!(s.a.login_by_refresh(&h("r2")).await.unwrap(), None);

    // A family of a login without a client is refused to every client.
    let bare = granted("l2", "h2", "t1", None);
    s.b.create_login(&bare).await.unwrap();
    assert_eq!(
        s.a.rotate_refresh(&h("t1"), &h("t2"), Some(&app), at(1))
            .await
            .unwrap(),
        RefreshRotation::Unknown
    );
    assert!(matches!(
        s.a.rotate_refresh(&h("t1"), &h("t2"), None, at(1))
            .await
            .unwrap(),
        RefreshRotation::Rotated(_)
    ));
    // Reuse by another client is Unknown, not Reused: the client condition comes first.
    assert_eq!(
        s.b.rotate_refresh(&h("t1"), &h("t3"), Some(&app), at(2))
            .await
            .unwrap(),
        RefreshRotation::Unknown
    );

    // A revoked family: current and retired tokens are Unknown, but still found.
    assert!(matches!(
        s.a.rotate_refresh(&h("r1"), &h("r2"), Some(&app), at(1))
            .await
            .unwrap(),
        RefreshRotation::Rotated(_)
    ));
    assert!(s.b.revoke_login(&g.id).await.unwrap());
    let revoked = s.a.login(&g.id).await.unwrap().unwrap();
    for presented in ["r1", "r2"] {
        assert_eq!(
            s.a.rotate_refresh(&h(presented), &h("r3"), Some(&app), at(3))
                .await
                .unwrap(),
            RefreshRotation::Unknown
        );
        assert_eq!(
            s.b.login_by_refresh(&h(presented)).await.unwrap(),
            Some(revoked.clone())
        );
    }
    assert_eq!(s.a.login(&g.id).await.unwrap(), Some(revoked));

    // A login without a family.
    let plain = authorized("l3", "h3", "c3", Some("app"));
    s.a.create_login(&plain).await.unwrap();
    assert_eq!(
        s.b.rotate_refresh(&h("h3"), &h("x"), Some(&app), at(1))
            .await
            .unwrap(),
        RefreshRotation::Unknown
    );
}

async fn revocation_and_session_lists(s: &Stores) {
    let mut l1 = login("l1", "h1");
    l1.created_at = at(0);
    let mut l2 = login("l2", "h2");
    l2.created_at = at(10);
    let mut l3 = login("l3", "h3");
    l3.created_at = at(10);
    let mut l4 = authorized("l4", "h4", "c4", None);
    l4.created_at = at(5);
    let mut l5 = login("l5", "h5");
    l5.user = Some(UserId::new("u2"));
    let mut l6 = login("l6", "h6");
    l6.user = None;
    for r in [&l3, &l1, &l6, &l4, &l2, &l5] {
        s.a.create_login(r).await.unwrap();
    }
    // Newest first; equal times in id order.
    let ids = |v: Vec<LoginRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.b.logins_of_user(&UserId::new("u1")).await.unwrap()),
        vec![l2.id.clone(), l3.id.clone(), l4.id.clone(), l1.id.clone()]
    );
    assert_eq!(
        s.b.logins_of_user(&UserId::new("u2")).await.unwrap(),
        vec![l5.clone()]
    );
    assert_eq!(
        s.b.logins_of_user(&UserId::new("nobody")).await.unwrap(),
        vec![]
    );

    assert!(s.a.revoke_login(&l1.id).await.unwrap());
    assert!(!s.b.revoke_login(&l1.id).await.unwrap());
    assert!(!s.b.revoke_login(&LoginId::new("nope")).await.unwrap());
    let mut revoked = l1.clone();
    revoked.revoked = true;
    revoked.version = 1;
    assert_eq!(s.b.login(&l1.id).await.unwrap(), Some(revoked));

    // l1 is already revoked: three more.
    assert_eq!(s.b.revoke_user_logins(&UserId::new("u1")).await.unwrap(), 3);
    assert_eq!(s.a.revoke_user_logins(&UserId::new("u1")).await.unwrap(), 0);
    assert_eq!(
        s.a.revoke_user_logins(&UserId::new("nobody"))
            .await
            .unwrap(),
        0
    );
    for r in s.a.logins_of_user(&UserId::new("u1")).await.unwrap() {
        assert!(r.revoked, "{}", r.id);
        assert_eq!(r.version, if r.id == l4.id { 5 } else { 1 });
    }
    assert_eq!(s.a.login(&l5.id).await.unwrap(), Some(l5));
    assert_eq!(s.a.login(&l6.id).await.unwrap(), Some(l6));
    // Lookups still find revoked logins (the caller refuses them).
    assert!(
        s.a.login_by_session(&h("session-of-l4"))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
}

async fn expired_logins_are_purged(s: &Stores) {
    let mut l1 = login("l1", "h1");
    l1.expires_at = at(100);
    let mut l2 = granted("l2", "h2", "r2", None);
    l2.expires_at = at(200);
    let mut l3 = granted("l3", "h3", "r3", None);
    l3.expires_at = at(100);
    for r in [&l1, &l2, &l3] {
        s.a.create_login(r).await.unwrap();
    }
    assert!(matches!(
        s.a.rotate_refresh(&h("r3"), &h("r3b"), None, at(1))
            .await
            .unwrap(),
        RefreshRotation::Rotated(_)
    ));
    assert!(s.a.revoke_login(&l3.id).await.unwrap());

    assert_eq!(s.b.purge_expired_logins(at(99)).await.unwrap(), 0);
    assert_eq!(s.b.purge_expired_logins(at(100)).await.unwrap(), 2);
    assert_eq!(s.a.purge_expired_logins(at(100)).await.unwrap(), 0);
    assert_eq!(s.a.login(&l1.id).await.unwrap(), None);
    assert_eq!(s.a.login(&l3.id).await.unwrap(), None);
    assert_eq!(s.a.login_by_handle(&h("h1")).await.unwrap(), None);
    assert_eq!(s.a.login_by_refresh(&h("r3")).await.unwrap(), None);
    assert_eq!(s.a.login_by_refresh(&h("r3b")).await.unwrap(), None);
    assert_eq!(
        s.a.login_by_session(&h("session-of-l3")).await.unwrap(),
        None
    );
    assert_eq!(s.a.login(&l2.id).await.unwrap(), Some(l2.clone()));
    assert_eq!(s.a.login_by_refresh(&h("r2")).await.unwrap(), Some(l2));
    // Their hashes are free again.
    s.b.create_login(&login("l9", "h1")).await.unwrap();
    s.b.create_login(&login("l10", "r3")).await.unwrap();
    s.b.create_login(&login("l1", "h11")).await.unwrap();
}

// ---- OnceStore -----------------------------------------------------------------------------

async fn claims_are_single_use_until_they_expire(s: &Stores) {
    let key = OnceKey::new("jti", "abc");
    assert!(s.a.claim_once(&key, at(60), at(0)).await.unwrap());
    assert!(!s.b.claim_once(&key, at(120), at(1)).await.unwrap());
    assert!(!s.a.claim_once(&key, at(120), at(59)).await.unwrap());
    // Expired at exactly its end; the new claim has its own end.
    assert!(s.b.claim_once(&key, at(200), at(60)).await.unwrap());
    assert!(!s.a.claim_once(&key, at(300), at(199)).await.unwrap());
    // Keys are independent, also across kinds.
    assert!(
        s.a.claim_once(&OnceKey::new("jti", "abd"), at(60), at(0))
            .await
            .unwrap()
    );
    assert!(
        s.a.claim_once(&OnceKey::new("state", "abc"), at(60), at(0))
            .await
            .unwrap()
    );
}

async fn watermarks_only_rise(s: &Stores) {
    let key = OnceKey::new("totp", "u1");
    assert!(s.a.claim_above(&key, 5, at(100), at(0)).await.unwrap());
    assert!(!s.b.claim_above(&key, 5, at(100), at(1)).await.unwrap());
    assert!(!s.a.claim_above(&key, 4, at(100), at(1)).await.unwrap());
    assert!(s.b.claim_above(&key, 6, at(100), at(2)).await.unwrap());
    assert!(!s.a.claim_above(&key, 5, at(200), at(99)).await.unwrap());
    // After the watermark expired any value is accepted.
    assert!(s.a.claim_above(&key, 3, at(300), at(100)).await.unwrap());
    assert!(!s.b.claim_above(&key, 3, at(300), at(101)).await.unwrap());
    // The whole u64 range keeps its order.
    let wide = OnceKey::new("totp", "u2");
    assert!(s.a.claim_above(&wide, 0, at(100), at(0)).await.unwrap());
    assert!(
        s.a.claim_above(&wide, u64::MAX - 1, at(100), at(0))
            .await
            .unwrap()
    );
    assert!(
        s.b.claim_above(&wide, u64::MAX, at(100), at(0))
            .await
            .unwrap()
    );
    assert!(
        !s.a.claim_above(&wide, u64::MAX, at(100), at(0))
            .await
            .unwrap()
    );
    assert!(
        !s.b.claim_above(&wide, i64::MAX as u64 + 1, at(100), at(0))
            .await
            .unwrap()
    );
}

async fn attempts_are_capped_per_window(s: &Stores) {
    let key = OnceKey::new("login", "alice@example.org");
    let window = Duration::seconds(60);
    for (i, now) in [0, 1, 2].into_iter().enumerate() {
        assert_eq!(
            s.nth(i)
                .take_attempt(&key, 3, window, at(now))
                .await
                .unwrap(),
            Attempt::Allowed {
                count: i as u32 + 1
            }
        );
    }
    for now in [3, 59] {
        assert_eq!(
            s.a.take_attempt(&key, 3, window, at(now)).await.unwrap(),
            Attempt::Limited {
                retry_after: at(60)
            }
        );
    }
    // A lower limit refuses at once; a higher one counts on.
    assert_eq!(
        s.b.take_attempt(&key, 1, window, at(4)).await.unwrap(),
        Attempt::Limited {
            retry_after: at(60)
        }
    );
    assert_eq!(
        s.b.take_attempt(&key, 5, window, at(5)).await.unwrap(),
        Attempt::Allowed { count: 4 }
    );
    // The window ends at exactly its end; the next one starts with the next attempt.
    assert_eq!(
        s.a.take_attempt(&key, 3, window, at(60)).await.unwrap(),
        Attempt::Allowed { count: 1 }
    );
    assert_eq!(
        s.b.take_attempt(&key, 1, window, at(61)).await.unwrap(),
        Attempt::Limited {
            retry_after: at(120)
        }
    );
    // Clearing forgets the window.
    s.b.clear_attempts(&key).await.unwrap();
    s.b.clear_attempts(&OnceKey::new("login", "never"))
        .await
        .unwrap();
    assert_eq!(
        s.a.take_attempt(&key, 1, window, at(62)).await.unwrap(),
        Attempt::Allowed { count: 1 }
    );
    assert_eq!(
        s.a.take_attempt(&key, 1, window, at(63)).await.unwrap(),
        Attempt::Limited {
            retry_after: at(122)
        }
    );
    // A limit of zero refuses, and still opens a window.
    let zero = OnceKey::new("login", "zero");
    assert_eq!(
        s.a.take_attempt(&zero, 0, window, at(0)).await.unwrap(),
        Attempt::Limited {
            retry_after: at(60)
        }
    );
    assert_eq!(
        s.b.take_attempt(&zero, 0, window, at(30)).await.unwrap(),
        Attempt::Limited {
            retry_after: at(60)
        }
    );
    assert_eq!(
        s.b.take_attempt(&zero, 2, window, at(30)).await.unwrap(),
        Attempt::Allowed { count: 1 }
    );

    // take_attempts: every key counted while all have room; the first full one stops it.
    let (ip, account) = (OnceKey::new("ip", "192.0.2.1"), OnceKey::new("acct", "u1"));
    let caps = [(ip.clone(), 2), (account.clone(), 1)];
    let once: &dyn OnceStore = &*s.a;
    assert_eq!(
        take_attempts(once, &caps, window, at(0)).await.unwrap(),
        None
    );
    assert_eq!(
        take_attempts(once, &caps, window, at(1)).await.unwrap(),
        Some(at(60))
    );
    assert_eq!(
        take_attempts(&*s.b, &caps, window, at(2)).await.unwrap(),
        Some(at(60))
    );
    // The account key was counted once: the third call stopped at the IP key.
    assert_eq!(
        s.a.take_attempt(&account, 10, window, at(3)).await.unwrap(),
        Attempt::Allowed { count: 2 }
    );
}

async fn expired_once_entries_are_purged(s: &Stores) {
    let (k1, k2) = (OnceKey::new("jti", "1"), OnceKey::new("jti", "2"));
    let w1 = OnceKey::new("totp", "1");
    let (a1, a2) = (OnceKey::new("ip", "1"), OnceKey::new("ip", "2"));
    assert!(s.a.claim_once(&k1, at(10), at(0)).await.unwrap());
    assert!(s.a.claim_once(&k2, at(20), at(0)).await.unwrap());
    assert!(s.a.claim_above(&w1, 9, at(10), at(0)).await.unwrap());
    s.a.take_attempt(&a1, 5, Duration::seconds(10), at(0))
        .await
        .unwrap();
    s.a.take_attempt(&a2, 5, Duration::seconds(30), at(0))
        .await
        .unwrap();

    assert_eq!(s.b.purge_expired_once(at(9)).await.unwrap(), 0);
    assert_eq!(s.b.purge_expired_once(at(10)).await.unwrap(), 3);
    assert_eq!(s.a.purge_expired_once(at(10)).await.unwrap(), 0);
    assert_eq!(s.a.purge_expired_once(at(25)).await.unwrap(), 1);
    assert_eq!(s.a.purge_expired_once(at(30)).await.unwrap(), 1);
    // What is left works as new.
    assert!(s.b.claim_once(&k1, at(100), at(5)).await.unwrap());
    assert!(s.b.claim_above(&w1, 1, at(100), at(5)).await.unwrap());
    assert_eq!(
        s.b.take_attempt(&a2, 5, Duration::seconds(30), at(5))
            .await
            .unwrap(),
        Attempt::Allowed { count: 1 }
    );
}

/// Request-derived keys may hold any character, NUL included (which PostgreSQL's text
/// cannot): single-use keys still work, and lookups by such ids simply find nothing.
async fn lookups_by_keys_with_nul_find_nothing(s: &Stores) {
    let nul = OnceKey::new("jti", "a\0b");
    let plain = OnceKey::new("jti", "a");
    assert!(s.a.claim_once(&nul, at(60), at(0)).await.unwrap());
    assert!(!s.b.claim_once(&nul, at(60), at(1)).await.unwrap());
    assert!(s.b.claim_once(&plain, at(60), at(1)).await.unwrap());
    assert!(s.a.claim_above(&nul, 3, at(60), at(0)).await.unwrap());
    assert!(!s.b.claim_above(&nul, 3, at(60), at(0)).await.unwrap());
    assert_eq!(
        s.a.take_attempt(&nul, 1, Duration::seconds(60), at(0))
            .await
            .unwrap(),
        Attempt::Allowed { count: 1 }
    );
    s.b.clear_attempts(&nul).await.unwrap();

    s.a.create_user(&user("u1", "a@example.org", None))
        .await
        .unwrap();
    let bad = "u1\0";
    assert_eq!(s.b.user(&UserId::new(bad)).await.unwrap(), None);
    assert_eq!(
        s.b.user_by_email("a@example.org\0", None).await.unwrap(),
        None
    );
    assert_eq!(
        s.b.user_by_email("a@example.org", Some(&ProjectId::new(bad)))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.b.memberships_of(&UserId::new(bad)).await.unwrap(), vec![]);
    assert_eq!(s.b.membership(&MembershipId::new(bad)).await.unwrap(), None);
    assert_eq!(s.b.project(&ProjectId::new(bad)).await.unwrap(), None);
    assert_eq!(s.b.client(&ClientId::new(bad)).await.unwrap(), None);
    assert_eq!(s.b.domain("example.org\0").await.unwrap(), None);
    assert_eq!(
        s.b.access_policy(&AccessPolicyId::new(bad)).await.unwrap(),
        None
    );
    assert_eq!(s.b.launch(&LaunchId::new(bad)).await.unwrap(), None);
    assert_eq!(s.b.login(&LoginId::new(bad)).await.unwrap(), None);
    assert_eq!(s.b.logins_of_user(&UserId::new(bad)).await.unwrap(), vec![]);
    assert!(!s.b.revoke_login(&LoginId::new(bad)).await.unwrap());
    assert_eq!(s.b.revoke_user_logins(&UserId::new(bad)).await.unwrap(), 0);
}

// ---- races: 64 tasks over both instances -----------------------------------------------------

const TASKS: usize = 64;

/// Runs `TASKS` copies of `f` at once (after a barrier), alternating the two instances.
async fn race<T, F, Fut>(s: &Stores, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let barrier = barrier.clone();
        let work = f(i, s.nth(i));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            work.await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn race_one_of_64_redeems_a_code(s: &Stores) {
    s.a.create_login(&authorized("l1", "h1", "c1", None))
        .await
        .unwrap();
    let results = race(s, |_, store| async move {
        store.consume_code(&h("c1"), at(1)).await.unwrap()
    })
    .await;
    let redeemed: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            CodeRedemption::Redeemed(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(redeemed.len(), 1);
    let replayed = results
        .iter()
        .filter(|r| **r == CodeRedemption::Replayed(redeemed[0].clone()))
        .count();
    assert_eq!(replayed, TASKS - 1);
    assert_eq!(redeemed[0].version, 5);
    assert_eq!(
        s.b.login(&LoginId::new("l1")).await.unwrap(),
        Some(redeemed[0].clone())
    );
}

async fn race_one_of_64_rotates_a_refresh_token(s: &Stores) {
    s.a.create_login(&granted("l1", "h1", "r1", Some("app")))
        .await
        .unwrap();
    let results = race(s, |i, store| async move {
        let next = h(&format!("next-{i}"));
        let outcome = store
            .rotate_refresh(&h("r1"), &next, Some(&ClientId::new("app")), at(1))
            .await
            .unwrap();
        (next, outcome)
    })
    .await;
    let winners: Vec<_> = results
        .iter()
        .filter_map(|(next, r)| match r {
            RefreshRotation::Rotated(rec) => Some((*next, rec.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1);
    let (next, record) = &winners[0];
    let reused = results
        .iter()
        .filter(|(_, r)| *r == RefreshRotation::Reused(record.clone()))
        .count();
    assert_eq!(reused, TASKS - 1);
    let family = record.refresh.as_ref().unwrap();
    assert_eq!(family.current, *next);
    assert_eq!(
        s.b.login_by_refresh(&h("r1")).await.unwrap(),
        Some(record.clone()),
        "the rotated-out token is remembered"
    );
    assert_eq!(record.version, 8);
    assert_eq!(
        s.b.login(&LoginId::new("l1")).await.unwrap(),
        Some(record.clone())
    );
    // Only the winner's next token was indexed.
    for (candidate, _) in &results {
        let found = s.a.login_by_refresh(candidate).await.unwrap();
        assert_eq!(found.is_some(), candidate == next);
    }
}

async fn race_one_of_64_claims_a_key(s: &Stores) {
    let results = race(s, |_, store| async move {
        store
            .claim_once(&OnceKey::new("jti", "once"), at(60), at(0))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(results.iter().filter(|won| **won).count(), 1);
}

async fn race_one_of_64_raises_a_watermark(s: &Stores) {
    let results = race(s, |_, store| async move {
        store
            .claim_above(&OnceKey::new("totp", "u1"), 1_234_567, at(90), at(0))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(results.iter().filter(|won| **won).count(), 1);
}

async fn race_64_attempts_under_a_cap_of_10(s: &Stores) {
    let results = race(s, |_, store| async move {
        store
            .take_attempt(
                &OnceKey::new("login", "alice"),
                10,
                Duration::seconds(300),
                at(0),
            )
            .await
            .unwrap()
    })
    .await;
    let counts: BTreeSet<u32> = results
        .iter()
        .filter_map(|a| match a {
            Attempt::Allowed { count } => Some(*count),
            Attempt::Limited { .. } => None,
        })
        .collect();
    assert_eq!(counts, (1..=10).collect::<BTreeSet<_>>());
    let limited = results
        .iter()
        .filter(|a| {
            **a == Attempt::Limited {
                retry_after: at(300),
            }
        })
        .count();
    assert_eq!(limited, TASKS - 10);
}

async fn race_one_of_64_compare_and_swaps_wins(s: &Stores) {
    let r0 = login("l1", "h1");
    s.a.create_login(&r0).await.unwrap();
    let results = race(s, move |i, store| {
        let mut next = r0.clone();
        next.version = 1;
        next.stage = StageTag::Scope;
        next.granted_scope = Some(format!("scope-{i}"));
        next.session = Some(SessionState {
            hash: h(&format!("session-{i}")),
            expires_at: at(60),
        });
        async move {
            let won = store.update_login(&next, 0).await.unwrap();
            (next, won)
        }
    })
    .await;
    let winners: Vec<_> = results.iter().filter(|(_, won)| *won).collect();
    assert_eq!(winners.len(), 1);
    let winner = &winners[0].0;
    assert_eq!(
        s.b.login(&LoginId::new("l1")).await.unwrap(),
        Some(winner.clone())
    );
    // Only the winner's session hash was indexed.
    for (candidate, won) in &results {
        let hash = candidate.session.as_ref().unwrap().hash;
        assert_eq!(s.a.login_by_session(&hash).await.unwrap().is_some(), *won);
    }
}

async fn race_one_of_64_creates_a_user_per_email(s: &Stores) {
    let results = race(s, |i, store| async move {
        store
            .create_user(&user(&format!("u{i}"), "race@example.org", None))
            .await
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(results.iter().filter(|r| is_conflict(r)).count(), TASKS - 1);
    let winner =
        s.a.user_by_email("race@example.org", None)
            .await
            .unwrap()
            .unwrap();
    assert!(winner.id.as_str().starts_with('u'));
}

/// Redemptions racing a revocation: either the code was redeemed before the login was
/// revoked (one Redeemed, and the stored login is revoked and granted), or the revocation
/// came first (no Redeemed at all). Never a redeemed code on a login that stays live while
/// a revocation reported success.
async fn race_redemption_against_revocation(s: &Stores) {
    for round in 0..8 {
        let id = format!("l{round}");
        let code = format!("c{round}");
        s.a.create_login(&authorized(&id, &format!("h{round}"), &code, None))
            .await
            .unwrap();
        let results = race(s, |i, store| {
            let (id, code) = (LoginId::new(id.as_str()), h(&code));
            async move {
                if i == TASKS / 2 {
                    store
                        .revoke_login(&id)
                        .await
                        .map(|r| format!("revoked {r}"))
                } else {
                    store.consume_code(&code, at(1)).await.map(|r| match r {
                        CodeRedemption::Redeemed(_) => "redeemed".to_owned(),
                        CodeRedemption::Replayed(_) => "replayed".to_owned(),
                        CodeRedemption::Expired => "expired".to_owned(),
                        CodeRedemption::Unknown => "unknown".to_owned(),
                    })
                }
            }
        })
        .await;
        let results: Vec<String> = results.into_iter().map(Result::unwrap).collect();
        assert!(results.contains(&"revoked true".to_owned()));
        assert!(results.iter().filter(|r| *r == "redeemed").count() <= 1);
        assert!(!results.iter().any(|r| r == "expired"));
        let stored =
            s.b.login(&LoginId::new(id.as_str()))
                .await
                .unwrap()
                .unwrap();
        assert!(stored.revoked);
        let redeemed = results.iter().any(|r| r == "redeemed");
        assert_eq!(stored.code.as_ref().unwrap().redeemed, redeemed);
        assert_eq!(stored.version, if redeemed { 6 } else { 5 });
    }
}

// ---- PostgreSQL harness and faults -----------------------------------------------------------

#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_needs_the_postgres_feature() {
    use std::io::Write as _;
    if std::env::var("FHIRGATE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!(
            "FHIRGATE_REQUIRE_POSTGRES=1, but these tests were built without --features postgres"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: PgStore conformance needs --features postgres"
    );
}

#[cfg(feature = "postgres")]
mod pg {
    use std::sync::Arc;

    pub use super::common::pg::*;

    /// A migrated store and a second one with its own pool on the same schema.
    pub async fn stores(db: &TestDb) -> super::Stores {
        let a = db.store_with(db.options()).await;
        a.migrate().await.unwrap();
        let b = db.store_with(db.options()).await;
        super::Stores {
            a: Arc::new(a),
            b: Arc::new(b),
        }
    }
}

#[cfg(feature = "postgres")]
mod faults {
    use std::time::{Duration as StdDuration, Instant};

    use fhirgate::PgStore;
    use fhirgate::model::{LoginId, UserId};
    use fhirgate::store::{
        CodeRedemption, Directory, LoginStore, OnceKey, OnceStore, PgOptions, StoreError,
    };

    use super::pg::TestDb;
    use super::{at, authorized, granted, h, user};

    fn is_unavailable<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
        matches!(result, Err(StoreError::Unavailable(_)))
    }

    /// Holds a row lock on login `id` from the admin connection until `release`.
    async fn lock_login(db: &TestDb, id: &str) {
        db.admin
            .batch_execute(&format!(
                "BEGIN; SELECT 1 FROM {} WHERE id = '{id}' FOR UPDATE;",
                db.table("fhirgate_logins")
            ))
            .await
            .unwrap();
    }

    async fn release(db: &TestDb) {
        db.admin.batch_execute("ROLLBACK").await.unwrap();
    }

    /// Backend pids of this test's store connections (optionally only those waiting on a
    /// lock).
    async fn backends(db: &TestDb, waiting: bool) -> Vec<i32> {
        // The admin connection may be inside the transaction that holds the lock, and
        // activity statistics are snapshotted per transaction: drop the snapshot first.
        db.admin
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .unwrap();
        let rows = db
            .admin
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1
                   AND ($2 = false OR wait_event_type = 'Lock')",
                &[&db.application_name(), &waiting],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    async fn terminate(db: &TestDb, pids: &[i32]) {
        for pid in pids {
            db.admin
                .execute("SELECT pg_terminate_backend($1)", &[pid])
                .await
                .unwrap();
        }
        // Wait until the server has let them go.
        let deadline = Instant::now() + StdDuration::from_secs(5);
        while backends(db, false).await.iter().any(|p| pids.contains(p)) {
            assert!(Instant::now() < deadline, "backends did not exit");
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn statement_timeout_is_unavailable_and_changes_nothing() {
        let Some(db) = TestDb::new().await else {
            return;
        };
        let store = db
            .store_with(PgOptions {
                statement_timeout: Some(StdDuration::from_millis(300)),
                ..db.options()
            })
            .await;
        store.migrate().await.unwrap();
        let r = authorized("l1", "h1", "c1", None);
        store.create_login(&r).await.unwrap();

        lock_login(&db, "l1").await;
        let started = Instant::now();
        let consumed = store.consume_code(&h("c1"), at(1)).await;
        assert!(is_unavailable(&consumed), "{consumed:?}");
        assert!(started.elapsed() >= StdDuration::from_millis(250));
        let mut next = r.clone();
        next.version = r.version + 1;
        next.granted_scope = Some("changed".to_owned());
        let updated = store.update_login(&next, r.version).await;
        assert!(is_unavailable(&updated), "{updated:?}");
        let revoked = store.revoke_user_logins(&UserId::new("u1")).await;
        assert!(is_unavailable(&revoked), "{revoked:?}");
        release(&db).await;

        // Nothing was half-done, and the same pool serves the next calls.
        assert_eq!(store.login(&r.id).await.unwrap(), Some(r.clone()));
        assert!(matches!(
            store.consume_code(&h("c1"), at(1)).await.unwrap(),
            CodeRedemption::Redeemed(_)
        ));
        db.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn killed_connection_mid_statement_is_unavailable_and_changes_nothing() {
        let Some(db) = TestDb::new().await else {
            return;
        };
        let store = db.store_with(db.options()).await;
        store.migrate().await.unwrap();
        let r = authorized("l1", "h1", "c1", None);
        store.create_login(&r).await.unwrap();

        for op in ["consume", "update"] {
            lock_login(&db, "l1").await;
            let task = {
                let store = store.clone();
                let r = r.clone();
                tokio::spawn(async move {
                    if op == "consume" {
                        store.consume_code(&h("c1"), at(1)).await.map(|_| ())
                    } else {
                        let mut next = r.clone();
                        next.version = r.version + 1;
                        next.session = None;
                        store.update_login(&next, r.version).await.map(|_| ())
                    }
                })
            };
            // Wait until the store's statement is blocked on the lock, then kill it.
            let deadline = Instant::now() + StdDuration::from_secs(5);
            let pids = loop {
                let pids = backends(&db, true).await;
                if !pids.is_empty() {
                    break pids;
                }
                assert!(Instant::now() < deadline, "{op}: never blocked");
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            };
            terminate(&db, &pids).await;
            let outcome = task.await.unwrap();
            assert!(is_unavailable(&outcome), "{op}: {outcome:?}");
            release(&db).await;
            assert_eq!(store.login(&r.id).await.unwrap(), Some(r.clone()), "{op}");
        }

        // The pool replaced the dead connection: the next call works.
        assert!(matches!(
            store.consume_code(&h("c1"), at(1)).await.unwrap(),
            CodeRedemption::Redeemed(_)
        ));
        db.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_pool_recovers_after_every_connection_was_killed() {
        let Some(db) = TestDb::new().await else {
            return;
        };
        let store = db.store_with(db.options()).await;
        store.migrate().await.unwrap();
        // Open several connections.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .claim_once(&OnceKey::new("warm", &i.to_string()), at(60), at(0))
                    .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().unwrap());
        }
        let pids = backends(&db, false).await;
        assert!(!pids.is_empty());
        terminate(&db, &pids).await;
        // The driver learns that an idle connection was closed when its task next runs;
        // give it that moment (a call racing it would get one Unavailable).
        tokio::time::sleep(StdDuration::from_millis(50)).await;

        // Every call after it works (closed connections are dropped, new ones made).
        for i in 0..16 {
            assert!(
                store
                    .claim_once(&OnceKey::new("after", &i.to_string()), at(60), at(0))
                    .await
                    .unwrap()
            );
        }
        assert!(
            !store
                .claim_once(&OnceKey::new("warm", "0"), at(60), at(1))
                .await
                .unwrap()
        );
        db.finish().await;
    }

    #[tokio::test]
    async fn an_unreachable_database_is_unavailable() {
        // Port 1 on loopback: nothing listens there.
        let result = PgStore::connect_with(
            "postgres://postgres@127.0.0.1:1/postgres",
            PgOptions {
                connect_timeout: StdDuration::from_secs(2),
                ..PgOptions::default()
            },
        )
        .await;
        assert!(is_unavailable(&result), "{result:?}");
        let invalid = PgStore::connect("postgres://[bad").await;
        assert!(is_unavailable(&invalid), "{invalid:?}");
    }

    #[tokio::test]
    async fn corrupt_records_are_reported_not_panicked_on() {
        let Some(db) = TestDb::new().await else {
            return;
        };
        let store = db.store_with(db.options()).await;
        store.migrate().await.unwrap();
        store
            .create_user(&user("u1", "alice@example.org", None))
            .await
            .unwrap();
        store
            .create_login(&authorized("l1", "h1", "c1", None))
            .await
            .unwrap();
        db.admin
            .batch_execute(&format!(
                "UPDATE {} SET record = '{{\"id\": 5}}';
                 UPDATE {} SET record = '[]', code_redeemed = true;",
                db.table("fhirgate_users"),
                db.table("fhirgate_logins")
            ))
            .await
            .unwrap();
        let user = store.user(&UserId::new("u1")).await;
        assert!(matches!(user, Err(StoreError::Corrupt(_))), "{user:?}");
        let by_email = store.user_by_email("alice@example.org", None).await;
        assert!(
            matches!(by_email, Err(StoreError::Corrupt(_))),
            "{by_email:?}"
        );
        let login = store.login(&LoginId::new("l1")).await;
        assert!(matches!(login, Err(StoreError::Corrupt(_))), "{login:?}");
        // The refusal path reads the record too.
        let consumed = store.consume_code(&h("c1"), at(1)).await;
        assert!(
            matches!(consumed, Err(StoreError::Corrupt(_))),
            "{consumed:?}"
        );
        db.finish().await;
    }

    /// PostgreSQL cannot store NUL in text or in `jsonb` strings (`MemoryStore` can): such a
    /// write is a typed conflict, stores nothing, and the connection stays usable.
    #[tokio::test]
    async fn values_postgres_cannot_hold_are_a_conflict() {
        let Some(db) = TestDb::new().await else {
            return;
        };
        let store = db.store_with(db.options()).await;
        store.migrate().await.unwrap();
        let created = store
            .create_user(&user("u1", "a\0@example.org", None))
            .await;
        assert!(
            matches!(created, Err(StoreError::Conflict(_))),
            "{created:?}"
        );
        assert_eq!(store.user(&UserId::new("u1")).await.unwrap(), None);
        let mut r = authorized("l1", "h1", "c1", None);
        r.params.nonce = Some("n\0nce".to_owned());
        let created = store.create_login(&r).await;
        assert!(
            matches!(created, Err(StoreError::Conflict(_))),
            "{created:?}"
        );
        assert_eq!(store.login(&r.id).await.unwrap(), None);
        assert_eq!(store.login_by_handle(&h("h1")).await.unwrap(), None);
        r.params.nonce = Some("nonce".to_owned());
        store.create_login(&r).await.unwrap();
        db.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn migrate_is_idempotent_and_safe_to_race() {
        let Some(db) = TestDb::new().await else {
            return;
        };
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let store = db.store_with(db.options()).await;
            tasks.push(tokio::spawn(async move { store.migrate().await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let store = db.store_with(db.options()).await;
        store.migrate().await.unwrap();
        let rows = db
            .admin
            .query(
                &format!(
                    "SELECT version, name FROM {} ORDER BY version",
                    db.table("fhirgate_migrations")
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.get::<_, i32>(0), i as i32 + 1);
        }
        // The schema works.
        store
            .create_user(&user("u1", "alice@example.org", None))
            .await
            .unwrap();
        assert_eq!(store.purge_expired(at(0)).await.unwrap(), 0);
        db.finish().await;
    }

    #[tokio::test]
    async fn migration_3_moves_retired_refresh_hashes_out_of_the_records() {
        use fhirgate::model::ClientId;
        use fhirgate::store::RefreshRotation;
        let Some(db) = TestDb::new().await else {
            return;
        };
        let store = db.store_with(db.options()).await;
        store.migrate().await.unwrap();
        store
            .create_login(&granted("l1", "h1", "r1", Some("app")))
            .await
            .unwrap();
        let app = ClientId::new("app");
        let RefreshRotation::Rotated(rotated) = store
            .rotate_refresh(&h("r1"), &h("r2"), Some(&app), at(1))
            .await
            .unwrap()
        else {
            panic!("not rotated")
        };
        // Back to a version-2 database: the retired hash listed in the record, no flag.
        db.admin
            .batch_execute(&format!(
                "UPDATE {logins} SET record = jsonb_set(record, '{{refresh,retired}}',
                     jsonb_build_array('{r1}'::text));
                 ALTER TABLE {hashes} DROP COLUMN retired_refresh;
                 DELETE FROM {migrations} WHERE version = 3;",
                logins = db.table("fhirgate_logins"),
                hashes = db.table("fhirgate_login_hashes"),
                migrations = db.table("fhirgate_migrations"),
                r1 = h("r1").to_base64(),
            ))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        // The old token is still recognised as reuse, and the record lost its list.
        assert_eq!(
            store
                .rotate_refresh(&h("r1"), &h("r3"), Some(&app), at(2))
                .await
                .unwrap(),
            RefreshRotation::Reused(rotated.clone())
        );
        let raw: String = db
            .admin
            .query_one(
                &format!(
                    "SELECT record::text FROM {} WHERE id = 'l1'",
                    db.table("fhirgate_logins")
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(!raw.contains("retired"), "{raw}");
        db.finish().await;
    }
}
