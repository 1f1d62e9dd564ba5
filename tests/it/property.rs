//! Property: no sequence of calls yields an authorization code without the password and, for
//! users with a second factor, without the factor.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common::*;
use fhirgate::audit::AuditKind;
use fhirgate::login::{Authorized, Consent, Enrolment, Passed, Profile, SecondFactor};
use fhirgate::model::{Amr, MembershipId, TotpState};
use fhirgate::store::Directory;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[derive(Debug, Clone)]
enum Action {
    Password { user: usize, right: bool },
    Totp { login: usize, code: i64 },
    Enrol { login: usize, right: bool },
    ChooseIfSingle { login: usize },
    Choose { login: usize, membership: usize },
    Grant { login: usize, narrow: bool },
    Narrow { login: usize },
    Tick { seconds: i64 },
}

const USERS: [&str; 5] = [
    "alice@example.org",
    "bob@example.org",
    "carol@example.org",
    "nobody@example.org",
    "dave@example.org",
];
const MEMBERSHIPS: [&str; 4] = ["m-alice", "m-bob-1", "m-bob-2", "m-carol"];

fn action() -> impl Strategy<Value = Action> {
    // Weighted towards moving forward, so many sequences reach a code and the property is
    // exercised, not vacuously true.
    prop_oneof![
        3 => (prop_oneof![2 => Just(0usize), 3 => Just(1), 2 => Just(2), 1 => Just(3), 1 => Just(4)], prop::bool::weighted(0.8))
            .prop_map(|(user, right)| Action::Password { user, right }),
        3 => (0..8usize, prop_oneof![4 => Just(0i64), 1 => -2..3i64])
            .prop_map(|(login, code)| Action::Totp { login, code }),
        2 => (0..8usize, prop::bool::weighted(0.8)).prop_map(|(login, right)| Action::Enrol { login, right }),
        3 => (0..8usize).prop_map(|login| Action::ChooseIfSingle { login }),
        1 => (0..8usize, 0..MEMBERSHIPS.len())
            .prop_map(|(login, membership)| Action::Choose { login, membership }),
        3 => (0..8usize, any::<bool>()).prop_map(|(login, narrow)| Action::Grant { login, narrow }),
        1 => (0..8usize).prop_map(|login| Action::Narrow { login }),
        1 => (0..120i64).prop_map(|seconds| Action::Tick { seconds }),
    ]
}

/// Runs one sequence, checks the property, and returns how many codes it issued, and how many
/// of those went to users with a second factor.
async fn run(actions: Vec<Action>) -> (usize, usize) {
    let f = Fixture::new().await;
    let mut handles: Vec<String> = Vec::new();
    let pick = |handles: &Vec<String>, i: usize| handles.get(i % handles.len().max(1)).cloned();
    // Every stored transition rotates the handle: keep the new one in the same slot.
    let slot = |handles: &Vec<String>, i: usize| i % handles.len().max(1);
    for action in actions {
        match action {
            Action::Password { user, right } => {
                let password = if right { PASSWORD } else { "wrong password" };
                if let Ok(a) = f.password(USERS[user], password).await {
                    handles.push(match a {
                        Passed::SecondFactor(l) => l.handle().expose().to_owned(),
                        Passed::Enrolment(l, _) => l.handle().expose().to_owned(),
                        Passed::Profile(l) => l.handle().expose().to_owned(),
                    });
                }
            }
            Action::Totp { login, code } => {
                if let Some(h) = pick(&handles, login)
                    && let Ok(l) = f.engine.resume::<SecondFactor>(&h).await
                    && let Ok(next) = l.totp(&f.totp_now(code)).await
                {
                    let i = slot(&handles, login);
                    handles[i] = next.handle().expose().to_owned();
                }
            }
            Action::Enrol { login, right } => {
                if let Some(h) = pick(&handles, login)
                    && let Ok(l) = f.engine.resume::<Enrolment>(&h).await
                {
                    let user = f.store.user(&"carol".into()).await.unwrap().unwrap();
                    let code = match (&user.totp, right) {
                        (TotpState::Pending { secret }, true) => {
                            fhirgate::credential::totp::code_at(
                                secret,
                                f.engine.now().unix_timestamp() as u64,
                            )
                            .unwrap()
                        }
                        _ => "000000".to_owned(),
                    };
                    if let Ok(next) = l.enrol(&code).await {
                        let i = slot(&handles, login);
                        handles[i] = next.handle().expose().to_owned();
                    }
                }
            }
            Action::ChooseIfSingle { login } => {
                if let Some(h) = pick(&handles, login)
                    && let Ok(l) = f.engine.resume::<Profile>(&h).await
                    && let Ok(fhirgate::login::ProfileChoice::Chosen(next)) =
                        l.choose_if_single().await
                {
                    let i = slot(&handles, login);
                    handles[i] = next.handle().expose().to_owned();
                }
            }
            Action::Choose { login, membership } => {
                if let Some(h) = pick(&handles, login)
                    && let Ok(l) = f.engine.resume::<Profile>(&h).await
                    && let Ok(next) = l.choose(&MembershipId::new(MEMBERSHIPS[membership])).await
                {
                    let i = slot(&handles, login);
                    handles[i] = next.handle().expose().to_owned();
                }
            }
            Action::Grant { login, narrow } => {
                if let Some(h) = pick(&handles, login)
                    && let Ok(l) = f.engine.resume::<Consent>(&h).await
                    && let Ok((next, _)) = l.grant(narrow.then_some("openid")).await
                {
                    let i = slot(&handles, login);
                    handles[i] = next.handle().expose().to_owned();
                }
            }
            Action::Narrow { login } => {
                if let Some(h) = pick(&handles, login)
                    && let Ok(l) = f.engine.resume::<Authorized>(&h).await
                    && let Ok(next) = l.narrow("openid").await
                {
                    let i = slot(&handles, login);
                    handles[i] = next.handle().expose().to_owned();
                }
            }
            Action::Tick { seconds } => f.clock.advance(time::Duration::seconds(seconds)),
        }
    }

    // Every issued code: its login passed the password, and the second factor when the user
    // has one (bob) or had to enrol one (carol).
    let events = f.audit.events();
    for (i, event) in events.iter().enumerate() {
        if let AuditKind::CodeIssued { .. } = event.kind {
            let login = event.login.clone().unwrap();
            let earlier = &events[..i];
            let passed = |k: &AuditKind| {
                earlier
                    .iter()
                    .any(|e| e.login.as_ref() == Some(&login) && &e.kind == k)
            };
            assert!(
                passed(&AuditKind::PasswordAccepted),
                "code without password: {events:#?}"
            );
            let user = event.user.as_ref().unwrap().as_str();
            if user == "bob" || user == "carol" {
                assert!(
                    passed(&AuditKind::SecondFactorPassed),
                    "code without TOTP: {events:#?}"
                );
            }
        }
    }
    for login in f.store.snapshot_logins() {
        if login.code.is_some() {
            assert!(login.amr.contains(&Amr::Pwd));
            let user = login.user.as_ref().unwrap().as_str();
            if user == "bob" || user == "carol" {
                assert!(login.amr.contains(&Amr::Otp), "{login:?}");
            }
        }
    }
    let codes: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, AuditKind::CodeIssued { .. }))
        .collect();
    let mfa = codes
        .iter()
        .filter(|e| matches!(e.user.as_ref().map(|u| u.as_str()), Some("bob" | "carol")))
        .count();
    (codes.len(), mfa)
}

#[test]
fn no_code_without_every_factor() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 128,
        ..Config::default()
    });
    let cases_with_codes = AtomicUsize::new(0);
    let mfa_codes = AtomicUsize::new(0);
    runner
        .run(&prop::collection::vec(action(), 4..40), |actions| {
            let (codes, mfa) = rt.block_on(run(actions));
            if codes > 0 {
                cases_with_codes.fetch_add(1, Ordering::SeqCst);
            }
            if mfa > 0 {
                mfa_codes.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })
        .unwrap();
    // The property must not hold vacuously: a fair share of sequences reached a code, some of
    // them for users with a second factor.
    let with_codes = cases_with_codes.load(Ordering::SeqCst);
    let mfa = mfa_codes.load(Ordering::SeqCst);
    eprintln!("{with_codes} of 128 sequences issued a code ({mfa} to a user with a second factor)");
    assert!(
        with_codes >= 16,
        "only {with_codes} of 128 sequences issued a code"
    );
    assert!(mfa > 0);
}
