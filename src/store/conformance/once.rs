//! [`OnceStore`](crate::store::OnceStore): single-use claims, rising watermarks, attempt windows, purging, and keys with NUL.

use time::Duration;

use super::fixtures::*;

use super::Stores;
use crate::model::*;
use crate::store::{Attempt, OnceKey, OnceKind, OnceStore, take_attempts};

/// Claims are single use until they expire.
pub async fn claims_are_single_use_until_they_expire(s: &Stores) {
    let key = OnceKey::new(OnceKind::ClientAssertionJti, "abc");
    assert!(s.a.claim_once(&key, at(60), at(0)).await.unwrap());
    assert!(!s.b.claim_once(&key, at(120), at(1)).await.unwrap());
    assert!(!s.a.claim_once(&key, at(120), at(59)).await.unwrap());
    // Expired at exactly its end; the new claim has its own end.
    assert!(s.b.claim_once(&key, at(200), at(60)).await.unwrap());
    assert!(!s.a.claim_once(&key, at(300), at(199)).await.unwrap());
    // Keys are independent, also across kinds.
    assert!(
        s.a.claim_once(
            &OnceKey::new(OnceKind::ClientAssertionJti, "abd"),
            at(60),
            at(0)
        )
        .await
        .unwrap()
    );
    assert!(
        s.a.claim_once(&OnceKey::new(OnceKind::MfaLogin, "abc"), at(60), at(0))
            .await
            .unwrap()
    );
}

/// Watermarks only rise.
pub async fn watermarks_only_rise(s: &Stores) {
    let key = OnceKey::new(OnceKind::TotpStep, "u1");
    assert!(s.a.claim_above(&key, 5, at(100), at(0)).await.unwrap());
    assert!(!s.b.claim_above(&key, 5, at(100), at(1)).await.unwrap());
    assert!(!s.a.claim_above(&key, 4, at(100), at(1)).await.unwrap());
    assert!(s.b.claim_above(&key, 6, at(100), at(2)).await.unwrap());
    assert!(!s.a.claim_above(&key, 5, at(200), at(99)).await.unwrap());
    // After the watermark expired any value is accepted.
    assert!(s.a.claim_above(&key, 3, at(300), at(100)).await.unwrap());
    assert!(!s.b.claim_above(&key, 3, at(300), at(101)).await.unwrap());
    // The whole u64 range keeps its order.
    let wide = OnceKey::new(OnceKind::TotpStep, "u2");
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

/// Attempts are capped per window.
pub async fn attempts_are_capped_per_window(s: &Stores) {
    let key = OnceKey::new(OnceKind::PasswordFailures, "alice@example.org");
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
    s.b.clear_attempts(&OnceKey::new(OnceKind::PasswordFailures, "never"))
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
    let zero = OnceKey::new(OnceKind::PasswordFailures, "zero");
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
    let (ip, account) = (
        OnceKey::new(OnceKind::PasswordAddress, "192.0.2.1"),
        OnceKey::new(OnceKind::PasswordAccountSource, "u1"),
    );
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

/// Expired once entries are purged.
pub async fn expired_once_entries_are_purged(s: &Stores) {
    let (k1, k2) = (
        OnceKey::new(OnceKind::ClientAssertionJti, "1"),
        OnceKey::new(OnceKind::ClientAssertionJti, "2"),
    );
    let w1 = OnceKey::new(OnceKind::TotpStep, "1");
    let (a1, a2) = (
        OnceKey::new(OnceKind::PasswordAddress, "1"),
        OnceKey::new(OnceKind::PasswordAddress, "2"),
    );
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
/// Lookups by keys with nul find nothing.
pub async fn lookups_by_keys_with_nul_find_nothing(s: &Stores) {
    let nul = OnceKey::new(OnceKind::ClientAssertionJti, "a\0b");
    let plain = OnceKey::new(OnceKind::ClientAssertionJti, "a");
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
