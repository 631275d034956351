//! Every account store call bounded by a deadline, as `TimeoutStore` bounds the message
//! store: a database that stops answering turns joins and logins into quick
//! `unavailable` answers instead of held sockets and requests.

use std::time::Duration;

use async_trait::async_trait;

use super::{
    AcceptOutcome, AccountStore, Creation, Entry, Invitation, InviteLimits, InviteOutcome,
    Membership, RoomKind, RoomName, User,
};
use crate::store::StoreError;

/// An [`AccountStore`] whose every call fails with `TimedOut` past `timeout`.
pub struct TimeoutAccounts<S> {
    inner: S,
    timeout: Duration,
}

impl<S: AccountStore> TimeoutAccounts<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

#[async_trait]
impl<S: AccountStore> AccountStore for TimeoutAccounts<S> {
    async fn create_user(
        &self,
        username: &str,
        fold: &str,
        password_hash: &str,
    ) -> Result<Option<User>, StoreError> {
        tokio::time::timeout(
            self.timeout,
            self.inner.create_user(username, fold, password_hash),
        )
        .await
        .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn user_by_fold(&self, fold: &str) -> Result<Option<User>, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.user_by_fold(fold))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.user_by_id(id))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn create_session(&self, session: &str, user_id: i64) -> Result<(), StoreError> {
        tokio::time::timeout(self.timeout, self.inner.create_session(session, user_id))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn session_user(&self, session: &str) -> Result<Option<i64>, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.session_user(session))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn delete_sessions(&self, user_id: i64) -> Result<(), StoreError> {
        tokio::time::timeout(self.timeout, self.inner.delete_sessions(user_id))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn room_kind(&self, room: &str) -> Result<Option<RoomKind>, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.room_kind(room))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn claim_room(&self, room: &str, kind: RoomKind) -> Result<bool, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.claim_room(room, kind))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn room_name(&self, room: &str, fold: &str) -> Result<RoomName, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.room_name(room, fold))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn enter_room(
        &self,
        room: &str,
        fold: &str,
        user: Option<i64>,
    ) -> Result<Entry, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.enter_room(room, fold, user))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn create_private(
        &self,
        room: &str,
        fold: &str,
        creator: i64,
    ) -> Result<Creation, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.create_private(room, fold, creator))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn invite(
        &self,
        room: &str,
        inviter: i64,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<InviteOutcome, StoreError> {
        tokio::time::timeout(
            self.timeout,
            self.inner.invite(room, inviter, invitee, limits),
        )
        .await
        .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn invitations(
        &self,
        user_id: i64,
        limits: &InviteLimits,
    ) -> Result<Vec<Invitation>, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.invitations(user_id, limits))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn accept_invitation(
        &self,
        room: &str,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<AcceptOutcome, StoreError> {
        tokio::time::timeout(
            self.timeout,
            self.inner.accept_invitation(room, invitee, limits),
        )
        .await
        .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn decline_invitation(
        &self,
        room: &str,
        invitee: i64,
        limits: &InviteLimits,
    ) -> Result<bool, StoreError> {
        tokio::time::timeout(
            self.timeout,
            self.inner.decline_invitation(room, invitee, limits),
        )
        .await
        .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn leave_room(
        &self,
        room: &str,
        user_id: i64,
        limits: &InviteLimits,
    ) -> Result<(), StoreError> {
        tokio::time::timeout(self.timeout, self.inner.leave_room(room, user_id, limits))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn add_member(&self, room: &str, user_id: i64) -> Result<bool, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.add_member(room, user_id))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn remove_member(&self, room: &str, user_id: i64) -> Result<(), StoreError> {
        tokio::time::timeout(self.timeout, self.inner.remove_member(room, user_id))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn is_member(&self, room: &str, user_id: i64) -> Result<bool, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.is_member(room, user_id))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn members(&self, room: &str) -> Result<Vec<i64>, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.members(room))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn memberships(&self, user_id: i64) -> Result<Vec<Membership>, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.memberships(user_id))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn membership_count(&self, user_id: i64) -> Result<usize, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.membership_count(user_id))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn public_rooms(&self, limit: usize) -> Result<Vec<(String, usize)>, StoreError> {
        tokio::time::timeout(self.timeout, self.inner.public_rooms(limit))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }

    async fn mark_read(&self, user_id: i64, room: &str, id: i64) -> Result<(), StoreError> {
        tokio::time::timeout(self.timeout, self.inner.mark_read(user_id, room, id))
            .await
            .map_err(|_| StoreError::TimedOut(self.timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Hangs;

    #[async_trait]
    impl AccountStore for Hangs {
        async fn create_user(
            &self,
            _username: &str,
            _fold: &str,
            _password_hash: &str,
        ) -> Result<Option<User>, StoreError> {
            std::future::pending().await
        }
        async fn user_by_fold(&self, _fold: &str) -> Result<Option<User>, StoreError> {
            std::future::pending().await
        }
        async fn user_by_id(&self, _id: i64) -> Result<Option<User>, StoreError> {
            std::future::pending().await
        }
        async fn create_session(&self, _session: &str, _user_id: i64) -> Result<(), StoreError> {
            std::future::pending().await
        }
        async fn session_user(&self, _session: &str) -> Result<Option<i64>, StoreError> {
            std::future::pending().await
        }
        async fn delete_sessions(&self, _user_id: i64) -> Result<(), StoreError> {
            std::future::pending().await
        }
        async fn room_kind(&self, _room: &str) -> Result<Option<RoomKind>, StoreError> {
            std::future::pending().await
        }
        async fn claim_room(&self, _room: &str, _kind: RoomKind) -> Result<bool, StoreError> {
            std::future::pending().await
        }
        async fn room_name(&self, _room: &str, _fold: &str) -> Result<RoomName, StoreError> {
            std::future::pending().await
        }
        async fn enter_room(
            &self,
            _room: &str,
            _fold: &str,
            _user: Option<i64>,
        ) -> Result<Entry, StoreError> {
            std::future::pending().await
        }
        async fn create_private(
            &self,
            _room: &str,
            _fold: &str,
            _creator: i64,
        ) -> Result<Creation, StoreError> {
            std::future::pending().await
        }
        async fn invite(
            &self,
            _room: &str,
            _inviter: i64,
            _invitee: i64,
            _limits: &InviteLimits,
        ) -> Result<InviteOutcome, StoreError> {
            std::future::pending().await
        }
        async fn invitations(
            &self,
            _user_id: i64,
            _limits: &InviteLimits,
        ) -> Result<Vec<Invitation>, StoreError> {
            std::future::pending().await
        }
        async fn accept_invitation(
            &self,
            _room: &str,
            _invitee: i64,
            _limits: &InviteLimits,
        ) -> Result<AcceptOutcome, StoreError> {
            std::future::pending().await
        }
        async fn decline_invitation(
            &self,
            _room: &str,
            _invitee: i64,
            _limits: &InviteLimits,
        ) -> Result<bool, StoreError> {
            std::future::pending().await
        }
        async fn leave_room(
            &self,
            _room: &str,
            _user_id: i64,
            _limits: &InviteLimits,
        ) -> Result<(), StoreError> {
            std::future::pending().await
        }
        async fn add_member(&self, _room: &str, _user_id: i64) -> Result<bool, StoreError> {
            std::future::pending().await
        }
        async fn remove_member(&self, _room: &str, _user_id: i64) -> Result<(), StoreError> {
            std::future::pending().await
        }
        async fn is_member(&self, _room: &str, _user_id: i64) -> Result<bool, StoreError> {
            std::future::pending().await
        }
        async fn members(&self, _room: &str) -> Result<Vec<i64>, StoreError> {
            std::future::pending().await
        }
        async fn memberships(&self, _user_id: i64) -> Result<Vec<Membership>, StoreError> {
            std::future::pending().await
        }
        async fn membership_count(&self, _user_id: i64) -> Result<usize, StoreError> {
            std::future::pending().await
        }
        async fn public_rooms(&self, _limit: usize) -> Result<Vec<(String, usize)>, StoreError> {
            std::future::pending().await
        }
        async fn mark_read(&self, _user_id: i64, _room: &str, _id: i64) -> Result<(), StoreError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_hangs_times_out() {
        let store = TimeoutAccounts::new(Hangs, Duration::from_secs(5));
        assert!(matches!(
            store.user_by_fold("ann").await,
            Err(StoreError::TimedOut(_))
        ));
        assert!(matches!(
            store.is_member("lobby", 1).await,
            Err(StoreError::TimedOut(_))
        ));
        assert!(matches!(
            store.enter_room("lobby", "lobby", Some(1)).await,
            Err(StoreError::TimedOut(_))
        ));
        assert!(matches!(
            store.invite("club", 1, 2, &InviteLimits::default()).await,
            Err(StoreError::TimedOut(_))
        ));
    }
}
