//! [`LoginStore`](crate::store::LoginStore): creation, lookups by every hash, compare-and-swap, single redemption of codes, rotation of refresh tokens, revocation and purging.

use super::fixtures::*;

use super::{Stores, redeem, rotate};
use crate::model::*;
use crate::store::{CodeRedemption, Presented, RefreshRotation, StoreError};

/// Logins are created once and found by their hashes.
pub async fn logins_are_created_once_and_found_by_their_hashes(s: &Stores) {
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

/// Update login is compare and swap.
pub async fn update_login_is_compare_and_swap(s: &Stores) {
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
        redeem(&s.b, &h("c1"), at(1)).await.unwrap(),
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

/// Update login can rotate the handle.
pub async fn update_login_can_rotate_the_handle(s: &Stores) {
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

/// Codes are redeemed once.
pub async fn codes_are_redeemed_once(s: &Stores) {
    let r = authorized("l1", "h1", "c1", Some("app"));
    s.a.create_login(&r).await.unwrap();
    assert_eq!(
        redeem(&s.a, &h("nope"), at(1)).await.unwrap(),
        CodeRedemption::Unknown
    );
    // The handle is not a code.
    assert_eq!(
        redeem(&s.a, &h("h1"), at(1)).await.unwrap(),
        CodeRedemption::Unknown
    );

    let mut expected = r.clone();
    expected.version = 5;
    expected.stage = StageTag::Granted;
    expected.code.as_mut().unwrap().redeemed = true;
    assert_eq!(
        redeem(&s.a, &h("c1"), at(1)).await.unwrap(),
        CodeRedemption::Redeemed(expected.clone())
    );
    assert_eq!(s.b.login(&r.id).await.unwrap(), Some(expected.clone()));
    // Every later presentation is a replay, on either instance, and changes nothing.
    assert_eq!(
        redeem(&s.b, &h("c1"), at(2)).await.unwrap(),
        CodeRedemption::Replayed(expected.clone())
    );
    assert_eq!(
        redeem(&s.a, &h("c1"), at(3)).await.unwrap(),
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

/// Code expiry stage and revocation refuse.
pub async fn code_expiry_stage_and_revocation_refuse(s: &Stores) {
    // Expired at exactly expires_at; nothing changes.
    let r = authorized("l1", "h1", "c1", None);
    s.a.create_login(&r).await.unwrap();
    assert_eq!(
        redeem(&s.b, &h("c1"), at(60)).await.unwrap(),
        CodeRedemption::Expired
    );
    assert_eq!(
        redeem(&s.b, &h("c1"), at(600)).await.unwrap(),
        CodeRedemption::Expired
    );
    assert_eq!(s.a.login(&r.id).await.unwrap(), Some(r.clone()));
    assert!(matches!(
        redeem(&s.a, &h("c1"), at(59)).await.unwrap(),
        CodeRedemption::Redeemed(_)
    ));

    // A code on a login that is not waiting in Authorized is not redeemable.
    let mut scope = authorized("l2", "h2", "c2", None);
    scope.stage = StageTag::Scope;
    s.a.create_login(&scope).await.unwrap();
    assert_eq!(
        redeem(&s.b, &h("c2"), at(1)).await.unwrap(),
        CodeRedemption::Expired
    );
    assert_eq!(s.a.login(&scope.id).await.unwrap(), Some(scope));

    // A revoked login's code is unknown, redeemed or not.
    let fresh = authorized("l3", "h3", "c3", None);
    s.a.create_login(&fresh).await.unwrap();
    assert!(s.a.revoke_login(&fresh.id).await.unwrap());
    let revoked = s.a.login(&fresh.id).await.unwrap().unwrap();
    assert_eq!(
        redeem(&s.b, &h("c3"), at(1)).await.unwrap(),
        CodeRedemption::Unknown
    );
    assert_eq!(s.a.login(&fresh.id).await.unwrap(), Some(revoked));
    let mut spent = granted("l4", "h4", "r4", None);
    spent.code.as_mut().unwrap().hash = h("c4");
    s.b.create_login(&spent).await.unwrap();
    assert!(matches!(
        redeem(&s.a, &h("c4"), at(1)).await.unwrap(),
        CodeRedemption::Replayed(_)
    ));
    assert!(s.b.revoke_login(&spent.id).await.unwrap());
    assert_eq!(
        redeem(&s.a, &h("c4"), at(1)).await.unwrap(),
        CodeRedemption::Unknown
    );

    // A redeemed code stays a replay after it expired (replay is checked first).
    let mut old = granted("l5", "h5", "r5", None);
    old.code.as_mut().unwrap().hash = h("c5");
    s.a.create_login(&old).await.unwrap();
    assert_eq!(
        redeem(&s.b, &h("c5"), at(5000)).await.unwrap(),
        CodeRedemption::Replayed(old)
    );
}

/// The raw answers of `consume_code` and `rotate_refresh`: `Changed` only for the call that
/// made the change, `Unchanged` with the login (and whether the token is a rotated-out one)
/// for every later call, `NotFound` for a hash no login holds; nothing changes on a refusal.
pub async fn raw_outcomes_report_only_this_calls_change(s: &Stores) {
    let r = authorized("l1", "h1", "c1", Some("app"));
    s.a.create_login(&r).await.unwrap();
    assert_eq!(
        s.a.consume_code(&h("never"), at(1)).await.unwrap(),
        Presented::NotFound
    );
    let Presented::Changed(redeemed) = s.b.consume_code(&h("c1"), at(1)).await.unwrap() else {
        panic!("the first presentation must change the login");
    };
    assert_eq!(redeemed.stage, StageTag::Granted);
    assert_eq!(
        s.a.consume_code(&h("c1"), at(2)).await.unwrap(),
        Presented::Unchanged {
            record: redeemed.clone(),
            retired: false
        }
    );
    assert_eq!(s.b.login(&r.id).await.unwrap(), Some(redeemed));

    let g = granted("l2", "h2", "r1", Some("app"));
    s.a.create_login(&g).await.unwrap();
    let app = ClientId::new("app");
    assert_eq!(
        s.a.rotate_refresh(&h("nothing"), &h("n0"), Some(&app), at(1))
            .await
            .unwrap(),
        Presented::NotFound
    );
    // Another client's presentation changes nothing.
    assert_eq!(
        s.a.rotate_refresh(&h("r1"), &h("n1"), Some(&ClientId::new("other")), at(1))
            .await
            .unwrap(),
        Presented::Unchanged {
            record: g.clone(),
            retired: false
        }
    );
    let Presented::Changed(rotated) =
        s.b.rotate_refresh(&h("r1"), &h("n2"), Some(&app), at(1))
            .await
            .unwrap()
    else {
        panic!("the current token must rotate");
    };
    assert_eq!(rotated.version, g.version + 1);
    assert_eq!(
        s.a.rotate_refresh(&h("r1"), &h("n3"), Some(&app), at(2))
            .await
            .unwrap(),
        Presented::Unchanged {
            record: rotated.clone(),
            retired: true
        }
    );
    // Past the family's end the current token is reported, not rotated.
    assert_eq!(
        s.a.rotate_refresh(&h("n2"), &h("n4"), Some(&app), at(1000))
            .await
            .unwrap(),
        Presented::Unchanged {
            record: rotated.clone(),
            retired: false
        }
    );
    assert_eq!(s.b.login(&g.id).await.unwrap(), Some(rotated));
}

/// Refresh tokens rotate once and reuse is detected.
pub async fn refresh_tokens_rotate_once_and_reuse_is_detected(s: &Stores) {
    let app = ClientId::new("app");
    let g = granted("l1", "h1", "r1", Some("app"));
    s.a.create_login(&g).await.unwrap();
    assert_eq!(
        s.b.login_by_refresh(&h("r1")).await.unwrap(),
        Some(g.clone())
    );

    let RefreshRotation::Rotated(x) = rotate(&s.a, &h("r1"), &h("r2"), Some(&app), at(10))
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
        rotate(&s.b, &h("r1"), &h("r3"), Some(&app), at(11))
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
    let RefreshRotation::Rotated(y) = rotate(&s.b, &h("r2"), &h("r3"), Some(&app), at(12))
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
            rotate(&s.a, &h(retired), &h("r9"), Some(&app), at(13))
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
            rotate(&s.a, &h(presented), &h("r4"), Some(&app), at(13))
                .await
                .unwrap(),
            RefreshRotation::Unknown,
            "{presented}"
        );
    }

    // A `next` that is already a hash (of any login, any role) is a conflict, whether or
    // not the presented token is valid, and changes nothing.
    for next in ["r1", "r3", "h1", "session-of-l1"] {
        let result = rotate(&s.b, &h("r3"), &h(next), Some(&app), at(13)).await;
        assert!(is_conflict(&result), "{next}: {result:?}");
    }
    let result = rotate(&s.a, &h("nope"), &h("h1"), Some(&app), at(13)).await;
    assert!(is_conflict(&result), "{result:?}");
    assert_eq!(s.a.login(&g.id).await.unwrap(), Some(y.clone()));

    // The family's end is absolute.
    assert_eq!(
        rotate(&s.a, &h("r3"), &h("r4"), Some(&app), at(1000))
            .await
            .unwrap(),
        RefreshRotation::Expired
    );
    assert_eq!(s.b.login(&g.id).await.unwrap(), Some(y.clone()));
    let RefreshRotation::Rotated(z) = rotate(&s.b, &h("r3"), &h("r4"), Some(&app), at(999))
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

/// Refresh client condition and revoked families.
pub async fn refresh_client_condition_and_revoked_families(s: &Stores) {
    let app = ClientId::new("app");
    let other = ClientId::new("other");

    // A family issued to a client is refused to another client and to none.
    let g = granted("l1", "h1", "r1", Some("app"));
    s.a.create_login(&g).await.unwrap();
    for client in [Some(&other), None] {
        assert_eq!(
            rotate(&s.b, &h("r1"), &h("r2"), client, at(1))
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
        rotate(&s.a, &h("t1"), &h("t2"), Some(&app), at(1))
            .await
            .unwrap(),
        RefreshRotation::Unknown
    );
    assert!(matches!(
        rotate(&s.a, &h("t1"), &h("t2"), None, at(1)).await.unwrap(),
        RefreshRotation::Rotated(_)
    ));
    // Reuse by another client is Unknown, not Reused: the client condition comes first.
    assert_eq!(
        rotate(&s.b, &h("t1"), &h("t3"), Some(&app), at(2))
            .await
            .unwrap(),
        RefreshRotation::Unknown
    );

    // A revoked family: current and retired tokens are Unknown, but still found.
    assert!(matches!(
        rotate(&s.a, &h("r1"), &h("r2"), Some(&app), at(1))
            .await
            .unwrap(),
        RefreshRotation::Rotated(_)
    ));
    assert!(s.b.revoke_login(&g.id).await.unwrap());
    let revoked = s.a.login(&g.id).await.unwrap().unwrap();
    for presented in ["r1", "r2"] {
        assert_eq!(
            rotate(&s.a, &h(presented), &h("r3"), Some(&app), at(3))
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
        rotate(&s.b, &h("h3"), &h("x"), Some(&app), at(1))
            .await
            .unwrap(),
        RefreshRotation::Unknown
    );
}

/// Revocation and session lists.
pub async fn revocation_and_session_lists(s: &Stores) {
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

/// Expired logins are purged.
pub async fn expired_logins_are_purged(s: &Stores) {
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
        rotate(&s.a, &h("r3"), &h("r3b"), None, at(1))
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
