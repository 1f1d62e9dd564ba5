//! Single-use values under concurrency: 64 tasks race, exactly one wins.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use crate::common::*;
use fhirgate::login::{Profile, SecondFactor};
use fhirgate::model::MembershipId;
use fhirgate::store::{CodeRedemption, LoginStore, OnceKey, OnceKind, OnceStore};
use fhirgate::{LoginError, RequestError};

const TASKS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_redemptions_of_one_code_yield_exactly_one() {
    let f = Fixture::new().await;
    let login = f.alice_at_scope().await;
    let (_, code) = login.grant(None).await.unwrap();
    let store = Arc::new(f.store.clone());
    let now = f.engine.now();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (store, barrier, hash) = (store.clone(), barrier.clone(), code.hash());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            CodeRedemption::classify(store.consume_code(&hash, now).await.unwrap(), &hash, now)
        }));
    }
    let mut redeemed = 0;
    let mut replayed = 0;
    for t in tasks {
        match t.await.unwrap() {
            CodeRedemption::Redeemed(_) => redeemed += 1,
            CodeRedemption::Replayed(_) => replayed += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((redeemed, replayed), (1, TASKS - 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_logins_racing_with_one_totp_code_yield_exactly_one() {
    // Raise the per-user cap so all 64 really race on the replay guard.
    let mut config = config();
    config.totp.attempts_per_user = 1000;
    config.totp.attempts_per_user_per_day = 1000;
    let f = Fixture::with_config(config).await;
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
        handles.push(login.handle().expose().to_owned());
    }
    let code = f.totp_now(0);
    let engine = f.engine.clone();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for handle in handles {
        let (engine, barrier, code) = (engine.clone(), barrier.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            let login = engine.resume::<SecondFactor>(&handle).await.unwrap();
            barrier.wait().await;
            login.totp(&code).await.map(|_| ())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => assert_eq!(e.to_string(), "Invalid MFA token"),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_profile_choices_on_one_login_yield_exactly_one() {
    let f = Fixture::new().await;
    let login = expect_profile(f.password("alice@example.org", PASSWORD).await.unwrap());
    let handle = login.handle().expose().to_owned();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (engine, barrier, handle) = (f.engine.clone(), barrier.clone(), handle.clone());
        tasks.push(tokio::spawn(async move {
            let login = engine.resume::<Profile>(&handle).await?;
            barrier.wait().await;
            login
                .choose(&MembershipId::new("m-alice"))
                .await
                .map(|_| ())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(LoginError::Request(RequestError::Conflict)) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn once_store_primitives_hold_under_contention() {
    let f = Fixture::new().await;
    let store = Arc::new(f.store.clone());
    let now = f.engine.now();
    let later = now + time::Duration::minutes(5);
    let mut tasks = Vec::new();
    for i in 0..TASKS as u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let claim = store
                .claim_once(&OnceKey::new(OnceKind::ClientAssertionJti, "x"), later, now)
                .await
                .unwrap();
            let above = store
                .claim_above(&OnceKey::new(OnceKind::TotpStep, "u"), 7, later, now)
                .await
                .unwrap();
            let attempt = store
                .take_attempt(
                    &OnceKey::new(OnceKind::MfaUser, "u"),
                    10,
                    time::Duration::minutes(1),
                    now,
                )
                .await
                .unwrap();
            (claim, above, attempt, i)
        }));
    }
    let (mut claims, mut aboves, mut allowed) = (0, 0, 0);
    for t in tasks {
        let (c, a, attempt, _) = t.await.unwrap();
        claims += usize::from(c);
        aboves += usize::from(a);
        allowed += usize::from(matches!(attempt, fhirgate::store::Attempt::Allowed { .. }));
    }
    assert_eq!((claims, aboves, allowed), (1, 1, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_token_requests_with_one_code_yield_exactly_one_token_response() {
    let f = Fixture::new().await;
    let (_, code) = f.code_for("confidential", "openid offline_access").await;
    let f = Arc::new(f);
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (f, barrier, code) = (f.clone(), barrier.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            f.redeem("confidential", &code).await
        }));
    }
    let mut ok = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => ok.push(r),
            400 => assert_eq!(r.body["error"], "invalid_grant"),
            other => panic!("status {other}: {}", r.body),
        }
    }
    assert_eq!(ok.len(), 1);
    // Every later redemption was a replay, so the grant is revoked: the one token response's
    // access token no longer works either (RFC 6749 §4.1.2, ASVS 10.4.2).
    let access = ok[0].body["access_token"].as_str().unwrap();
    assert!(f.engine.verifier().verify(access).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_refreshes_of_one_token_yield_exactly_one_rotation() {
    let f = Fixture::new().await;
    let (_, code) = f.code_for("confidential", "openid offline_access").await;
    let tokens = f.redeem("confidential", &code).await;
    let refresh = tokens.body["refresh_token"].as_str().unwrap().to_owned();
    let f = Arc::new(f);
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (f, barrier, refresh) = (f.clone(), barrier.clone(), refresh.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            f.token(
                Some(basic("confidential", CLIENT_SECRET)),
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            )
            .await
        }));
    }
    let mut rotated = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => rotated.push(r),
            400 => assert_eq!(r.body["error"], "invalid_grant"),
            other => panic!("status {other}: {}", r.body),
        }
    }
    assert_eq!(rotated.len(), 1, "exactly one rotation");
    // The documented reuse policy: any other presentation of the rotated-out token is reuse,
    // which revokes the family — including the token the winner just received.
    let next = rotated[0].body["refresh_token"].as_str().unwrap();
    let r = f
        .token(
            Some(basic("confidential", CLIENT_SECRET)),
            &[("grant_type", "refresh_token"), ("refresh_token", next)],
        )
        .await;
    assert_eq!(r.body["error"], "invalid_grant");
}
