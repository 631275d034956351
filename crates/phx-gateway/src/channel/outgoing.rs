//! Outgoing rules (docs/gateway.md, `[[socket.channel.outgoing]]`): Phoenix's
//! `intercept` + `handle_out` as data. For each subscribed socket, drop a broadcast or
//! rewrite its payload by a rule over that socket's assigns.

use phx_server::Payload;
use serde_json::{Map, Value};

use crate::config::{Field, OutRule};
use crate::vars::Vars;

/// What to push to this socket, if anything.
pub fn apply(rules: &[OutRule], event: &str, payload: &Payload, vars: Vars<'_>) -> Option<Payload> {
    let mut object: Option<Map<String, Value>> = match payload {
        Payload::Json(_) => payload.parse::<Map<String, Value>>(),
        Payload::Binary(_) => None,
    };
    let mut changed = false;
    for rule in rules.iter().filter(|r| r.event == event) {
        let parsed = object.as_ref().map(|o| Value::Object(o.clone()));
        let vars = Vars {
            payload: parsed.as_ref(),
            ..vars
        };
        if let Some(when) = &rule.when {
            if !when.eval(&vars) {
                continue;
            }
        }
        if rule.drop {
            return None;
        }
        // A binary broadcast cannot be rewritten: only drop rules apply to it.
        let Some(map) = object.as_mut() else { continue };
        for key in &rule.remove {
            changed |= map.remove(key).is_some();
        }
        for (key, field) in &rule.set {
            let value = match field {
                Field::Template(t) => t.render_value(&vars),
                Field::Literal(v) => v.clone(),
            };
            map.insert(key.clone(), value);
            changed = true;
        }
    }
    match (changed, object) {
        (true, Some(map)) => Some(Payload::json(&map)),
        _ => Some(payload.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Expr;
    use crate::template::Template;
    use serde_json::json;

    fn rule(
        event: &str,
        when: Option<&str>,
        drop: bool,
        set: &[(&str, &str)],
        remove: &[&str],
    ) -> OutRule {
        OutRule {
            event: event.into(),
            when: when.map(|w| Expr::parse(w).unwrap()),
            drop,
            set: set
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        Field::Template(Template::parse(v).unwrap()),
                    )
                })
                .collect(),
            remove: remove.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn drops_and_rewrites_per_socket() {
        let rules = vec![
            rule("new_msg", Some("payload.author == sub"), true, &[], &[]),
            rule("new_msg", Some("role != 'admin'"), false, &[], &["email"]),
            rule(
                "new_msg",
                None,
                false,
                &[("transport", ":{transport}")],
                &[],
            ),
        ];
        let payload = Payload::json(&json!({"author": "ann", "email": "a@x", "body": "hi"}));
        let run = |assigns: Value| {
            apply(
                &rules,
                "new_msg",
                &payload,
                Vars {
                    assigns: assigns.as_object(),
                    transport: Some("websocket"),
                    ..Vars::default()
                },
            )
            .map(|p| p.parse::<Value>().unwrap())
        };
        assert_eq!(
            run(json!({"sub": "ann"})),
            None,
            "the author's own copy is dropped"
        );
        assert_eq!(
            run(json!({"sub": "bob", "role": "user"})),
            Some(json!({"author": "ann", "body": "hi", "transport": ":websocket"}))
        );
        assert_eq!(
            run(json!({"sub": "eve", "role": "admin"})),
            Some(json!({"author": "ann", "email": "a@x", "body": "hi", "transport": ":websocket"}))
        );
        // Other events pass unchanged.
        let other = apply(&rules, "typing", &payload, Vars::default()).unwrap();
        assert_eq!(other.as_json(), payload.as_json());
    }

    #[test]
    fn binary_broadcasts_can_be_dropped_not_rewritten() {
        let rules = vec![
            rule("blob", None, false, &[("x", "1")], &[]),
            rule("blob", Some("muted"), true, &[], &[]),
        ];
        let payload = Payload::Binary(bytes::Bytes::from_static(&[1, 2]));
        let muted = json!({"muted": true});
        let dropped = apply(
            &rules,
            "blob",
            &payload,
            Vars {
                assigns: muted.as_object(),
                ..Vars::default()
            },
        );
        assert!(dropped.is_none());
        let kept = apply(&rules, "blob", &payload, Vars::default()).unwrap();
        assert!(matches!(kept, Payload::Binary(b) if b.as_ref() == [1, 2]));
    }
}
