use proptest::prelude::*;

use super::*;
use crate::model::{AccessPolicy, AccessPolicyId, Interaction, Reference, ResourcePolicy};

fn set(text: &str) -> ScopeSet {
    ScopeSet::parse(text).unwrap()
}

fn err(text: &str) -> ScopeError {
    ScopeSet::parse(text).unwrap_err()
}

fn resource(token: &str) -> ResourceScope {
    ResourceScope::parse(token).unwrap()
}

fn policy(resources: Vec<ResourcePolicy>) -> AccessPolicy {
    AccessPolicy {
        resources,
        ..AccessPolicy::new(AccessPolicyId::new("p"))
    }
}

fn readonly(resource_type: &str) -> ResourcePolicy {
    ResourcePolicy {
        readonly: true,
        ..ResourcePolicy::any(resource_type)
    }
}

fn only(resource_type: &str, interactions: &[Interaction]) -> ResourcePolicy {
    ResourcePolicy {
        interactions: interactions.to_vec(),
        ..ResourcePolicy::any(resource_type)
    }
}

fn reference(text: &str) -> Reference {
    Reference::parse(text).unwrap()
}

// ---------------------------------------------------------------- grammar

#[test]
fn empty_and_whitespace_text_is_the_empty_set() {
    for text in ["", " ", " \t\r\n  ", "\u{c}"] {
        let s = set(text);
        assert!(s.is_empty(), "{text:?}");
        assert_eq!(s.len(), 0);
        assert_eq!(s.to_string(), "");
        assert_eq!(s, ScopeSet::empty());
        assert_eq!(s, ScopeSet::default());
    }
}

#[test]
fn known_simple_scopes_parse_and_render_in_canonical_order() {
    let s = set(
        "launch/encounter launch/patient launch online_access offline_access email profile fhirUser openid",
    );
    assert_eq!(
        s.iter().cloned().collect::<Vec<_>>(),
        vec![
            Scope::OpenId,
            Scope::FhirUser,
            Scope::Profile,
            Scope::Email,
            Scope::OfflineAccess,
            Scope::OnlineAccess,
            Scope::Launch,
            Scope::LaunchPatient,
            Scope::LaunchEncounter,
        ]
    );
    assert_eq!(
        s.to_string(),
        "openid fhirUser profile email offline_access online_access launch launch/patient launch/encounter"
    );
    assert!(s.contains_openid());
    assert!(!set("profile").contains_openid());
}

#[test]
fn tokens_split_on_whitespace_runs_and_duplicates_collapse() {
    let s = set("  openid\t\tpatient/Observation.rs \n openid   launch/patient ");
    assert_eq!(s.len(), 3);
    assert_eq!(
        s.to_string(),
        "openid launch/patient patient/Observation.rs"
    );
}

#[test]
fn other_scopes_are_exact_tokens() {
    for token in [
        "phone",
        "address",
        "offline",
        "fhiruser",
        "OpenId",
        "launch/other",
        "Patient/Observation.rs",
        "patients/Observation.rs",
        "fhircast/Patient-open.read",
        "https://example.org/scope#x",
        "a!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
    ] {
        assert_eq!(
            Scope::parse(token).unwrap(),
            Scope::Other(token.to_owned()),
            "{token}"
        );
        assert_eq!(set(token).to_string(), token);
    }
    assert!(!set("phone").contains(&Scope::Other("Phone".into())));
    assert!(set("phone").contains(&Scope::Other("phone".into())));
}

#[test]
fn v2_resource_scopes() {
    let s = resource("patient/Observation.rs");
    assert_eq!(s.context, Context::Patient);
    assert_eq!(s.resource_type, ResourceType::Named("Observation".into()));
    assert_eq!(s.permissions, Permissions::READ.union(Permissions::SEARCH));
    assert_eq!(s.query, None);
    assert!(!s.is_v1_form());

    let cases = [
        ("user/Observation.c", "c"),
        ("user/Observation.r", "r"),
        ("user/Observation.u", "u"),
        ("user/Observation.d", "d"),
        ("user/Observation.s", "s"),
        ("user/Observation.cud", "cud"),
        ("user/Observation.crs", "crs"),
        ("user/Observation.uds", "uds"),
        ("system/*.cruds", "cruds"),
    ];
    for (token, letters) in cases {
        let s = resource(token);
        assert_eq!(s.permissions.letters(), letters, "{token}");
        assert_eq!(s.to_string(), token);
    }
    assert_eq!(resource("system/*.cruds").resource_type, ResourceType::Any);
    assert_eq!(resource("system/*.cruds").context, Context::System);
    assert_eq!(resource("user/Patient.r").context, Context::User);
}

#[test]
fn v1_scopes_map_to_v2_letters_and_render_back_as_v1() {
    let cases = [
        ("patient/Observation.read", "rs"),
        ("user/Observation.write", "cud"),
        ("system/*.*", "cruds"),
        ("patient/*.read", "rs"),
    ];
    for (token, letters) in cases {
        let s = resource(token);
        assert_eq!(s.permissions.letters(), letters, "{token}");
        assert!(s.is_v1_form());
        assert_eq!(s.to_string(), token);
        // the same grant written in v2 renders in v2
        let v2 = token.rsplit_once('.').unwrap().0.to_owned() + "." + letters;
        assert_eq!(resource(&v2).to_string(), v2);
        assert_ne!(resource(&v2), s);
    }
    assert_eq!(
        resource("user/Observation.write").permissions,
        Permissions::V1_WRITE
    );
    assert_eq!(resource("system/*.*").permissions, Permissions::ALL);
}

#[test]
fn both_spellings_of_one_grant_are_one_scope_kept_in_v1_form() {
    for text in [
        "patient/Observation.read patient/Observation.rs",
        "patient/Observation.rs patient/Observation.read",
    ] {
        let s = set(text);
        assert_eq!(s.len(), 1);
        assert_eq!(s.to_string(), "patient/Observation.read");
        assert!(s.contains(&Scope::Resource(resource("patient/Observation.rs"))));
        assert!(s.contains(&Scope::Resource(resource("patient/Observation.read"))));
    }
}

#[test]
fn v1_form_is_dropped_once_permissions_change() {
    let s = resource("patient/Observation.read");
    let narrowed = s.intersect(&resource("patient/Observation.r")).unwrap();
    assert_eq!(narrowed.to_string(), "patient/Observation.r");
    assert!(!narrowed.is_v1_form());
    assert_eq!(narrowed, resource("patient/Observation.r"));
    let built = ResourceScope::new(Context::User, ResourceType::Any, Permissions::ALL).in_v1_form();
    assert_eq!(built.to_string(), "user/*.*");
    let built =
        ResourceScope::new(Context::User, ResourceType::Any, Permissions::READ).in_v1_form();
    assert_eq!(built.to_string(), "user/*.r");
    assert_eq!(built, resource("user/*.r"));
}

#[test]
fn out_of_order_or_undefined_permissions_are_errors_never_reinterpreted() {
    let e = err("patient/Observation.dus");
    assert_eq!(
        e.to_string(),
        r#"Invalid scope "patient/Observation.dus": permissions must be a subset of "cruds" in that order"#
    );
    assert_eq!(e.token, "patient/Observation.dus");
    assert_eq!(e.reason, ScopeErrorReason::InvalidPermissions);
    for bad in [
        "patient/Observation.dus",
        "patient/Observation.sr",
        "patient/Observation.rr",
        "patient/Observation.crudss",
        "patient/Observation.x",
        "patient/Observation.READ",
        "patient/Observation.Read",
        "patient/Observation.reads",
        "patient/Observation.rs.x",
        "patient/Observation.r*",
        "patient/Observation.**",
        "user/*.all",
    ] {
        assert_eq!(
            err(bad).reason,
            ScopeErrorReason::InvalidPermissions,
            "{bad}"
        );
        assert_eq!(err(bad).token, bad);
    }
    assert_eq!(Permissions::from_letters("dus"), None);
    assert_eq!(Permissions::from_letters("sr"), None);
    assert_eq!(Permissions::from_letters("rr"), None);
    assert_eq!(Permissions::from_letters(""), Some(Permissions::NONE));
    assert_eq!(Permissions::from_letters("cruds"), Some(Permissions::ALL));
}

#[test]
fn malformed_resource_scopes_are_reported_with_their_reason() {
    let cases = [
        (
            "patient/Observation.",
            ScopeErrorReason::EmptyPermissions,
            r#"Invalid scope "patient/Observation.": permissions must not be empty"#,
        ),
        (
            "patient/Observation",
            ScopeErrorReason::MissingPermissions,
            r#"Invalid scope "patient/Observation": expected "." and permissions after the resource type"#,
        ),
        (
            "patient/",
            ScopeErrorReason::MissingPermissions,
            r#"Invalid scope "patient/": expected "." and permissions after the resource type"#,
        ),
        (
            "user/observation.rs",
            ScopeErrorReason::InvalidResourceType,
            r#"Invalid scope "user/observation.rs": the resource type must be a FHIR resource type name or "*""#,
        ),
        (
            "patient/Observation.rs?",
            ScopeErrorReason::InvalidQuery,
            r#"Invalid scope "patient/Observation.rs?": the query must be param=value pairs joined by "&""#,
        ),
    ];
    for (token, reason, text) in cases {
        let e = err(token);
        assert_eq!(e.reason, reason, "{token}");
        assert_eq!(e.to_string(), text);
    }
    for bad_type in [
        "patient/.rs",
        "patient/**.rs",
        "patient/Obs1.rs",
        "patient/Obs_ervation.rs",
        "system/Observation/x.rs",
        "user/*Observation.rs",
    ] {
        assert_eq!(
            err(bad_type).reason,
            ScopeErrorReason::InvalidResourceType,
            "{bad_type}"
        );
    }
    for bad_query in [
        "patient/Observation.rs?code",
        "patient/Observation.rs?=x",
        "patient/Observation.rs?code=",
        "patient/Observation.rs?a=1&&b=2",
        "patient/Observation.rs?a=1&",
        "patient/Observation.rs?&a=1",
        "patient/Observation.rs?co de=1",
        "patient/Observation.rs?co/de=1",
    ] {
        // "co de" is split into two tokens; the first is the bad one
        assert_eq!(
            err(bad_query).reason,
            ScopeErrorReason::InvalidQuery,
            "{bad_query}"
        );
    }
}

#[test]
fn a_bad_token_fails_the_whole_set() {
    let e = err("openid profile patient/Observation.dus launch");
    assert_eq!(e.token, "patient/Observation.dus");
    assert!("openid user/Observation.x".parse::<ScopeSet>().is_err());
}

#[test]
fn invalid_characters_are_errors() {
    for bad in [
        "open\"id",
        "a\\b",
        "caf\u{e9}",
        "openid\u{a0}profile",
        "patient/Observation.rs?code=\u{e9}",
        "nul\u{0}",
        "del\u{7f}",
        "\u{b}",
    ] {
        let e = err(bad);
        assert_eq!(e.reason, ScopeErrorReason::InvalidCharacter, "{bad:?}");
        assert_eq!(e.token, bad);
    }
    assert_eq!(
        err("a\\b").to_string(),
        r#"Invalid scope "a\\b": contains a character that is not allowed in a scope"#
    );
    assert_eq!(
        Scope::parse("").unwrap_err().reason,
        ScopeErrorReason::Empty
    );
}

#[test]
fn input_is_capped() {
    let hundred = vec!["openid"; 100].join(" ");
    assert_eq!(set(&hundred).len(), 1);
    let too_many = vec!["openid"; 101].join(" ");
    let e = err(&too_many);
    assert_eq!(e.reason, ScopeErrorReason::TooManyScopes);
    assert_eq!(e.to_string(), "Invalid scope: more than 100 scopes");

    let long = format!("x{}", " ".repeat(MAX_SCOPE_TEXT_LEN - 1));
    assert_eq!(set(&long).to_string(), "x");
    let too_long = "x".repeat(MAX_SCOPE_TEXT_LEN + 1);
    let e = err(&too_long);
    assert_eq!(e.reason, ScopeErrorReason::TooLong);
    assert_eq!(e.token, "");
    assert_eq!(
        e.to_string(),
        "Invalid scope: the scope text is longer than 4096 bytes"
    );
}

#[test]
fn queries_are_normalised() {
    let a = resource("patient/Observation.rs?code=b&category=a");
    let b = resource("patient/Observation.rs?category=a&code=b&code=b");
    assert_eq!(a, b);
    assert_eq!(a.query.as_deref(), Some("category=a&code=b"));
    assert_eq!(a.to_string(), "patient/Observation.rs?category=a&code=b");
    let s =
        set("patient/Observation.rs?code=b&category=a patient/Observation.rs?category=a&code=b");
    assert_eq!(s.len(), 1);
    let v1 = resource("patient/Observation.read?_has:Group:member:_id=g1");
    assert_eq!(
        v1.to_string(),
        "patient/Observation.read?_has:Group:member:_id=g1"
    );
    let built = ResourceScope::new(
        Context::User,
        ResourceType::Named("Observation".into()),
        Permissions::READ,
    )
    .with_query("z=1&a=2")
    .unwrap();
    assert_eq!(built.to_string(), "user/Observation.r?a=2&z=1");
    let e = ResourceScope::new(Context::User, ResourceType::Any, Permissions::READ)
        .with_query("nope")
        .unwrap_err();
    assert_eq!(e.reason, ScopeErrorReason::InvalidQuery);
    assert_eq!(e.token, "user/*.r?nope");
}

#[test]
fn resource_scope_parse_refuses_non_resource_scopes() {
    let e = ResourceScope::parse("openid").unwrap_err();
    assert_eq!(e.reason, ScopeErrorReason::NotResourceScope);
    assert_eq!(
        e.to_string(),
        r#"Invalid scope "openid": not a patient/, user/ or system/ resource scope"#
    );
}

#[test]
fn display_round_trips_through_parse() {
    for text in [
        "openid fhirUser launch/patient patient/*.read patient/Observation.rs?category=laboratory user/Patient.cud system/*.* phone fhircast/x",
        "user/Observation.write user/Patient.c",
        "patient/Observation.read?code=1 patient/Observation.read?code=2",
    ] {
        let s = set(text);
        let again = set(&s.to_string());
        assert_eq!(again, s);
        assert_eq!(again.to_string(), s.to_string());
        let via_from_str: ScopeSet = s.to_string().parse().unwrap();
        assert_eq!(via_from_str, s);
    }
    assert_eq!(
        set("user/Patient.cud phone patient/Observation.rs?category=laboratory openid patient/*.read")
            .to_string(),
        "openid patient/*.read patient/Observation.rs?category=laboratory user/Patient.cud phone"
    );
}

#[test]
fn serde_uses_the_text_form() {
    let s = set("patient/Observation.read openid");
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(json, r#""openid patient/Observation.read""#);
    let back: ScopeSet = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    let bad = serde_json::from_str::<ScopeSet>(r#""patient/Observation.dus""#).unwrap_err();
    assert!(
        bad.to_string()
            .contains(r#"Invalid scope "patient/Observation.dus""#),
        "{bad}"
    );
    let empty: ScopeSet = serde_json::from_str(r#""""#).unwrap();
    assert!(empty.is_empty());
    let scope: Scope = serde_json::from_str(r#""user/*.write""#).unwrap();
    assert_eq!(scope, Scope::Resource(resource("user/*.write")));
    assert_eq!(serde_json::to_string(&scope).unwrap(), r#""user/*.write""#);
    assert!(serde_json::from_str::<Scope>(r#""user/*.x""#).is_err());
    assert_eq!(
        format!("{s:?}"),
        r#"ScopeSet("openid patient/Observation.read")"#
    );
}

#[test]
fn permissions_bitset() {
    let p = Permissions::from_letters("cd").unwrap();
    assert!(p.contains(Interaction::Create));
    assert!(p.contains(Interaction::Delete));
    for i in [
        Interaction::Read,
        Interaction::Vread,
        Interaction::History,
        Interaction::Update,
        Interaction::Search,
    ] {
        assert!(!p.contains(i), "{i:?}");
    }
    assert!(Permissions::READ.contains(Interaction::Vread));
    assert!(Permissions::READ.contains(Interaction::History));
    assert!(p.contains_letter('c'));
    assert!(!p.contains_letter('r'));
    assert!(!p.contains_letter('x'));
    assert_eq!(p.letters(), "cd");
    assert_eq!(Permissions::ALL.letters(), "cruds");
    assert_eq!(Permissions::NONE.letters(), "");
    assert!(Permissions::NONE.is_empty());
    assert_eq!(
        Permissions::V1_READ.intersection(Permissions::ALL),
        Permissions::V1_READ
    );
    assert_eq!(
        Permissions::V1_READ.union(Permissions::V1_WRITE),
        Permissions::ALL
    );
    assert!(Permissions::V1_READ.is_subset(Permissions::ALL));
    assert!(!Permissions::ALL.is_subset(Permissions::V1_READ));
    assert!(Permissions::NONE.is_subset(Permissions::NONE));
    assert_eq!(
        Permissions::from_interactions(&[Interaction::History, Interaction::Update]).letters(),
        "ru"
    );
    assert_eq!(format!("{p:?}"), r#"Permissions("cd")"#);
    assert_eq!(p.to_string(), "cd");
    assert_eq!(Permissions::V1_WRITE.v1_name(), Some("write"));
    assert_eq!(p.v1_name(), None);
}

// ---------------------------------------------------------------- intersect / covers

fn check_intersection(a: &str, b: &str, expected: &str) {
    let (a, b) = (set(a), set(b));
    let both = a.intersect(&b);
    assert_eq!(both.to_string(), expected, "{a} ∩ {b}");
    assert!(a.covers(&both), "{a} covers {both}");
    assert!(b.covers(&both), "{b} covers {both}");
}

#[test]
fn intersection_examples() {
    check_intersection(
        "patient/*.rs",
        "patient/Observation.cruds",
        "patient/Observation.rs",
    );
    check_intersection(
        "patient/Observation.cruds",
        "patient/*.rs",
        "patient/Observation.rs",
    );
    // different contexts never meet
    check_intersection("patient/Observation.rs", "user/Observation.rs", "");
    check_intersection("system/*.cruds", "user/*.cruds", "");
    // different concrete types never meet
    check_intersection("user/Observation.rs", "user/Patient.rs", "");
    // no common letter
    check_intersection("user/Observation.cd", "user/Observation.rs", "");
    check_intersection(
        "user/Observation.cud",
        "user/Observation.cruds",
        "user/Observation.cud",
    );
    check_intersection("user/*.cud", "user/*.rs", "");
    check_intersection("user/*.crs", "user/*.rud", "user/*.r");
    // queries: conjunction
    check_intersection(
        "patient/Observation.rs?category=laboratory",
        "patient/Observation.rs?code=123",
        "patient/Observation.rs?category=laboratory&code=123",
    );
    check_intersection(
        "patient/Observation.rs?category=laboratory",
        "patient/*.cruds",
        "patient/Observation.rs?category=laboratory",
    );
    check_intersection(
        "patient/*.cruds",
        "patient/Observation.rs?category=laboratory",
        "patient/Observation.rs?category=laboratory",
    );
    check_intersection(
        "patient/Observation.rs?category=laboratory",
        "patient/Observation.r?category=laboratory",
        "patient/Observation.r?category=laboratory",
    );
    // simple and other scopes: present in both
    check_intersection(
        "openid profile email phone offline_access",
        "openid email phone launch",
        "openid email phone",
    );
    check_intersection("openid", "", "");
    check_intersection("", "openid user/*.cruds", "");
}

#[test]
fn intersection_is_minimal() {
    check_intersection(
        "patient/*.rs patient/Observation.r patient/Observation.rs?code=1",
        "patient/*.cruds",
        "patient/*.rs",
    );
    check_intersection(
        "user/Observation.rs",
        "user/*.r user/Observation.s user/Observation.rs",
        "user/Observation.rs",
    );
    // several results, none within another
    check_intersection(
        "user/*.cruds",
        "user/Observation.rs user/Patient.cu",
        "user/Observation.rs user/Patient.cu",
    );
}

#[test]
fn intersection_keeps_the_left_spelling() {
    check_intersection(
        "patient/Observation.read openid",
        "patient/*.cruds openid",
        "openid patient/Observation.read",
    );
    check_intersection(
        "patient/Observation.rs openid",
        "patient/*.* openid",
        "openid patient/Observation.rs",
    );
    check_intersection("user/*.*", "user/Observation.cud", "user/Observation.write");
    check_intersection("user/*.*", "user/Observation.cu", "user/Observation.cu");
}

#[test]
fn coverage() {
    let a = set("patient/*.rs");
    assert!(a.covers(&set("patient/Observation.r")));
    assert!(a.covers(&set("patient/Observation.rs?code=1")));
    assert!(a.covers(&set("patient/*.s")));
    assert!(!a.covers(&set("patient/Observation.c")));
    assert!(!a.covers(&set("user/Observation.r")));
    assert!(!set("patient/Observation.rs").covers(&set("patient/*.r")));
    // letters may come from several scopes
    assert!(set("user/Observation.rs user/*.cud").covers(&set("user/Observation.cruds")));
    assert!(!set("user/Observation.rs user/Patient.cud").covers(&set("user/Observation.cruds")));
    // a query restricts: it covers only requests carrying all its pairs
    let q = set("patient/Observation.rs?category=lab");
    assert!(!q.covers(&set("patient/Observation.rs")));
    assert!(q.covers(&set("patient/Observation.r?category=lab&code=1")));
    assert!(!q.covers(&set("patient/Observation.r?category=vital")));
    // simple scopes must be present
    assert!(!ScopeSet::empty().covers(&set("openid")));
    assert!(set("openid phone").covers(&set("phone")));
    assert!(!set("openid phone").covers(&set("email")));
    assert!(set("openid").covers(&ScopeSet::empty()));
    // spelling does not matter
    assert!(set("user/*.read").covers(&set("user/*.rs")));
    assert!(set("user/*.rs").covers(&set("user/*.read")));
}

// ---------------------------------------------------------------- narrow_to_policy

#[test]
fn narrowing_keeps_only_allowed_letters() {
    let p = policy(vec![
        readonly("Observation"),
        ResourcePolicy::any("Patient"),
    ]);
    let s = set("openid phone patient/Observation.cruds patient/Patient.rs user/Condition.rs");
    assert_eq!(
        s.narrow_to_policy(&p).to_string(),
        "openid patient/Observation.rs patient/Patient.rs phone"
    );
    // v1 spelling survives while intact
    assert_eq!(
        set("patient/Observation.* patient/Patient.read")
            .narrow_to_policy(&p)
            .to_string(),
        "patient/Observation.read patient/Patient.read"
    );
    // interactions lists: letters of the listed interactions only
    let p = policy(vec![only(
        "Observation",
        &[Interaction::History, Interaction::Create],
    )]);
    assert_eq!(
        set("user/Observation.cruds")
            .narrow_to_policy(&p)
            .to_string(),
        "user/Observation.cr"
    );
    // readonly with a write interaction listed gives nothing for it
    let p = policy(vec![ResourcePolicy {
        readonly: true,
        interactions: vec![Interaction::Create, Interaction::Search],
        ..ResourcePolicy::any("Observation")
    }]);
    assert_eq!(
        set("user/Observation.cruds")
            .narrow_to_policy(&p)
            .to_string(),
        "user/Observation.s"
    );
    // nothing allowed: resource scopes go, others stay
    assert_eq!(
        set("openid user/*.cruds")
            .narrow_to_policy(&policy(vec![]))
            .to_string(),
        "openid"
    );
}

#[test]
fn narrowing_expands_a_wildcard_scope_over_the_policy_types() {
    let p = policy(vec![
        readonly("Observation"),
        ResourcePolicy::any("Patient"),
    ]);
    assert_eq!(
        set("user/*.cruds").narrow_to_policy(&p).to_string(),
        "user/Observation.rs user/Patient.cruds"
    );
    assert_eq!(
        set("user/*.*").narrow_to_policy(&p).to_string(),
        "user/Observation.read user/Patient.*"
    );
    assert_eq!(
        set("patient/*.cu?category=lab")
            .narrow_to_policy(&p)
            .to_string(),
        "patient/Patient.cu?category=lab"
    );
    // a policy `*` entry keeps the wildcard, and concrete types add what it lacks
    let p = policy(vec![readonly("*"), ResourcePolicy::any("Observation")]);
    assert_eq!(
        set("user/*.cruds").narrow_to_policy(&p).to_string(),
        "user/*.rs user/Observation.cruds"
    );
    assert_eq!(
        set("user/*.rs").narrow_to_policy(&p).to_string(),
        "user/*.rs"
    );
    assert_eq!(
        set("user/Patient.cruds").narrow_to_policy(&p).to_string(),
        "user/Patient.rs"
    );
    let full = AccessPolicy::full_access(AccessPolicyId::new("f"));
    let s = set("openid patient/*.read user/Observation.cud");
    assert_eq!(s.narrow_to_policy(&full), s);
    // policy types that are not resource type names are not turned into scopes
    let p = policy(vec![ResourcePolicy::any("bad type")]);
    assert_eq!(set("user/*.rs").narrow_to_policy(&p).to_string(), "");
}

// ---------------------------------------------------------------- effective_policy

#[test]
fn without_resource_scopes_nothing_is_allowed() {
    // Attack: a token for `openid offline_access` (or a refresh narrowed to `openid`) must not
    // reach resources because the membership's policy would allow them.
    let mut p = policy(vec![
        ResourcePolicy {
            criteria: Some("Observation?status=final".into()),
            ..readonly("Observation")
        },
        ResourcePolicy {
            compartment: Some(reference("Organization/9")),
            ..ResourcePolicy::any("Patient")
        },
    ]);
    p.compartment = Some(reference("Organization/1"));
    for scopes in [
        "openid offline_access",
        "openid fhirUser",
        "",
        "launch/patient",
    ] {
        let e = effective_policy(&p, &set(scopes), None).unwrap();
        assert_eq!(e.entries(), &[], "{scopes:?}");
        assert!(!e.allows("Observation", Interaction::Search));
        assert!(!e.allows("Patient", Interaction::Read));
    }
    let full = AccessPolicy::full_access(AccessPolicyId::new("all"));
    assert!(
        !effective_policy(&full, &set("openid"), None)
            .unwrap()
            .allows("Patient", Interaction::Read)
    );
}

#[test]
fn patient_scopes_need_a_patient() {
    let p = policy(vec![ResourcePolicy::any("Observation")]);
    let e = effective_policy(&p, &set("patient/Observation.rs"), None).unwrap_err();
    assert_eq!(e, MissingPatientContext);
    assert_eq!(e.to_string(), "Missing patient context");
    // even when the patient scope grants nothing under this policy
    assert_eq!(
        effective_policy(&p, &set("patient/Condition.rs user/Observation.r"), None),
        Err(MissingPatientContext)
    );
    assert!(effective_policy(&p, &set("user/Observation.rs"), None).is_ok());
}

#[test]
fn patient_scopes_confine_grants_to_the_patient_compartment() {
    let patient = reference("Patient/123");
    let p = policy(vec![
        ResourcePolicy::any("Observation"),
        readonly("Patient"),
    ]);
    let e = effective_policy(
        &p,
        &set("patient/Observation.rs?category=laboratory patient/Patient.cruds launch/patient"),
        Some(&patient),
    )
    .unwrap();
    assert_eq!(
        e.entries(),
        &[
            GrantEntry {
                resource_type: "Observation".into(),
                permissions: Permissions::V1_READ,
                criteria: vec!["Observation?category=laboratory".into()],
                compartment: Some(patient.clone()),
            },
            GrantEntry {
                resource_type: "Patient".into(),
                permissions: Permissions::V1_READ,
                criteria: vec![],
                compartment: Some(patient.clone()),
            },
        ]
    );
}

#[test]
fn an_existing_compartment_is_kept_as_a_criterion() {
    let patient = reference("Patient/2");
    let mut p = policy(vec![ResourcePolicy {
        criteria: Some("Observation?status=final".into()),
        ..ResourcePolicy::any("Observation")
    }]);
    p.compartment = Some(reference("Organization/1"));
    let e = effective_policy(
        &p,
        &set("patient/Observation.r user/Observation.s"),
        Some(&patient),
    )
    .unwrap();
    assert_eq!(
        e.entries(),
        &[
            GrantEntry {
                resource_type: "Observation".into(),
                permissions: Permissions::READ,
                criteria: vec![
                    "Observation?status=final".into(),
                    "Observation?_compartment=Organization/1".into(),
                ],
                compartment: Some(patient.clone()),
            },
            GrantEntry {
                resource_type: "Observation".into(),
                permissions: Permissions::SEARCH,
                criteria: vec!["Observation?status=final".into()],
                compartment: Some(reference("Organization/1")),
            },
        ]
    );
    // the same compartment as the patient adds nothing
    p.compartment = Some(patient.clone());
    let e = effective_policy(&p, &set("patient/Observation.r"), Some(&patient)).unwrap();
    assert_eq!(
        e.entries()[0].criteria,
        vec!["Observation?status=final".to_owned()]
    );
}

#[test]
fn a_wildcard_policy_entry_expands_per_scope_type() {
    let p = policy(vec![ResourcePolicy {
        criteria: Some("*?_tag=x".into()),
        ..ResourcePolicy::any("*")
    }]);
    let e = effective_policy(&p, &set("user/Observation.cd user/Patient.r"), None).unwrap();
    assert_eq!(
        e.entries(),
        &[
            GrantEntry {
                resource_type: "Observation".into(),
                permissions: Permissions::from_letters("cd").unwrap(),
                criteria: vec!["Observation?_tag=x".into()],
                compartment: None,
            },
            GrantEntry {
                resource_type: "Patient".into(),
                permissions: Permissions::READ,
                criteria: vec!["Patient?_tag=x".into()],
                compartment: None,
            },
        ]
    );
    let e = effective_policy(&p, &set("system/*.rs"), None).unwrap();
    assert_eq!(
        e.entries(),
        &[GrantEntry {
            resource_type: "*".into(),
            permissions: Permissions::V1_READ,
            criteria: vec!["*?_tag=x".into()],
            compartment: None,
        }]
    );
    assert!(e.allows("Anything", Interaction::Read));
    assert!(!e.allows("Anything", Interaction::Update));
}

#[test]
fn scopes_for_one_entry_merge_and_unmatched_entries_drop() {
    let p = policy(vec![
        ResourcePolicy::any("Observation"),
        ResourcePolicy::any("Patient"),
    ]);
    let e = effective_policy(&p, &set("user/Observation.r user/Observation.s"), None).unwrap();
    assert_eq!(
        e.entries(),
        &[GrantEntry {
            resource_type: "Observation".into(),
            permissions: Permissions::V1_READ,
            criteria: vec![],
            compartment: None,
        }]
    );
    assert!(!e.allows("Patient", Interaction::Read));
}

#[test]
fn allows_distinguishes_every_letter() {
    let p = AccessPolicy::full_access(AccessPolicyId::new("f"));
    let cases: [(&str, &[Interaction]); 6] = [
        ("c", &[Interaction::Create]),
        (
            "r",
            &[Interaction::Read, Interaction::Vread, Interaction::History],
        ),
        ("u", &[Interaction::Update]),
        ("d", &[Interaction::Delete]),
        ("s", &[Interaction::Search]),
        ("cd", &[Interaction::Create, Interaction::Delete]),
    ];
    for (letters, allowed) in cases {
        let e = effective_policy(&p, &set(&format!("user/Observation.{letters}")), None).unwrap();
        for i in Interaction::ALL {
            assert_eq!(
                e.allows("Observation", i),
                allowed.contains(&i),
                "{letters} {i:?}"
            );
            assert!(!e.allows("Patient", i), "{letters} {i:?}");
        }
    }
}

#[test]
fn allows_respects_the_exact_interactions_of_the_policy() {
    let p = policy(vec![only(
        "Observation",
        &[Interaction::Read, Interaction::Update],
    )]);
    let e = effective_policy(&p, &set("user/Observation.cruds"), None).unwrap();
    assert_eq!(e.entries()[0].permissions.letters(), "ru");
    assert!(e.allows("Observation", Interaction::Read));
    assert!(e.allows("Observation", Interaction::Update));
    assert!(!e.allows("Observation", Interaction::History));
    assert!(!e.allows("Observation", Interaction::Vread));
    assert!(!e.allows("Observation", Interaction::Search));
    assert!(!e.allows("Observation", Interaction::Create));
    // without SMART scopes nothing at all
    let e = effective_policy(&p, &set("openid"), None).unwrap();
    assert!(!e.allows("Observation", Interaction::Read));
    assert!(!e.allows("Observation", Interaction::History));
}

// ---------------------------------------------------------------- properties

fn scope_strategy() -> impl Strategy<Value = Scope> {
    let simple = prop_oneof![
        Just(Scope::OpenId),
        Just(Scope::FhirUser),
        Just(Scope::Profile),
        Just(Scope::Email),
        Just(Scope::OfflineAccess),
        Just(Scope::OnlineAccess),
        Just(Scope::Launch),
        Just(Scope::LaunchPatient),
        Just(Scope::LaunchEncounter),
        Just(Scope::Other("phone".into())),
        Just(Scope::Other("fhircast/x".into())),
    ];
    let context = prop_oneof![
        Just(Context::Patient),
        Just(Context::User),
        Just(Context::System)
    ];
    let resource_type = prop_oneof![
        Just(ResourceType::Any),
        Just(ResourceType::Named("Observation".into())),
        Just(ResourceType::Named("Patient".into())),
        Just(ResourceType::Named("Condition".into())),
    ];
    let letters = proptest::sample::subsequence(vec!['c', 'r', 'u', 'd', 's'], 1..=5)
        .prop_map(|l| Permissions::from_letters(&l.into_iter().collect::<String>()).unwrap());
    let query = prop_oneof![
        Just(None),
        Just(Some("a=1")),
        Just(Some("b=2")),
        Just(Some("a=1&b=2")),
        Just(Some("code=x:y")),
    ];
    let resource = (context, resource_type, letters, query, any::<bool>()).prop_map(
        |(context, resource_type, permissions, query, v1)| {
            let mut scope = ResourceScope::new(context, resource_type, permissions);
            if let Some(q) = query {
                scope = scope.with_query(q).unwrap();
            }
            if v1 {
                scope = scope.in_v1_form();
            }
            Scope::Resource(scope)
        },
    );
    prop_oneof![1 => simple, 3 => resource]
}

fn scope_set_strategy() -> impl Strategy<Value = ScopeSet> {
    proptest::collection::vec(scope_strategy(), 0..8).prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn intersection_is_covered_by_both(a in scope_set_strategy(), b in scope_set_strategy()) {
        let both = a.intersect(&b);
        prop_assert!(a.covers(&both), "{} does not cover {}", a, both);
        prop_assert!(b.covers(&both), "{} does not cover {}", b, both);
        let other_way = b.intersect(&a);
        prop_assert!(both.covers(&other_way) && other_way.covers(&both));
        // no result scope is within another one
        let r: Vec<&ResourceScope> = both.resource_scopes().collect();
        for x in &r {
            prop_assert_eq!(r.iter().filter(|y| x.is_within(y)).count(), 1);
        }
    }

    #[test]
    fn self_intersection_means_the_same(a in scope_set_strategy()) {
        let same = a.intersect(&a);
        prop_assert!(a.covers(&same) && same.covers(&a));
        prop_assert!(a.covers(&a));
    }

    #[test]
    fn text_and_serde_round_trip(a in scope_set_strategy()) {
        let text = a.to_string();
        prop_assert_eq!(&ScopeSet::parse(&text).unwrap(), &a);
        let json = serde_json::to_string(&a).unwrap();
        prop_assert_eq!(&serde_json::from_str::<ScopeSet>(&json).unwrap(), &a);
    }

    #[test]
    fn narrowing_only_removes(a in scope_set_strategy()) {
        let policies = [
            policy(vec![readonly("Observation"), ResourcePolicy::any("Patient")]),
            policy(vec![readonly("*"), only("Condition", &[Interaction::Delete])]),
            AccessPolicy::full_access(AccessPolicyId::new("f")),
            policy(vec![]),
        ];
        for p in &policies {
            let narrowed = a.narrow_to_policy(p);
            prop_assert!(a.covers(&narrowed), "{} does not cover {}", a, narrowed);
            prop_assert_eq!(&narrowed.narrow_to_policy(p), &narrowed);
        }
    }
}
