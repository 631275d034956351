//! Start-up as a new user meets it, over the real binary: every ordinary configuration
//! mistake exits non-zero with one line that names it (no backtrace, even with
//! `RUST_BACKTRACE=1`), and the accepted forms of `--bind`, empty `DATABASE_URL` and
//! `--version` work.

mod binary;
mod support;

use binary::{command, get, page_dir, App};

/// Runs the binary to its exit (it must not start serving) and returns (code, stderr).
fn run_to_exit(args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut cmd = command();
    cmd.args(args)
        .env("STATIC_DIR", page_dir(true))
        .env("PORT", "0");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let child = cmd.spawn().unwrap();
    let out = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !out.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "chat-app {args:?} {env:?} did not exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = out.join().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (name, arguments, environment, the expected error text).
type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, String)>, String);

#[tokio::test]
async fn each_bad_configuration_exits_non_zero_with_its_message() {
    // The PostgreSQL rows need the server: say so if it is down, do not skip.
    drop(support::admin().await);
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let no_page = std::env::temp_dir().join("chat-app-no-such-page-dir");
    let no_phoenix = page_dir(false);
    let s = |v: &str| v.to_owned();
    let cases: Vec<Case> = vec![
        (
            "bad bind",
            vec!["--bind", "0.0.0.0:80"],
            vec![],
            s(r#""0.0.0.0:80" is not an address to bind"#),
        ),
        (
            "bad port",
            vec!["--port", "70000"],
            vec![],
            s("invalid value '70000' for '--port"),
        ),
        (
            "bad --log",
            vec!["--log", "chat_app=loud"],
            vec![],
            s(r#"invalid log filter "chat_app=loud" in --log/LOG_LEVEL"#),
        ),
        (
            "bad RUST_LOG",
            vec![],
            vec![("RUST_LOG", s("=== nope"))],
            s("in RUST_LOG"),
        ),
        (
            "bad LOG_FORMAT",
            vec![],
            vec![("LOG_FORMAT", s("xml"))],
            s("invalid value 'xml'"),
        ),
        (
            "missing static dir",
            vec![],
            vec![("STATIC_DIR", no_page.display().to_string())],
            s("has no index.html"),
        ),
        (
            "missing phoenix.js",
            vec![],
            vec![("STATIC_DIR", no_phoenix.display().to_string())],
            s("phoenix.mjs is missing: run `npm ci"),
        ),
        (
            "bad check origin",
            vec!["--check-origin", "yes"],
            vec![],
            s("expected `true`, `false`"),
        ),
        (
            "missing database",
            vec![],
            vec![(
                "DATABASE_URL",
                s("postgres://postgres@127.0.0.1:5432/chat_no_such_db"),
            )],
            s(r#"database "chat_no_such_db" does not exist"#),
        ),
        (
            "missing role",
            vec![],
            vec![(
                "DATABASE_URL",
                s("postgres://chat_no_such_role@127.0.0.1:5432/postgres"),
            )],
            s(r#"role "chat_no_such_role" does not exist"#),
        ),
        (
            "connection refused",
            vec![],
            vec![(
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:{closed_port}/chat"),
            )],
            format!("127.0.0.1:{closed_port}: error connecting to server: Connection refused"),
        ),
        (
            "bad connection string",
            vec![],
            vec![("DATABASE_URL", s("postgres://postgres@127.0.0.1:port/chat"))],
            s("invalid connection string: invalid value for option `port`"),
        ),
        (
            "bad sslmode",
            vec![],
            vec![(
                "DATABASE_URL",
                s("postgres://postgres@127.0.0.1/chat?sslmode=always"),
            )],
            s(r#"sslmode="always" is not one of disable"#),
        ),
        (
            // The local server has TLS (a self-signed certificate): require gets as far
            // as the database check, verify-full refuses the certificate.
            "sslmode=require reaches the server over TLS",
            vec![],
            vec![(
                "DATABASE_URL",
                s("postgres://postgres@127.0.0.1:5432/chat_no_such_db?sslmode=require"),
            )],
            s(r#"database "chat_no_such_db" does not exist"#),
        ),
        (
            "sslmode=verify-full refuses an unknown issuer",
            vec![],
            vec![(
                "DATABASE_URL",
                s("postgres://postgres@127.0.0.1:5432/postgres?sslmode=verify-full"),
            )],
            s("error performing TLS handshake: invalid peer certificate: UnknownIssuer"),
        ),
        (
            "missing sslrootcert",
            vec![],
            vec![(
                "DATABASE_URL",
                s("postgres://postgres@127.0.0.1:5432/postgres?sslmode=verify-full&sslrootcert=/no/such/ca.pem"),
            )],
            s("sslrootcert=/no/such/ca.pem: cannot read it"),
        ),
    ];
    let mut failures = Vec::new();
    for (name, args, env, expected) in &cases {
        let (code, stderr) = run_to_exit(args, env);
        let ok = code.is_some_and(|c| c != 0)
            && stderr.contains(expected.as_str())
            && !stderr.contains("backtrace")
            && !stderr.contains("panicked")
            && stderr.lines().filter(|l| l.contains("error")).count() == 1;
        if !ok {
            failures.push(format!(
                "{name}: exit {code:?}, expected {expected:?} once, got:\n{stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

#[test]
fn version_prints_the_crate_version() {
    let out = command().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("chat-app {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn localhost_and_ipv6_binds_serve_and_empty_database_url_means_memory() {
    for bind in ["localhost", "::"] {
        let mut cmd = command();
        cmd.args(["--bind", bind])
            .env("STATIC_DIR", page_dir(true))
            .env("DATABASE_URL", "");
        let app = App::start(cmd);
        let (status, body) = get(&app.addr, "/healthz").await;
        assert_eq!(status, 200, "{bind}: {body}");
        let (status, body) = get(&app.addr, "/readyz").await;
        assert_eq!(status, 200, "{bind}: {body}");
        assert_eq!(get(&app.addr, "/health").await.0, 404, "/health is gone");
    }
}

#[tokio::test]
async fn json_logs_and_a_start_line_without_the_database_password() {
    let db = support::TestDb::new().await;
    // Trust authentication ignores the password; the log must not show it anyway.
    let url = db
        .url()
        .replace("postgres@", "postgres:hunter2-not-logged@");
    assert!(url.contains("hunter2-not-logged"), "{url}");
    // Twice: the second start finds the schema in place (where PostgreSQL would send a
    // NOTICE about `schema_migrations` without `client_min_messages = warning`).
    for _ in 0..2 {
        start_with_json_logs(&db, &url);
    }
}

fn start_with_json_logs(db: &support::TestDb, url: &str) {
    let mut cmd = command();
    cmd.env("STATIC_DIR", page_dir(true))
        .env("DATABASE_URL", url)
        .env("LOG_FORMAT", "json")
        .env("PORT", "0");
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let start = loop {
        let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no start line: {lines:?}");
        };
        let value: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        lines.push(line);
        if value["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("chat-app listening on http://"))
        {
            break value;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let fields = &start["fields"];
    let database = fields["database"].as_str().unwrap();
    assert!(
        database.starts_with(&format!("postgres://postgres@127.0.0.1:5432/{}", db.name)),
        "{database}"
    );
    assert!(database.contains("password set"), "{database}");
    for key in [
        "version",
        "listen",
        "static_dir",
        "origin",
        "api",
        "metrics",
        "drain",
    ] {
        assert!(!fields[key].is_null(), "the start line has {key}: {start}");
    }
    assert!(
        lines.iter().all(|l| !l.contains("hunter2-not-logged")),
        "the password is never logged: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("NOTICE") && !l.contains("already exists")),
        "no PostgreSQL notice: {lines:?}"
    );
}
