//! Room names that look alike, and invitations that wait for consent (docs/chat.md,
//! "Rooms" and "Invitations"), on both stores through the real channels.

#[path = "support/app.rs"]
mod app;
mod support;

use app::{App, Backend};
use phx_server::testing::TestSocket;
use serde_json::{json, Value};

fn refused(reason: &str) -> Result<Value, Value> {
    Err(json!({ "reason": reason }))
}

async fn push(
    socket: &mut TestSocket,
    topic: &str,
    event: &str,
    payload: Value,
) -> (String, Value) {
    let reply = socket.push(topic, event, payload).await;
    (reply.status, reply.response)
}

async fn look_alike_names(backend: Backend) {
    let app = App::new(backend).await;
    let (_, mut ann, ann_topic) = app.user_with_channel("ann").await;
    ann.join("room:release-team", json!({})).await.unwrap();
    let similar = json!({ "reason": "a room with a similar name exists", "room": "release-team" });
    for look_alike in [
        "Release-Team",
        "RELEASE-TEAM",
        "r\u{435}lease-team",
        "ｒｅｌｅａｓｅ-team",
    ] {
        assert_eq!(
            ann.join(&format!("room:{look_alike}"), json!({})).await,
            Err(similar.clone()),
            "{look_alike}"
        );
        let (status, reply) = push(
            &mut ann,
            &ann_topic,
            "create_private",
            json!({ "room": look_alike }),
        )
        .await;
        assert_eq!(
            (status.as_str(), &reply),
            ("error", &similar),
            "{look_alike}"
        );
    }
    // Guests too; and nothing was created for the refused names.
    let mut guest = app.guest(None).await;
    assert_eq!(
        guest
            .join("room:Release-team", json!({ "username": "zed" }))
            .await,
        Err(similar.clone())
    );
    assert!(!app.store.room_exists("Release-Team").await.unwrap());
    // The room itself, by its exact name: as ever.
    guest
        .join("room:release-team", json!({ "username": "zed" }))
        .await
        .unwrap();

    // A new name may not mix scripts; an unmixed non-Latin name is fine.
    assert_eq!(
        ann.join("room:r\u{435}lease-notes", json!({})).await,
        refused("room name mixes scripts (for example Latin and Cyrillic letters)")
    );
    ann.join("room:\u{440}\u{435}\u{43b}\u{438}\u{437}", json!({}))
        .await
        .unwrap();
    ann.join("room:日本語のへや", json!({})).await.unwrap();

    // A private room's look-alike: refused without telling its exact name.
    let (status, _) = push(
        &mut ann,
        &ann_topic,
        "create_private",
        json!({ "room": "secret-plans" }),
    )
    .await;
    assert_eq!(status, "ok");
    let (_, bob_token) = app.user("bob").await;
    let mut bob = app.signed_in(&bob_token).await;
    assert_eq!(
        bob.join("room:Secret-Plans", json!({})).await,
        refused("a room with a similar name exists")
    );
    assert_eq!(
        bob.join("room:secret-plans", json!({})).await,
        refused("unauthorized")
    );
}

async fn invitations_wait_for_consent(backend: Backend) {
    let app = App::new(backend).await;
    let (_, mut ann, ann_topic) = app.user_with_channel("ann").await;
    let (bob_id, mut bob, bob_topic) = app.user_with_channel("bob").await;
    let (cat_id, mut cat, cat_topic) = app.user_with_channel("cat").await;
    let (_, mut dan, dan_topic) = app.user_with_channel("dan").await;
    for room in ["club", "club2"] {
        let (status, _) = push(
            &mut ann,
            &ann_topic,
            "create_private",
            json!({ "room": room }),
        )
        .await;
        assert_eq!(status, "ok");
    }
    ann.join("room:club", json!({})).await.unwrap();

    // Invited: pending, not a member, cannot join; the invitation is listed.
    let (status, reply) = push(
        &mut ann,
        &ann_topic,
        "invite",
        json!({"room": "club", "username": "BOB"}),
    )
    .await;
    assert_eq!(
        (status.as_str(), &reply),
        (
            "ok",
            &json!({"room": "club", "username": "bob", "pending": true})
        )
    );
    let invited = bob.assert_push(&bob_topic, "invited").await;
    assert_eq!(
        (&invited["room"], &invited["by"], &invited["kind"]),
        (&json!("club"), &json!("ann"), &json!("private"))
    );
    assert!(invited["by_author"].as_str().unwrap().starts_with("user:"));
    assert!(!app.accounts.is_member("club", bob_id).await.unwrap());
    assert_eq!(
        bob.join("room:club", json!({})).await,
        refused("unauthorized")
    );
    let (_, list) = push(&mut bob, &bob_topic, "rooms", json!({})).await;
    assert_eq!(list["rooms"], json!([]));
    assert_eq!(list["invitations"][0]["room"], "club");
    // Asking again while pending: the same answer, no second note.
    let (status, _) = push(
        &mut ann,
        &ann_topic,
        "invite",
        json!({"room": "club", "username": "bob"}),
    )
    .await;
    assert_eq!(status, "ok");

    // Accepted: a member, every tab told, the room in the list.
    let (status, reply) = push(
        &mut bob,
        &bob_topic,
        "accept_invite",
        json!({"room": "club"}),
    )
    .await;
    assert_eq!(
        (status.as_str(), &reply),
        (
            "ok",
            &json!({"room": "club", "kind": "private", "title": "club"})
        )
    );
    assert_eq!(
        bob.assert_push(&bob_topic, "invitation_answered").await,
        json!({"room": "club", "accepted": true})
    );
    assert!(app.accounts.is_member("club", bob_id).await.unwrap());
    bob.join("room:club", json!({})).await.unwrap();
    let (_, list) = push(&mut bob, &bob_topic, "rooms", json!({})).await;
    assert_eq!(
        (&list["rooms"][0]["room"], &list["invitations"]),
        (&json!("club"), &json!([]))
    );
    let (_, reply) = push(
        &mut ann,
        &ann_topic,
        "invite",
        json!({"room": "club", "username": "bob"}),
    )
    .await;
    assert_eq!(reply, json!({"reason": "already a member"}));
    let (_, reply) = push(
        &mut bob,
        &bob_topic,
        "accept_invite",
        json!({"room": "club"}),
    )
    .await;
    assert_eq!(reply, json!({"reason": "no such invitation"}));

    // Declined: not a member; neither the inviter (any room) nor anyone (this room) may
    // invite again for the cooldown, and the refusal says until when.
    push(
        &mut ann,
        &ann_topic,
        "invite",
        json!({"room": "club", "username": "dan"}),
    )
    .await;
    push(
        &mut dan,
        &dan_topic,
        "accept_invite",
        json!({"room": "club"}),
    )
    .await;
    push(
        &mut ann,
        &ann_topic,
        "invite",
        json!({"room": "club", "username": "cat"}),
    )
    .await;
    cat.assert_push(&cat_topic, "invited").await;
    let (status, reply) = push(
        &mut cat,
        &cat_topic,
        "decline_invite",
        json!({"room": "club"}),
    )
    .await;
    assert_eq!((status.as_str(), &reply), ("ok", &json!({"room": "club"})));
    assert_eq!(
        cat.assert_push(&cat_topic, "invitation_answered").await,
        json!({"room": "club", "accepted": false})
    );
    assert!(!app.accounts.is_member("club", cat_id).await.unwrap());
    let mut cooled = Vec::new();
    for room in ["club", "club2"] {
        cooled.push(
            push(
                &mut ann,
                &ann_topic,
                "invite",
                json!({"room": room, "username": "cat"}),
            )
            .await,
        );
    }
    cooled.push(
        push(
            &mut dan,
            &dan_topic,
            "invite",
            json!({"room": "club", "username": "cat"}),
        )
        .await,
    );
    for (status, reply) in cooled {
        assert_eq!(status, "error", "{reply}");
        let retry_at = reply["retry_at"].as_str().expect("retry_at");
        assert_eq!(
            reply["reason"],
            format!("this user declined or left recently: no new invitation before {retry_at}")
        );
    }
    let (_, reply) = push(
        &mut cat,
        &cat_topic,
        "decline_invite",
        json!({"room": "club"}),
    )
    .await;
    assert_eq!(reply, json!({"reason": "no such invitation"}));

    // Left: nobody may invite them back to that room for the cooldown; elsewhere they may.
    let (status, _) = push(&mut bob, &bob_topic, "leave_room", json!({"room": "club"})).await;
    assert_eq!(status, "ok");
    let (_, reply) = push(
        &mut dan,
        &dan_topic,
        "invite",
        json!({"room": "club", "username": "bob"}),
    )
    .await;
    assert!(reply["retry_at"].is_string(), "{reply}");
    let (status, _) = push(
        &mut ann,
        &ann_topic,
        "invite",
        json!({"room": "club2", "username": "bob"}),
    )
    .await;
    assert_eq!(status, "ok");
}

/// One user invites a victim to many rooms: the victim's own limits are untouched, the
/// inviter is stopped at 50 pending invitations, the victim holds at most 100.
async fn an_invitation_flood_blocks_nothing(backend: Backend) {
    let app = App::new(backend).await;
    let (victim_id, mut victim, victim_topic) = app.user_with_channel("victim").await;
    // The victim is in 197 rooms of their own: three more fit.
    for i in 0..197 {
        app.accounts
            .add_member(&format!("own{i}"), victim_id)
            .await
            .unwrap();
    }
    let mut inviters = Vec::new();
    for n in 0..3 {
        inviters.push(app.user_with_channel(&format!("mallory{n}")).await);
    }
    let mut refusals = Vec::new();
    for (n, (_, socket, topic)) in inviters.iter_mut().enumerate() {
        for i in 0..55 {
            let room = format!("spam-{n}-{i}");
            let (status, reply) =
                push(socket, topic, "create_private", json!({ "room": room })).await;
            assert_eq!(status, "ok", "{reply}");
            let (status, reply) = push(
                socket,
                topic,
                "invite",
                json!({"room": room, "username": "victim"}),
            )
            .await;
            if status != "ok" {
                refusals.push((
                    n,
                    i,
                    reply["reason"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    let inviter_full = "you have 50 pending invitations: wait until some are answered or expire";
    let invitee_full = "this user has too many pending invitations";
    // Summed up as (inviter, first refused try, refusals, reason) so a failure reads well.
    let mut summary: Vec<(usize, i32, usize, String)> = Vec::new();
    for (n, i, why) in refusals {
        match summary.last_mut() {
            Some(last) if last.0 == n && last.3 == why => last.2 += 1,
            _ => summary.push((n, i, 1, why)),
        }
    }
    assert_eq!(
        summary,
        vec![
            (0, 50, 5, inviter_full.to_owned()),
            (1, 50, 5, inviter_full.to_owned()),
            (2, 0, 55, invitee_full.to_owned()),
        ]
    );
    assert_eq!(app.accounts.membership_count(victim_id).await.unwrap(), 197);

    // A friend's invitation can still come in once the victim declines one of the flood.
    let (_, mut friend, friend_topic) = app.user_with_channel("friend").await;
    push(
        &mut friend,
        &friend_topic,
        "create_private",
        json!({"room": "friends"}),
    )
    .await;
    let (_, reply) = push(
        &mut friend,
        &friend_topic,
        "invite",
        json!({"room": "friends", "username": "victim"}),
    )
    .await;
    assert_eq!(reply, json!({"reason": invitee_full}));
    let (status, _) = push(
        &mut victim,
        &victim_topic,
        "decline_invite",
        json!({"room": "spam-0-0"}),
    )
    .await;
    assert_eq!(status, "ok");
    let (status, _) = push(
        &mut friend,
        &friend_topic,
        "invite",
        json!({"room": "friends", "username": "victim"}),
    )
    .await;
    assert_eq!(status, "ok");

    // The victim: creates a room, opens a DM, accepts the friend's invitation.
    let (status, reply) = push(
        &mut victim,
        &victim_topic,
        "create_private",
        json!({"room": "mine"}),
    )
    .await;
    assert_eq!(status, "ok", "{reply}");
    let (status, reply) = push(
        &mut victim,
        &victim_topic,
        "open_dm",
        json!({"username": "friend"}),
    )
    .await;
    assert_eq!(status, "ok", "{reply}");
    let (status, reply) = push(
        &mut victim,
        &victim_topic,
        "accept_invite",
        json!({"room": "friends"}),
    )
    .await;
    assert_eq!(status, "ok", "{reply}");
    assert_eq!(app.accounts.membership_count(victim_id).await.unwrap(), 200);
    // Now full: accepting one more is refused, and the invitation stays pending.
    let (_, reply) = push(
        &mut victim,
        &victim_topic,
        "accept_invite",
        json!({"room": "spam-1-0"}),
    )
    .await;
    assert_eq!(reply, json!({"reason": "at most 200 rooms per user"}));
    let (_, list) = push(&mut victim, &victim_topic, "rooms", json!({})).await;
    assert_eq!(list["invitations"].as_array().unwrap().len(), 99);
}

#[tokio::test]
async fn memory_look_alike_room_names_are_refused() {
    look_alike_names(Backend::Memory).await;
}

#[tokio::test]
async fn postgres_look_alike_room_names_are_refused() {
    look_alike_names(Backend::Postgres).await;
}

#[tokio::test]
async fn memory_invitations_wait_for_consent() {
    invitations_wait_for_consent(Backend::Memory).await;
}

#[tokio::test]
async fn postgres_invitations_wait_for_consent() {
    invitations_wait_for_consent(Backend::Postgres).await;
}

#[tokio::test]
async fn memory_an_invitation_flood_blocks_nothing() {
    an_invitation_flood_blocks_nothing(Backend::Memory).await;
}

#[tokio::test]
async fn postgres_an_invitation_flood_blocks_nothing() {
    an_invitation_flood_blocks_nothing(Backend::Postgres).await;
}
