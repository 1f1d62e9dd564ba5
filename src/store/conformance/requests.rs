//! Security requests: consumed once, only with their secret, only the newest of a kind per
//! user, never after they expire.

use time::Duration;

use super::Stores;
use super::fixtures::*;
use super::races::race;
use crate::model::*;
use crate::store::{RequestRedemption, RequestStore, redeem_request};

/// A reset request `id` of user `user` holding secret `secret`, issued at `at(0)`.
pub fn request(id: &str, kind: RequestKind, user: &str, secret: &str) -> SecurityRequest {
    SecurityRequest::new(
        RequestId::new(id),
        kind,
        UserId::new(user),
        h(secret),
        at(0),
    )
}

async fn redeem(
    store: &dyn RequestStore,
    id: &str,
    secret: &str,
    seconds: i64,
) -> RequestRedemption {
    redeem_request(store, &RequestId::new(id), &h(secret), at(seconds))
        .await
        .unwrap()
}

/// Requests are consumed once, only with their secret, and a wrong secret consumes nothing.
pub async fn requests_are_consumed_once_with_their_secret(s: &Stores) {
    let r = request("q1", RequestKind::Reset, "u1", "s1");
    s.a.create_request(&r).await.unwrap();
    assert!(s.b.create_request(&r).await.is_err(), "ids are unique");
    assert_eq!(
        s.b.request(&RequestId::new("q1")).await.unwrap(),
        Some(r.clone())
    );
    assert_eq!(s.b.request(&RequestId::new("nope")).await.unwrap(), None);
    assert_eq!(
        s.b.latest_request(&UserId::new("u1"), RequestKind::Reset)
            .await
            .unwrap(),
        Some(r.clone())
    );
    assert_eq!(
        s.b.latest_request(&UserId::new("u1"), RequestKind::Invite)
            .await
            .unwrap(),
        None
    );

    assert_eq!(
        redeem(s.b.as_ref(), "q1", "wrong", 1).await,
        RequestRedemption::WrongSecret
    );
    assert_eq!(
        redeem(s.a.as_ref(), "nope", "s1", 1).await,
        RequestRedemption::Unknown
    );
    let mut used = r.clone();
    used.used = true;
    assert_eq!(
        redeem(s.a.as_ref(), "q1", "s1", 1).await,
        RequestRedemption::Redeemed(used.clone())
    );
    assert_eq!(
        redeem(s.b.as_ref(), "q1", "s1", 2).await,
        RequestRedemption::Used
    );
    assert_eq!(
        redeem(s.b.as_ref(), "q1", "wrong", 2).await,
        RequestRedemption::Used
    );
    assert_eq!(
        s.b.request(&RequestId::new("q1")).await.unwrap(),
        Some(used)
    );
    assert_eq!(
        redeem(s.a.as_ref(), "q1\0", "s1", 1).await,
        RequestRedemption::Unknown,
        "ids with NUL find nothing"
    );
}

/// Only the newest request of a kind per user can be consumed; other kinds and users are
/// untouched by a newer request.
pub async fn newer_requests_supersede_older_of_the_same_kind_and_user(s: &Stores) {
    for r in [
        request("old", RequestKind::Reset, "u1", "s-old"),
        request("verify", RequestKind::VerifyEmail, "u1", "s-verify"),
        request("other", RequestKind::Reset, "u2", "s-other"),
        request("new", RequestKind::Reset, "u1", "s-new"),
    ] {
        s.a.create_request(&r).await.unwrap();
    }
    assert_eq!(
        redeem(s.b.as_ref(), "old", "s-old", 1).await,
        RequestRedemption::Superseded
    );
    assert_eq!(
        s.b.latest_request(&UserId::new("u1"), RequestKind::Reset)
            .await
            .unwrap()
            .map(|r| r.id),
        Some(RequestId::new("new"))
    );
    assert!(matches!(
        redeem(s.b.as_ref(), "verify", "s-verify", 1).await,
        RequestRedemption::Redeemed(_)
    ));
    assert!(matches!(
        redeem(s.a.as_ref(), "other", "s-other", 1).await,
        RequestRedemption::Redeemed(_)
    ));
    assert!(matches!(
        redeem(s.a.as_ref(), "new", "s-new", 1).await,
        RequestRedemption::Redeemed(_)
    ));
    // The old one stays refused after the new one was used.
    assert_eq!(
        redeem(s.b.as_ref(), "old", "s-old", 2).await,
        RequestRedemption::Superseded
    );
}

/// A request is refused from its expiry on, and purged after.
pub async fn expired_requests_are_refused_and_purged(s: &Stores) {
    let r = request("q1", RequestKind::EmailCode, "u1", "s1");
    let expiry = r.expires_at;
    assert_eq!(expiry, at(0) + Duration::minutes(10));
    s.a.create_request(&r).await.unwrap();
    s.a.create_request(&request("q2", RequestKind::Reset, "u1", "s2"))
        .await
        .unwrap();
    assert_eq!(
        redeem(s.b.as_ref(), "q1", "s1", 600).await,
        RequestRedemption::Expired
    );
    assert_eq!(s.a.purge_expired_requests(at(599)).await.unwrap(), 0);
    assert_eq!(s.a.purge_expired_requests(at(600)).await.unwrap(), 1);
    assert_eq!(s.b.request(&RequestId::new("q1")).await.unwrap(), None);
    assert_eq!(
        s.b.latest_request(&UserId::new("u1"), RequestKind::EmailCode)
            .await
            .unwrap(),
        None
    );
    assert!(s.b.request(&RequestId::new("q2")).await.unwrap().is_some());
    assert_eq!(s.a.purge_expired_requests(at(3600)).await.unwrap(), 1);
}

/// Race: one of 64 consumes a request (half of them over the other instance, a quarter
/// with a wrong secret, which never wins and never consumes).
pub async fn race_one_of_64_consumes_a_request(s: &Stores) {
    s.a.create_request(&request("q1", RequestKind::Reset, "u1", "s1"))
        .await
        .unwrap();
    let results = race(s, |i, store| async move {
        let secret = if i % 4 == 3 { "wrong" } else { "s1" };
        (secret, redeem(store.as_ref(), "q1", secret, 1).await)
    })
    .await;
    let redeemed = results
        .iter()
        .filter(|(_, r)| matches!(r, RequestRedemption::Redeemed(_)))
        .collect::<Vec<_>>();
    assert_eq!(redeemed.len(), 1, "{results:?}");
    assert_eq!(redeemed[0].0, "s1");
    for (secret, r) in &results {
        assert!(
            matches!(r, RequestRedemption::Redeemed(_) | RequestRedemption::Used)
                || (*secret == "wrong" && *r == RequestRedemption::WrongSecret),
            "{secret}: {r:?}"
        );
    }
}
