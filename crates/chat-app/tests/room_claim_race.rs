//! Creating a private room and joining the same name at the same moment: whoever wins,
//! nobody but the creator is ever a member of the private room (docs/chat.md, "Rooms").
//! Raced thousands of times on both stores, through the real channels.

#[path = "support/app.rs"]
mod app;
mod support;

use std::sync::Arc;

use app::{App, Backend};
use chat_app::accounts::{
    AcceptOutcome, AccountStore, Creation, Entry, Invitation, InviteLimits, InviteOutcome,
    Membership, RoomKind, RoomName, User,
};
use chat_app::store::StoreError;
use serde_json::json;

/// Concurrent lanes, each racing one name at a time; tries in all.
const LANES: usize = 8;

async fn race(backend: Backend, tries: usize) {
    // Both stores behind `Yielding`: interleavings that a database makes likely.
    let app = Arc::new(App::with_accounts(backend, |a| Arc::new(Yielding(a))).await);
    let per_lane = tries / LANES;
    let mut lanes = Vec::new();
    for lane in 0..LANES {
        let app = app.clone();
        lanes.push(tokio::spawn(async move {
            let (alice_id, mut alice, alice_topic) =
                app.user_with_channel(&format!("alice{lane}")).await;
            let (bob_id, bob_token) = app.user(&format!("bob{lane}")).await;
            let mut bob = app.signed_in(&bob_token).await;
            let (mut private_rooms, mut breaches) = (0, Vec::new());
            for i in 0..per_lane {
                let room = format!("race-{lane}-{i}");
                let topic = format!("room:{room}");
                let (created, joined) = tokio::join!(
                    alice.push(&alice_topic, "create_private", json!({ "room": room })),
                    bob.join(&topic, json!({})),
                );
                let kind = app.accounts.room_kind(&room).await.unwrap();
                let members = app.accounts.members(&room).await.unwrap();
                if kind == Some(RoomKind::Private) {
                    private_rooms += 1;
                    assert_eq!(created.status, "ok", "{room}: {created:?}");
                    // Bob in the member list, or in the room's channel: he would get
                    // alice's messages.
                    if members != vec![alice_id] || joined.is_ok() {
                        breaches.push(format!(
                            "{room}: members {members:?}, bob ({bob_id}) joined: {}",
                            joined.is_ok()
                        ));
                    }
                } else {
                    // Bob's join made it a public room first: alice was told so.
                    assert_eq!(created.status, "error", "{room}: {created:?}");
                    assert!(!members.contains(&alice_id), "{room}: {members:?}");
                }
                if joined.is_ok() {
                    bob.leave(&topic).await;
                }
            }
            (private_rooms, breaches)
        }));
    }
    let (mut private_rooms, mut breaches) = (0, Vec::new());
    for lane in lanes {
        let (won, breached) = lane.await.unwrap();
        private_rooms += won;
        breaches.extend(breached);
    }
    assert!(
        breaches.is_empty(),
        "bob got into {} of alice's {private_rooms} private rooms ({tries} races), e.g. {:?}",
        breaches.len(),
        &breaches[..breaches.len().min(3)]
    );
    // Both outcomes occur, so the two really raced.
    assert!(private_rooms > 0, "alice never won");
    assert!(private_rooms < tries, "bob never won");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_a_join_racing_a_private_rooms_creation_never_gets_in() {
    race(Backend::Memory, 4_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_join_racing_a_private_rooms_creation_never_gets_in() {
    race(Backend::Postgres, 2_000).await;
}

/// Yields before each call, so that concurrent calls on the memory store interleave as
/// they do on a database (without it, its calls never suspend and a race between two
/// joins' store calls is too narrow to hit).
struct Yielding(Arc<dyn AccountStore>);

macro_rules! yielding {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {{
        tokio::task::yield_now().await;
        $self.0.$method($($arg),*).await
    }};
}

#[async_trait::async_trait]
impl AccountStore for Yielding {
    async fn create_user(&self, u: &str, f: &str, p: &str) -> Result<Option<User>, StoreError> {
        yielding!(self.create_user(u, f, p))
    }
    async fn user_by_fold(&self, f: &str) -> Result<Option<User>, StoreError> {
        yielding!(self.user_by_fold(f))
    }
    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        yielding!(self.user_by_id(id))
    }
    async fn create_session(&self, s: &str, u: i64) -> Result<(), StoreError> {
        yielding!(self.create_session(s, u))
    }
    async fn session_user(&self, s: &str) -> Result<Option<i64>, StoreError> {
        yielding!(self.session_user(s))
    }
    async fn delete_sessions(&self, u: i64) -> Result<(), StoreError> {
        yielding!(self.delete_sessions(u))
    }
    async fn room_kind(&self, r: &str) -> Result<Option<RoomKind>, StoreError> {
        yielding!(self.room_kind(r))
    }
    async fn claim_room(&self, r: &str, k: RoomKind) -> Result<bool, StoreError> {
        yielding!(self.claim_room(r, k))
    }
    async fn room_name(&self, r: &str, f: &str) -> Result<RoomName, StoreError> {
        yielding!(self.room_name(r, f))
    }
    async fn enter_room(&self, r: &str, f: &str, u: Option<i64>) -> Result<Entry, StoreError> {
        yielding!(self.enter_room(r, f, u))
    }
    async fn create_private(&self, r: &str, f: &str, u: i64) -> Result<Creation, StoreError> {
        yielding!(self.create_private(r, f, u))
    }
    async fn invite(
        &self,
        r: &str,
        a: i64,
        b: i64,
        l: &InviteLimits,
    ) -> Result<InviteOutcome, StoreError> {
        yielding!(self.invite(r, a, b, l))
    }
    async fn invitations(&self, u: i64, l: &InviteLimits) -> Result<Vec<Invitation>, StoreError> {
        yielding!(self.invitations(u, l))
    }
    async fn accept_invitation(
        &self,
        r: &str,
        u: i64,
        l: &InviteLimits,
    ) -> Result<AcceptOutcome, StoreError> {
        yielding!(self.accept_invitation(r, u, l))
    }
    async fn decline_invitation(
        &self,
        r: &str,
        u: i64,
        l: &InviteLimits,
    ) -> Result<bool, StoreError> {
        yielding!(self.decline_invitation(r, u, l))
    }
    async fn leave_room(&self, r: &str, u: i64, l: &InviteLimits) -> Result<(), StoreError> {
        yielding!(self.leave_room(r, u, l))
    }
    async fn add_member(&self, r: &str, u: i64) -> Result<bool, StoreError> {
        yielding!(self.add_member(r, u))
    }
    async fn remove_member(&self, r: &str, u: i64) -> Result<(), StoreError> {
        yielding!(self.remove_member(r, u))
    }
    async fn is_member(&self, r: &str, u: i64) -> Result<bool, StoreError> {
        yielding!(self.is_member(r, u))
    }
    async fn members(&self, r: &str) -> Result<Vec<i64>, StoreError> {
        yielding!(self.members(r))
    }
    async fn memberships(&self, u: i64) -> Result<Vec<Membership>, StoreError> {
        yielding!(self.memberships(u))
    }
    async fn membership_count(&self, u: i64) -> Result<usize, StoreError> {
        yielding!(self.membership_count(u))
    }
    async fn public_rooms(&self, l: usize) -> Result<Vec<(String, usize)>, StoreError> {
        yielding!(self.public_rooms(l))
    }
    async fn mark_read(&self, u: i64, r: &str, id: i64) -> Result<(), StoreError> {
        yielding!(self.mark_read(u, r, id))
    }
}
