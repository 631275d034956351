//! The configuration file: what parses, and every problem with its key and line.

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "SECRET" => Some("0123456789abcdef0123456789abcdef".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    Config::parse(text, &env, std::path::Path::new("."))
}

const MINIMAL: &str = r#"
[[socket]]
path = "/socket"
[[socket.channel]]
topic = "room:*"
join = "all"
[[socket.channel.event]]
name = "*"
handle = "broadcast"
"#;

#[test]
fn a_minimal_file_needs_no_backend() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.sockets.len(), 1);
    assert!(config.backend.url.is_none());
    assert!(!config.sockets[0].uses_hooks());
}

#[test]
fn hooks_without_a_backend_are_an_error() {
    let text = MINIMAL.replace("join = \"all\"", "join = \"hook\"");
    let problems = parse(&text).unwrap_err();
    assert!(problems[0].message.contains("[backend]"), "{problems:?}");
}

#[test]
fn every_problem_is_reported() {
    let text = r#"
[server]
listen = "nowhere"
metrics = "yes"

[backend]
url = "ftp://x"
secret = "short"

[[socket]]
path = "socket"
idle_timeout = "60"
check_origin = ["example.com"]
[socket.auth]
method = "jwt"
algorithms = ["HS256", "RS256"]
secret = "${MISSING}"
[[socket.channel]]
topic = "room:*:x"
join = "role =="
"#;
    let problems = parse(text).unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for expected in [
        "server.listen",
        "server.metrics",
        "backend.url",
        "backend.secret",
        "socket[0].path",
        "socket[0].idle_timeout",
        "socket[0].check_origin",
        "socket[0].auth.algorithms",
        "socket[0].auth.secret",
        "socket[0].channel[0].topic",
        "socket[0].channel[0].join",
    ] {
        assert!(keys.contains(&expected), "{expected} not in {problems:#?}");
    }
    let line_of = |key: &str| problems.iter().find(|p| p.key == key).unwrap().line;
    assert_eq!(line_of("server.listen"), 3);
    assert_eq!(line_of("socket[0].channel[0].join"), 20);
}

#[test]
fn secrets_come_from_the_environment() {
    let text =
        format!("{MINIMAL}\n[backend]\nurl = \"http://127.0.0.1:9\"\nsecret = \"${{SECRET}}\"\n");
    let config = parse(&text).unwrap();
    assert_eq!(config.backend.secret, b"0123456789abcdef0123456789abcdef");
}

#[test]
fn phoenix_pubsub_keys_map_to_phx_servers_settings() {
    let text = format!(
        "{MINIMAL}\n[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\nphoenix_pubsub = \"MyApp.PubSub\"\nphoenix_node = \"phx_rs@10.0.0.8\"\ncompression_level = 6\n"
    );
    let config = parse(&text).unwrap();
    let phoenix = config.cluster.unwrap().phoenix.unwrap();
    assert_eq!(phoenix.channel(), "phx:Elixir.MyApp.PubSub.Adapter");
    assert_eq!(phoenix.node_name(), "phx_rs@10.0.0.8");
    assert_eq!(phoenix.level(), 6);
    let plain = format!("{MINIMAL}\n[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\n");
    assert!(parse(&plain).unwrap().cluster.unwrap().phoenix.is_none());
}
