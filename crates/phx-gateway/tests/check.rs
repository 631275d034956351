//! `phx-gateway check` over the binary, table-driven: each broken file prints every
//! problem as `FILE:LINE: KEY: message` and exits 1; the repository's example files
//! pass.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_phx-gateway");

/// A file that is fine, for the rows to break one thing in.
const BASE: &str = r#"[backend]
url = "http://127.0.0.1:9"
secret = "0123456789abcdef0123456789abcdef"

[[socket]]
path = "/socket"
[socket.auth]
method = "hook"
[[socket.channel]]
topic = "room:*"
[[socket.channel.event]]
name = "*"
handle = "forward"
"#;

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    file: String,
}

fn check(text: &str, env: &[(&str, &str)]) -> Outcome {
    let dir = std::env::temp_dir().join(format!(
        "phx-gateway-check-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(&file, text).unwrap();
    let out = run(&file, env);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn run(file: &PathBuf, env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "--config"]).arg(file);
    cmd.env_remove("PHX_GATEWAY_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("phx-gateway runs");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        file: file.display().to_string(),
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// (what is wrong, the file, every `LINE: KEY: text` the output must hold).
const ROWS: &[(&str, &str, &[&str])] = &[
    (
        "an unknown key, with a suggestion",
        "[server]\nlisten = \"127.0.0.1:0\"\nmetrcs = true\n",
        &["3: server.metrcs: unknown key (did you mean \"metrics\"?)"],
    ),
    (
        "a value of the wrong type",
        "[server]\nmetrics = \"yes\"\n",
        &["2: server.metrics: expected true or false, found a string"],
    ),
    (
        "a TOML syntax error",
        "[server\nlisten = 1\n",
        &["1: TOML syntax"],
    ),
    (
        "an unset environment variable",
        "[server]\nsecret_key_base = \"${PHX_TEST_SURELY_UNSET}\"\n",
        &["2: server.secret_key_base: environment variable PHX_TEST_SURELY_UNSET is not set"],
    ),
    (
        "a duration without a unit",
        "[[socket]]\npath = \"/s\"\nidle_timeout = \"60\"\n",
        &["3: socket[0].idle_timeout: \"60\" has no unit"],
    ),
    (
        "a bad size",
        "[[socket]]\npath = \"/s\"\nmax_frame_size = \"8 parsecs\"\n",
        &["3: socket[0].max_frame_size: unknown unit"],
    ),
    (
        "a mount path without '/' and a mount used twice",
        "[[socket]]\npath = \"socket\"\n[[socket]]\npath = \"/a\"\n[[socket]]\npath = \"/a\"\n",
        &["2: socket[0].path: must start with '/'", "6: socket[2].path: \"/a\" is mounted twice"],
    ),
    (
        "a check_origin pattern without a host",
        "[[socket]]\npath = \"/s\"\ncheck_origin = [\"example.com\"]\n",
        &["3: socket[0].check_origin: invalid allowed origin \"example.com\""],
    ),
    (
        "hooks without a backend",
        "[[socket]]\npath = \"/s\"\n[[socket.channel]]\ntopic = \"room:*\"\n",
        &["no [backend]: a socket uses a hook"],
    ),
    (
        "a short backend secret and a URL that is not http",
        "[backend]\nurl = \"ftp://x\"\nsecret = \"short\"\n[[socket]]\npath = \"/s\"\n",
        &[
            "2: backend.url: \"ftp://x\" is not an http:// or https:// URL",
            "3: backend.secret: too short",
        ],
    ),
    (
        "an event hook with retries",
        "[backend]\nurl = \"http://h\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n[backend.event]\nretries = 2\n[[socket]]\npath = \"/s\"\n",
        &["5: backend.event.retries: event calls are never retried"],
    ),
    (
        "JWT: mixed algorithm families, none, and a secret for RS",
        "[[socket]]\npath = \"/s\"\n[socket.auth]\nmethod = \"jwt\"\nalgorithms = [\"RS256\", \"HS256\", \"none\"]\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
        &[
            "5: socket[0].auth.algorithms: \"none\" is not supported",
            "5: socket[0].auth.algorithms: mixes algorithm families",
            "6: socket[0].auth.secret: RS (RSA) algorithms verify with a public key, never a shared secret",
        ],
    ),
    (
        "JWT: a PEM that is not a key, and two key sources",
        "[[socket]]\npath = \"/s\"\n[socket.auth]\nmethod = \"jwt\"\nalgorithms = [\"ES256\"]\npublic_key = \"-----BEGIN PUBLIC KEY-----\\nnope\\n-----END PUBLIC KEY-----\"\njwks_url = \"https://issuer/jwks.json\"\n",
        &["7: socket[0].auth.jwks_url: give one key source, not public_key and jwks_url"],
    ),
    (
        "JWT: an unreadable key file",
        "[[socket]]\npath = \"/s\"\n[socket.auth]\nmethod = \"jwt\"\nalgorithms = [\"RS256\"]\npublic_key_file = \"no-such.pem\"\n",
        &["6: socket[0].auth.public_key_file: cannot read"],
    ),
    (
        "an unknown auth method",
        "[[socket]]\npath = \"/s\"\n[socket.auth]\nmethod = \"ldap\"\n",
        &["4: socket[0].auth.method: \"ldap\": expected \"none\", \"hook\", \"phoenix_token\" or \"jwt\""],
    ),
    (
        "a malformed join expression and template",
        "[[socket]]\npath = \"/s\"\n[socket.auth]\nmethod = \"none\"\n[[socket.channel]]\ntopic = \"room:*\"\njoin = \"role = 'admin'\"\npresence = { key = \"{sub\" }\n",
        &[
            "7: socket[0].channel[0].join: bad expression",
            "8: socket[0].channel[0].presence.key: bad template: unclosed '{'",
        ],
    ),
    (
        "an event rule with an unknown handle and a broadcast-only key",
        "[[socket]]\npath = \"/s\"\n[socket.auth]\nmethod = \"none\"\n[[socket.channel]]\ntopic = \"room:*\"\njoin = \"all\"\n[[socket.channel.event]]\nname = \"a\"\nhandle = \"ignore\"\n[[socket.channel.event]]\nname = \"b\"\nhandle = \"refuse\"\nself = false\n",
        &[
            "10: socket[0].channel[0].event[0].handle: \"ignore\": expected \"forward\", \"broadcast\" or \"refuse\"",
            "14: socket[0].channel[0].event[1].self: only a \"broadcast\" rule takes this",
        ],
    ),
    (
        "an outgoing rule that does nothing",
        "[[socket]]\npath = \"/s\"\n[socket.auth]\nmethod = \"none\"\n[[socket.channel]]\ntopic = \"room:*\"\njoin = \"all\"\n[[socket.channel.outgoing]]\nevent = \"new_msg\"\n",
        &["8: socket[0].channel[0].outgoing[0]: an outgoing rule needs drop = true, set or remove"],
    ),
    (
        "a '*' inside a topic pattern",
        "[[socket]]\npath = \"/s\"\n[socket.auth]\nmethod = \"none\"\n[[socket.channel]]\ntopic = \"room:*:x\"\njoin = \"all\"\n",
        &["6: socket[0].channel[0].topic: '*' may only end a pattern"],
    ),
    (
        "TLS: certificate and key files that cannot be read",
        "[tls]\ncert_file = \"no-such-cert.pem\"\nkey_file = \"no-such-key.pem\"\n[[socket]]\npath = \"/s\"\n",
        &[
            "2: tls.cert_file: cannot read",
            "3: tls.key_file: cannot read",
        ],
    ),
    (
        "TLS: a certificate file without a certificate (the config file itself)",
        "[tls]\ncert_file = \"gateway.toml\"\nkey_file = \"gateway.toml\"\n[[socket]]\npath = \"/s\"\n",
        &["2: tls.cert_file: ", "no certificate"],
    ),
    (
        "TLS: no key_file, a zero handshake timeout, a misspelt key",
        "[tls]\ncert_file = \"c.pem\"\nhandshake_timeout = \"0s\"\nhandshake_timout = \"5s\"\n[[socket]]\npath = \"/s\"\n",
        &[
            "1: tls.key_file: missing (required in [tls])",
            "3: tls.handshake_timeout: must be more than zero",
            "4: tls.handshake_timout: unknown key (did you mean \"handshake_timeout\"?)",
        ],
    ),
    (
        "TLS: an unset environment variable for the certificate",
        "[tls]\ncert_file = \"${PHX_TEST_SURELY_UNSET_CERT}\"\nkey_file = \"k.pem\"\n[[socket]]\npath = \"/s\"\n",
        &["2: tls.cert_file: environment variable PHX_TEST_SURELY_UNSET_CERT is not set"],
    ),
    (
        "Phoenix PubSub: nonode@nohost as the node name",
        "[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\nphoenix_pubsub = \"MyApp.PubSub\"\nphoenix_node = \"nonode@nohost\"\n[[socket]]\npath = \"/s\"\n",
        &[
            "4: cluster.phoenix_node: invalid Phoenix node name \"nonode@nohost\"",
        ],
    ),
    (
        "Phoenix PubSub: a compression level out of range",
        "[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\nphoenix_pubsub = \"MyApp.PubSub\"\nphoenix_node = \"phx_rs@10.0.0.8\"\ncompression_level = 10\n[[socket]]\npath = \"/s\"\n",
        &["5: cluster.compression_level: compression level 10 is not between 0 (none) and 9"],
    ),
    (
        "Phoenix PubSub: a PubSub name with a space, and no node name",
        "[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\nphoenix_pubsub = \"My App\"\n[[socket]]\npath = \"/s\"\n",
        &["1: cluster.phoenix_node: missing: this node's name among the Phoenix nodes"],
    ),
    (
        "Phoenix PubSub: a PubSub name with a space",
        "[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\nphoenix_pubsub = \"My App\"\nphoenix_node = \"phx_rs@h\"\n[[socket]]\npath = \"/s\"\n",
        &["3: cluster.phoenix_pubsub: invalid Phoenix PubSub name \"My App\""],
    ),
    (
        "Phoenix PubSub keys without redis_url",
        "[cluster]\nphoenix_pubsub = \"MyApp.PubSub\"\nphoenix_node = \"phx_rs@h\"\n[[socket]]\npath = \"/s\"\n",
        &["1: cluster.redis_url: missing: phoenix_pubsub needs the Redis the Phoenix nodes use"],
    ),
    (
        "Phoenix node and level without phoenix_pubsub",
        "[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\nphoenix_node = \"phx_rs@h\"\ncompression_level = 3\n[[socket]]\npath = \"/s\"\n",
        &[
            "3: cluster.phoenix_node: only with phoenix_pubsub",
            "4: cluster.compression_level: only with phoenix_pubsub",
        ],
    ),
    (
        "static files: a missing file, a dir under a path without '/', neither, a relative path",
        "[[static]]\npath = \"/\"\nfile = \"no-such.html\"\n[[static]]\npath = \"/assets\"\ndir = \".\"\n[[static]]\npath = \"/x\"\n[[static]]\npath = \"x\"\nfile = \"gateway.toml\"\n[[socket]]\npath = \"/s\"\n",
        &[
            "3: static[0].file: cannot read",
            "5: static[1].path: a dir is served under a path ending in '/'",
            "7: static[2]: a [[static]] needs file or dir",
            "10: static[3].path: must start with '/'",
        ],
    ),
    (
        "no socket at all",
        "[server]\nlisten = \"127.0.0.1:0\"\n",
        &["no [[socket]]"],
    ),
];

#[test]
fn every_broken_file_gets_every_problem_with_its_line() {
    for (what, text, expected) in ROWS {
        let out = check(text, &[]);
        assert_eq!(
            out.code,
            Some(1),
            "{what}: exit code; stderr:\n{}",
            out.stderr
        );
        for line in *expected {
            let want = if line.contains(": ")
                && line
                    .split(':')
                    .next()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            {
                format!("{}:{line}", out.file)
            } else {
                (*line).to_owned()
            };
            assert!(
                out.stderr.contains(&want),
                "{what}: expected {want:?} in:\n{}",
                out.stderr
            );
        }
        assert!(out.stdout.is_empty(), "{what}: nothing on stdout");
        // A key the reader read is never also called unknown (a table left early); a
        // syntax error's recovery may leave keys outside their table, so it is exempt.
        if !expected
            .iter()
            .any(|l| l.contains("unknown key") || l.contains("TOML syntax"))
        {
            assert!(
                !out.stderr.contains("unknown key"),
                "{what}: no unknown key expected in:\n{}",
                out.stderr
            );
        }
    }
}

#[test]
fn the_base_file_is_fine() {
    let out = check(BASE, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("ok: 1 socket(s) (/socket)"),
        "{}",
        out.stdout
    );
}

#[test]
fn several_problems_are_all_printed_in_file_order() {
    let text = BASE.replace(
        "path = \"/socket\"",
        "path = \"/socket\"\nidle_timout = \"5s\"\nmax_channels = -1",
    );
    let out = check(&text, &[]);
    assert_eq!(out.code, Some(1));
    let problems: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with(&out.file) && l.contains(": socket"))
        .collect();
    assert_eq!(problems.len(), 2, "{}", out.stderr);
    assert!(
        problems[0].contains(":7: socket[0].idle_timout: unknown key"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].contains(":8: socket[0].max_channels: expected a non-negative integer"),
        "{}",
        problems[1]
    );
    assert!(out.stderr.trim_end().ends_with("2 problems"));
}

#[test]
fn the_repositorys_example_files_check() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let env = [
        ("PHX_GATEWAY_SECRET", "0123456789abcdef0123456789abcdef"),
        ("PHX_GATEWAY_API_KEY", "0123456789abcdef0123456789abcdef"),
        ("BACKEND_URL", "http://127.0.0.1:5000"),
        (
            "SECRET_KEY_BASE",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        // The Python example serves phoenix.mjs from js-client's node_modules, which a
        // fresh clone has not installed yet: any readable file stands in for it here.
        (
            "PHOENIX_MJS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ),
    ];
    for file in [
        "examples/gateway/gateway.toml",
        "examples/gateway/node/gateway.toml",
        "examples/gateway/python/gateway.toml",
        "crates/phx-bench/gateway.toml",
    ] {
        let out = run(&root.join(file), &env);
        assert_eq!(out.code, Some(0), "{file}:\n{}", out.stderr);
        assert!(out.stdout.starts_with("ok: "), "{file}: {}", out.stdout);
    }
}

#[test]
fn the_config_may_come_from_the_environment() {
    let dir = std::env::temp_dir().join(format!("phx-gateway-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("g.toml");
    std::fs::write(&file, BASE).unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .env("PHX_GATEWAY_CONFIG", &file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0));
    let missing = Command::new(BIN)
        .env_remove("PHX_GATEWAY_CONFIG")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("--config FILE or set PHX_GATEWAY_CONFIG"));
}
