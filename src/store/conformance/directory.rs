//! [`Directory`](crate::store::Directory) and [`DirectoryAdmin`](crate::store::DirectoryAdmin): scopes of emails, compare-and-swap updates, listings and round trips.

use super::fixtures::*;

use super::Stores;
use crate::model::*;

/// Users are unique per scope.
pub async fn users_are_unique_per_scope(s: &Stores) {
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

/// Update user is compare and swap.
pub async fn update_user_is_compare_and_swap(s: &Stores) {
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

/// Memberships are listed per user in id order.
pub async fn memberships_are_listed_per_user_in_id_order(s: &Stores) {
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

/// Memberships are found by external id within a project.
pub async fn memberships_are_found_by_external_id_within_a_project(s: &Stores) {
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

/// Directory records round trip.
pub async fn directory_records_round_trip(s: &Stores) {
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

/// Domains are keyed by lower case.
pub async fn domains_are_keyed_by_lower_case(s: &Stores) {
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
