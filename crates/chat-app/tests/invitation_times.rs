//! The invitation clock on both account stores (docs/chat.md, "Invitations"): a cooldown
//! ends, a pending invitation expires. Short durations, waited for by polling.

mod support;

use std::time::{Duration, Instant};

use chat_app::accounts::{
    names, AcceptOutcome, AccountStore, Creation, InviteLimits, InviteOutcome, MemoryAccounts,
    PostgresAccounts,
};
use support::TestDb;

const PATIENCE: Duration = Duration::from_secs(30);

async fn users(store: &dyn AccountStore) -> (i64, i64) {
    let mut ids = Vec::new();
    for name in ["ann", "bob"] {
        let user = store
            .create_user(name, &names::fold(name), "$argon2id$x")
            .await
            .unwrap()
            .unwrap();
        ids.push(user.id);
    }
    (ids[0], ids[1])
}

/// Polls `invite` until it is no longer cooling down; the outcome then.
async fn invite_when_cooled(
    store: &dyn AccountStore,
    room: &str,
    ann: i64,
    bob: i64,
    limits: &InviteLimits,
) -> InviteOutcome {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match store.invite(room, ann, bob, limits).await.unwrap() {
            InviteOutcome::CoolingDown { .. } => {
                assert!(Instant::now() < deadline, "the cooldown never ended");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

async fn cooldowns_end_and_invitations_expire(store: &dyn AccountStore) {
    let (ann, bob) = users(store).await;
    for room in ["club", "hall"] {
        assert_eq!(
            store.create_private(room, room, ann).await.unwrap(),
            Creation::Created
        );
    }
    let limits = InviteLimits {
        cooldown: Duration::from_millis(1500),
        lifetime: Duration::from_secs(3600),
        ..InviteLimits::default()
    };
    assert!(matches!(
        store.invite("club", ann, bob, &limits).await.unwrap(),
        InviteOutcome::Invited(_)
    ));
    assert!(store
        .decline_invitation("club", bob, &limits)
        .await
        .unwrap());
    let started = Instant::now();
    assert!(matches!(
        store.invite("hall", ann, bob, &limits).await.unwrap(),
        InviteOutcome::CoolingDown { .. }
    ));
    assert!(matches!(
        invite_when_cooled(store, "hall", ann, bob, &limits).await,
        InviteOutcome::Invited(_)
    ));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "cooled down too early"
    );

    // A short lifetime: the invitation is listed, then gone, and cannot be accepted.
    let short = InviteLimits {
        lifetime: Duration::from_millis(1500),
        ..limits
    };
    assert_eq!(store.invitations(bob, &short).await.unwrap().len(), 1);
    let deadline = Instant::now() + PATIENCE;
    while !store.invitations(bob, &short).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the invitation never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        store.accept_invitation("hall", bob, &short).await.unwrap(),
        AcceptOutcome::NoInvitation
    );
    // Expired, it no longer counts: a new one may be sent.
    assert!(matches!(
        store.invite("hall", ann, bob, &short).await.unwrap(),
        InviteOutcome::Invited(_)
    ));
}

#[tokio::test]
async fn memory_cooldowns_end_and_invitations_expire() {
    cooldowns_end_and_invitations_expire(&MemoryAccounts::new()).await;
}

#[tokio::test]
async fn postgres_cooldowns_end_and_invitations_expire() {
    let db = TestDb::new().await;
    let store = PostgresAccounts::connect(&db.url(), 2).await.unwrap();
    cooldowns_end_and_invitations_expire(&store).await;
}
