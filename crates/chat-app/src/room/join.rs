//! Who may join a room, and under which name: the room opened within the client
//! address's creation budget, access to private rooms and DMs, look-alike names, guest
//! names (docs/chat.md, "Rooms", "Guest names").

use std::net::IpAddr;
use std::time::Instant;

use phx_server::ChannelContext;
use serde_json::Value;

use super::{reason, Refused, RoomChannel};
use crate::accounts::access::{self, Denied};
use crate::accounts::guest_names;
use crate::accounts::{names, AccountStore, RoomKind};
use crate::connect::ChatClient;
use crate::directory::OpenError;

impl RoomChannel {
    /// Makes sure the room exists, creating it within `peer`'s budget.
    pub(super) async fn open(&self, peer: IpAddr) -> Result<(), Refused> {
        self.rooms
            .open(&self.room, peer, Instant::now())
            .await
            .map_err(|error| match error {
                OpenError::TooManyNewRooms => reason(OpenError::TooManyNewRooms.to_string()),
                OpenError::Store(error) => {
                    tracing::warn!(%error, room = %self.room, "join: store unavailable");
                    reason("unavailable")
                }
            })
    }

    /// Whether this client may join the room (recording the room and the membership in
    /// one step: `access::authorize`); the room's kind.
    pub(super) async fn authorize(
        &self,
        accounts: &dyn AccountStore,
        client: &ChatClient,
    ) -> Result<RoomKind, Refused> {
        access::authorize(accounts, &self.room, client)
            .await
            .map_err(|denied| self.denied(denied))
    }

    /// The reply to a refused join.
    pub(super) fn denied(&self, denied: Denied) -> Refused {
        match denied {
            Denied::Unauthorized => reason("unauthorized"),
            Denied::LookAlike(similar) => access::look_alike_reply(&similar).into(),
            Denied::MixedScripts => reason(access::MIXED_SCRIPTS),
            Denied::Store(error) => {
                tracing::warn!(%error, room = %self.room, "join: account store unavailable");
                reason("unavailable")
            }
        }
    }

    /// A guest's name: never a registered user's, never another guest's in this room
    /// (docs/chat.md, "Guest names"); held while this channel lives.
    pub(super) async fn guest_name(
        &mut self,
        accounts: &dyn AccountStore,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<(), Refused> {
        match accounts.user_by_fold(&names::fold(&self.username)).await {
            Ok(None) => {}
            Ok(Some(_)) => return Err(reason("this name belongs to a registered user")),
            Err(error) => {
                tracing::warn!(%error, "join: account store unavailable");
                return Err(reason("unavailable"));
            }
        }
        let Some(guest_names) = &self.guest_names else {
            return Ok(());
        };
        let taken = || reason("this name is used by another guest");
        // Other nodes' guests: as far as the room's presence has replicated.
        if guest_names.clustered() {
            let present = ctx.presence().list().parse::<Value>().unwrap_or_default();
            if guest_names::present_elsewhere(&present, &self.presence_key, &self.username) {
                return Err(taken());
            }
        }
        let client = ctx.assigns();
        let held = guest_names
            .claim(
                &self.room,
                &self.username,
                &client.guest_id,
                client.keyed,
                Instant::now(),
            )
            .ok_or_else(taken)?;
        self.held_name = Some(held);
        Ok(())
    }
}
