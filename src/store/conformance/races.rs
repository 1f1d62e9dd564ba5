//! Races: 64 tasks over the two handles at once; exactly one wins each single-use operation.

use std::collections::BTreeSet;
use std::sync::Arc;

use time::Duration;

use super::fixtures::*;
use super::{Store, Stores, redeem, rotate};
use crate::model::*;
use crate::store::{Attempt, CodeRedemption, OnceKey, OnceKind, RefreshRotation};

const TASKS: usize = 64;

/// Runs `TASKS` copies of `f` at once (after a barrier), alternating the two instances.
pub(super) async fn race<T, F, Fut>(s: &Stores, f: F) -> Vec<T>
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

/// Race one of 64 redeems a code.
pub async fn race_one_of_64_redeems_a_code(s: &Stores) {
    s.a.create_login(&authorized("l1", "h1", "c1", None))
        .await
        .unwrap();
    let results = race(s, |_, store| async move {
        redeem(&store, &h("c1"), at(1)).await.unwrap()
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

/// Race one of 64 rotates a refresh token.
pub async fn race_one_of_64_rotates_a_refresh_token(s: &Stores) {
    s.a.create_login(&granted("l1", "h1", "r1", Some("app")))
        .await
        .unwrap();
    let results = race(s, |i, store| async move {
        let next = h(&format!("next-{i}"));
        let outcome = rotate(&store, &h("r1"), &next, Some(&ClientId::new("app")), at(1))
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

/// Race one of 64 claims a key.
pub async fn race_one_of_64_claims_a_key(s: &Stores) {
    let results = race(s, |_, store| async move {
        store
            .claim_once(
                &OnceKey::new(OnceKind::ClientAssertionJti, "once"),
                at(60),
                at(0),
            )
            .await
            .unwrap()
    })
    .await;
    assert_eq!(results.iter().filter(|won| **won).count(), 1);
}

/// Race one of 64 raises a watermark.
pub async fn race_one_of_64_raises_a_watermark(s: &Stores) {
    let results = race(s, |_, store| async move {
        store
            .claim_above(
                &OnceKey::new(OnceKind::TotpStep, "u1"),
                1_234_567,
                at(90),
                at(0),
            )
            .await
            .unwrap()
    })
    .await;
    assert_eq!(results.iter().filter(|won| **won).count(), 1);
}

/// Race 64 attempts under a cap of 10.
pub async fn race_64_attempts_under_a_cap_of_10(s: &Stores) {
    let results = race(s, |_, store| async move {
        store
            .take_attempt(
                &OnceKey::new(OnceKind::PasswordFailures, "alice"),
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

/// Race one of 64 compare and swaps wins.
pub async fn race_one_of_64_compare_and_swaps_wins(s: &Stores) {
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

/// Race one of 64 creates a user per email.
pub async fn race_one_of_64_creates_a_user_per_email(s: &Stores) {
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
/// Race redemption against revocation.
pub async fn race_redemption_against_revocation(s: &Stores) {
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
                    redeem(&store, &code, at(1)).await.map(|r| match r {
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
