//! Sessions: a login creates a random session id recorded in the [`AccountStore`] and
//! returns a `Phoenix.Token` (signed with the endpoint's `secret_key_base`, salt
//! `"user socket"`) carrying `{"uid": id, "sid": session}`. The page gives it to
//! phoenix.js as the `token` connect param. A token is accepted while it is younger than
//! [`TOKEN_MAX_AGE`] and its session exists: logout deletes the user's sessions and
//! disconnects `user_socket:<id>`, so no tab reconnects with the old token.

use std::sync::Arc;
use std::time::Duration;

use phx_server::phoenix_token::{Token, VerifyOptions};
use rand::RngCore;
use serde_json::json;

use super::{AccountStore, User};

/// How long a session token is valid (as Phoenix apps commonly use: two weeks).
pub const TOKEN_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

const SALT: &str = "user socket";

/// Issues and checks session tokens.
#[derive(Clone)]
pub struct Sessions {
    tokens: Token,
    store: Arc<dyn AccountStore>,
    max_age: Duration,
}

/// The user a valid token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionUser {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
}

impl Sessions {
    /// Sessions signed with `secret_key_base`, valid for [`TOKEN_MAX_AGE`].
    pub fn new(secret_key_base: &[u8], store: Arc<dyn AccountStore>) -> Self {
        Self {
            tokens: Token::new(secret_key_base),
            store,
            max_age: TOKEN_MAX_AGE,
        }
    }

    /// The same with another lifetime (tests).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The account store.
    pub fn store(&self) -> &Arc<dyn AccountStore> {
        &self.store
    }

    /// A new session for `user`: its token.
    pub async fn create(&self, user: &User) -> Result<String, crate::store::StoreError> {
        let mut bytes = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut bytes);
        let sid: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.store.create_session(&sid, user.id).await?;
        Ok(self.tokens.sign(SALT, &json!({"uid": user.id, "sid": sid})))
    }

    /// The user of a token, if it is authentic, unexpired and its session not ended; `None`
    /// also when the store cannot say (see [`Sessions::check`] to tell the two apart).
    pub async fn verify(&self, token: Option<&str>) -> Option<SessionUser> {
        self.check(token).await.ok().flatten()
    }

    /// Like [`Sessions::verify`], but a store that cannot answer is an error rather than
    /// "no session": a page asking whether it is still signed in must not be signed out
    /// by a database outage (it waits and asks again on 503).
    pub async fn check(
        &self,
        token: Option<&str>,
    ) -> Result<Option<SessionUser>, SessionUnavailable> {
        let options = VerifyOptions::default().max_age(self.max_age);
        let Ok(data) = self.tokens.verify(SALT, token, options) else {
            return Ok(None);
        };
        let (Some(uid), Some(sid)) = (
            data.get("uid").and_then(|v| v.as_i64()),
            data.get("sid").and_then(|v| v.as_str()),
        ) else {
            return Ok(None);
        };
        match self.store.session_user(sid).await {
            Ok(Some(owner)) if owner == uid => {}
            Ok(_) => return Ok(None),
            Err(error) => {
                tracing::warn!(%error, "session check: store unavailable");
                return Err(SessionUnavailable);
            }
        }
        match self.store.user_by_id(uid).await {
            Ok(Some(user)) => Ok(Some(SessionUser {
                id: user.id,
                username: user.username,
            })),
            Ok(None) => Ok(None),
            Err(error) => {
                tracing::warn!(%error, "session check: store unavailable");
                Err(SessionUnavailable)
            }
        }
    }
}

/// The account store could not say whether a session exists (a database outage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the account store is unavailable")]
pub struct SessionUnavailable;
