//! `fhirgate::seed`: a seed document parsed, checked against itself and the password policy
//! with the demo server's messages, and loaded into a store — or refused before anything is
//! written.
#![cfg(feature = "seed")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhirgate::credential::password::PasswordPolicy;
use fhirgate::model::{ClientId, MembershipId, ProjectId, UserId};
use fhirgate::seed::{Seed, SeedProblem};
use fhirgate::store::Directory;
use fhirgate::{Engine, MemoryStore};
use serde_json::json;

fn engine(store: &MemoryStore) -> Engine {
    let mut config = fhirgate::Config::default();
    config.argon2.m_kib = 256;
    config.argon2.t = 1;
    Engine::builder()
        .store(store.clone())
        .config(config)
        .build()
        .unwrap()
}

fn valid() -> serde_json::Value {
    json!({
        "projects": [{ "id": "clinic", "name": "Clinic", "defaultPatientAccessPolicy": "read" }],
        "users": [
            { "id": "alice", "email": "Alice@Example.org", "password": "correct horse battery" },
            { "id": "bob", "email": "bob@example.org", "project": "clinic",
              "totpSecretBase32": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "mfaRequired": true }
        ],
        "accessPolicies": [{ "id": "read", "resources": [{ "resourceType": "Patient", "readonly": true }] }],
        "memberships": [
            { "id": "m1", "project": "clinic", "user": "alice", "profile": "Practitioner/a",
              "accessPolicy": "read" },
            { "id": "m2", "project": "clinic", "user": "bob", "profile": "Patient/b" },
            { "id": "m3", "project": "clinic", "user": "svc", "profile": "ClientApplication/svc" }
        ],
        "clients": [
            { "id": "spa", "project": "clinic", "authMethod": "none", "pkce": "required",
              "redirectUris": ["https://app.example.org/cb"], "allowedScopes": "openid user/*.rs" },
            { "id": "svc", "project": "clinic", "authMethod": "client_secret_basic",
              "secret": "0123456789abcdef0123", "allowedScopes": "system/*.rs" }
        ],
        "domains": [{ "domain": "Partner.Example", "identityProvider": {
            "authorizeUrl": "https://idp.example/authorize", "tokenUrl": "https://idp.example/token",
            "clientId": "fhirgate" } }],
        "google": { "clientIds": ["g-1"] }
    })
}

#[tokio::test]
async fn a_valid_seed_is_loaded_through_the_admin_trait() {
    let store = MemoryStore::new();
    let engine = engine(&store);
    let seed = Seed::from_value(valid()).unwrap();
    assert!(seed.has_identity_providers());
    let mut config = fhirgate::Config::default();
    seed.configure(&mut config);
    assert_eq!(config.google.client_ids, vec!["g-1".to_owned()]);

    let summary = seed.load_for(&engine, &store).await.unwrap();
    assert_eq!(summary.users.len(), 2);
    assert_eq!(summary.users[0].email, "alice@example.org");
    assert_eq!(summary.users[0].profiles, vec!["Practitioner/a".to_owned()]);
    assert!(summary.users[1].totp && summary.users[1].mfa_required);
    assert_eq!(summary.sign_in_client().unwrap().id, "spa");
    let listing = summary.to_string();
    assert!(listing.contains("alice@example.org") && listing.contains("client_id svc"));

    let alice = store.user(&UserId::new("alice")).await.unwrap().unwrap();
    assert!(alice.password_hash.is_some());
    let bob = store.user(&UserId::new("bob")).await.unwrap().unwrap();
    assert_eq!(bob.project, Some(ProjectId::new("clinic")));
    assert!(bob.mfa_enrolled());
    let m1 = store
        .membership(&MembershipId::new("m1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m1.access_policy.unwrap().as_str(), "read");
    let svc = store.client(&ClientId::new("svc")).await.unwrap().unwrap();
    assert!(svc.secret.is_some());
    assert!(store.domain("partner.example").await.unwrap().is_some());
    let clinic = store
        .project(&ProjectId::new("clinic"))
        .await
        .unwrap()
        .unwrap();
    assert!(clinic.open_registration());
    assert_eq!(
        clinic.default_patient_access_policy.unwrap().as_str(),
        "read"
    );

    // A second instance seeding the same store keeps the users it finds.
    let again = Seed::from_value(valid()).unwrap();
    let summary = again.load_for(&engine, &store).await.unwrap();
    assert_eq!(
        summary.existing_users,
        vec!["alice".to_owned(), "bob".to_owned()]
    );
}

#[tokio::test]
async fn a_refused_seed_writes_nothing_and_names_the_entry() {
    let mut doc = valid();
    doc["memberships"][1]["accessPolicy"] = json!("nope");
    let store = MemoryStore::new();
    let engine = engine(&store);
    let error = Seed::from_value(doc)
        .unwrap()
        .load_for(&engine, &store)
        .await
        .unwrap_err();
    assert_eq!(error.at, "memberships[1]");
    assert!(matches!(
        error.problem,
        SeedProblem::UnknownAccessPolicy { .. }
    ));
    assert_eq!(
        error.to_string(),
        "memberships[1]: accessPolicy \"nope\" is not in accessPolicies"
    );
    // Validation runs before the first write: not even the project was stored.
    assert!(
        store
            .project(&ProjectId::new("clinic"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.user(&UserId::new("alice")).await.unwrap().is_none());

    let mut doc = valid();
    doc["projects"][0]["defaultPatientAccessPolicy"] = json!("ghost");
    let error = Seed::from_value(doc)
        .unwrap()
        .load_for(&engine, &store)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "projects[0]: accessPolicy \"ghost\" is not in accessPolicies"
    );
}

#[test]
fn every_rule_refuses_with_the_demo_servers_text() {
    let policy = PasswordPolicy::default();
    let project = json!([{ "id": "p", "name": "P" }]);
    let client = |extra: serde_json::Value| {
        let mut c = json!({ "id": "c", "project": "p", "allowedScopes": "openid" });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({ "projects": project, "clients": [c] })
    };
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            json!({ "projects": [{ "id": "bad id", "name": "x" }] }),
            "projects[0]: id \"bad id\" must be 1-64 characters of A-Z a-z 0-9 - .",
        ),
        (
            json!({ "projects": [{ "id": "p", "name": "x" }, { "id": "p", "name": "y" }] }),
            "projects[1]: duplicate id \"p\"",
        ),
        (
            json!({ "accessPolicies": [{ "id": "a", "resources": [{ "resourceType": "patient" }] }] }),
            "accessPolicies[0].resources[0]: resourceType \"patient\" must be * or a FHIR resource type",
        ),
        (
            json!({ "users": [{ "id": "u", "email": "nobody" }] }),
            "users[0]: email \"nobody\" is not an email address",
        ),
        (
            json!({ "users": [{ "id": "u", "email": "a@x.org" }, { "id": "v", "email": "A@x.org" }] }),
            "users[1]: email a@x.org is already used",
        ),
        (
            json!({ "users": [{ "id": "u", "email": "a@x.org", "project": "q" }] }),
            "users[0]: project \"q\" is not in projects",
        ),
        (
            json!({ "users": [{ "id": "u", "email": "a@x.org", "password": "short" }] }),
            "users[0]: password refused: ",
        ),
        (
            json!({ "users": [{ "id": "u", "email": "a@x.org", "totpSecretBase32": "1111" }] }),
            "users[0]: totpSecretBase32 is not base32 (A-Z and 2-7)",
        ),
        (
            json!({ "users": [{ "id": "u", "email": "a@x.org", "totpSecretBase32": "JBSWY3DP" }] }),
            "users[0]: totpSecretBase32 is 5 bytes; at least 16 (26 base32 characters) are required",
        ),
        (
            json!({ "projects": project, "users": [{ "id": "c", "email": "a@x.org" }],
                 "clients": [{ "id": "c", "project": "p", "allowedScopes": "openid" }] }),
            "clients[0]: id \"c\" is also a user id",
        ),
        (
            client(json!({ "allowedScopes": "patient/Observation.xyz" })),
            "clients[0]: allowedScopes: ",
        ),
        (
            client(json!({ "defaultScope": "openid user/*.rs" })),
            "clients[0]: defaultScope is not within allowedScopes",
        ),
        (
            client(json!({ "redirectUris": ["https://a.example/cb#x"] })),
            "clients[0]: redirect URI \"https://a.example/cb#x\" has a fragment",
        ),
        (
            client(json!({ "redirectUris": ["not a url"] })),
            "clients[0]: redirect URI \"not a url\": ",
        ),
        (
            client(
                json!({ "authMethod": "none", "pkce": "required", "secret": "0123456789abcdef" }),
            ),
            "clients[0]: a public client (authMethod none) has no secret, jwks or jwksUri",
        ),
        (
            client(json!({ "authMethod": "none", "pkce": "optional" })),
            "clients[0]: a public client must use PKCE (pkce \"required\")",
        ),
        (
            client(json!({ "authMethod": "client_secret_post", "secret": "short" })),
            "clients[0]: secret must be at least 16 characters",
        ),
        (
            client(json!({ "authMethod": "client_secret_basic" })),
            "clients[0]: authMethod client_secret_basic needs a secret",
        ),
        (
            client(json!({ "authMethod": "private_key_jwt" })),
            "clients[0]: private_key_jwt needs jwks or jwksUri",
        ),
        (
            client(json!({ "authMethod": "private_key_jwt", "jwksUri": "http://a.example/jwks" })),
            "clients[0]: jwksUri must be https",
        ),
        (
            json!({ "projects": [{ "id": "p", "name": "P" }, { "id": "q", "name": "Q" }],
                 "users": [{ "id": "u", "email": "a@x.org", "project": "q" }],
                 "memberships": [{ "id": "m", "project": "p", "user": "u", "profile": "Patient/1" }] }),
            "memberships[0]: user \"u\" belongs to project \"q\" only",
        ),
        (
            json!({ "projects": project,
                 "clients": [{ "id": "c", "project": "p", "allowedScopes": "openid" }],
                 "memberships": [{ "id": "m", "project": "p", "user": "c", "profile": "Patient/1" }] }),
            "memberships[0]: a client's membership has profile ClientApplication/c and the client's project",
        ),
        (
            json!({ "projects": project,
                 "memberships": [{ "id": "m", "project": "p", "user": "ghost", "profile": "Patient/1" }] }),
            "memberships[0]: user \"ghost\" is neither in users nor a client id",
        ),
        (
            json!({ "domains": [{ "domain": "a@b", "identityProvider": {
                    "authorizeUrl": "https://i/a", "tokenUrl": "https://i/t", "clientId": "c" } }] }),
            "domains[0]: domain \"a@b\" is not a domain name",
        ),
    ];
    for (doc, expected) in cases {
        let error = Seed::from_value(doc.clone())
            .unwrap()
            .validate(&policy)
            .unwrap_err();
        assert!(error.to_string().starts_with(expected), "{doc}: {error}");
    }
}

#[test]
fn a_document_that_is_not_a_seed_is_refused_with_its_position() {
    let typo = r#"{ "users": [{ "id": "u", "email": "u@example.org", "pasword": "x" }] }"#;
    let error = Seed::from_json(typo).unwrap_err();
    assert!(
        error.to_string().contains("unknown field `pasword`"),
        "{error}"
    );
    assert!(matches!(error.problem, SeedProblem::Parse { line: 1, .. }));
    let error = Seed::from_json("{ \"projects\": [").unwrap_err();
    assert!(error.to_string().contains("EOF while parsing"), "{error}");
    let error = Seed::from_file(std::path::Path::new("/no/such/seed.json")).unwrap_err();
    assert!(
        error.to_string().contains("cannot read seed file"),
        "{error}"
    );
}

#[test]
fn secrets_in_a_seed_are_not_in_its_debug_output() {
    let seed = Seed::from_value(valid()).unwrap();
    let shown = format!("{seed:?}");
    assert!(!shown.contains("correct horse battery"), "{shown}");
    assert!(!shown.contains("0123456789abcdef0123"), "{shown}");
    assert!(!shown.contains("JBSWY3DP"), "{shown}");
}
