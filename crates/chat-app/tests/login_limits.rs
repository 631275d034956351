//! The account API's budgets as a client meets them, over a loopback port and from
//! several 127.x source addresses: a name no account can have spends nothing, one
//! address cannot spend another user's login budget, only accounts created spend the
//! registration budget, every refusal says when to retry, and a legitimate login is
//! served while many addresses keep the hash queue full.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_app::accounts::api::{AccountsHttp, ApiLimits};
use chat_app::accounts::session::Sessions;
use chat_app::accounts::{AccountStore, MemoryAccounts};
use chat_app::connect::SessionConnect;
use chat_app::limit::Rate;
use chat_app::web::Web;
use phx_server::{Endpoint, SocketConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &[u8] = b"a test secret_key_base that is at least 64 bytes long, for tokens!";
const GOOD: &str = "correct horse battery";
const HOUR: Duration = Duration::from_secs(3600);

/// The account API alone, served on a loopback port.
async fn serve(limits: ApiLimits) -> SocketAddr {
    let accounts: Arc<dyn AccountStore> = Arc::new(MemoryAccounts::new());
    let sessions = Sessions::new(SECRET, accounts);
    let http = AccountsHttp::with_limits(sessions.clone(), Web::new("/nonexistent"), limits);
    let endpoint = Endpoint::builder()
        .socket("/socket", SocketConfig::new(SessionConnect::new(sessions)))
        .http(http)
        .secret_key_base(SECRET.to_vec())
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { endpoint.serve(listener).await });
    addr
}

/// The `n`-th test source address, 127.77.x.y (never 127.0.0.1).
fn source(n: u16) -> IpAddr {
    let [hi, lo] = n.to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(127, 77, hi, lo.max(1)))
}

struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

/// `POST path` with a JSON body from the source address `from`.
async fn post(addr: SocketAddr, from: IpAddr, path: &str, body: Value) -> Answer {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(120),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("an answer within 120 s")
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let retry_after = head
        .lines()
        .find_map(|line| line.strip_prefix("retry-after: "))
        .map(|v| v.trim().parse().unwrap());
    Answer {
        status,
        retry_after,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

fn credentials(username: &str, password: &str) -> Value {
    json!({ "username": username, "password": password })
}

/// A 429 says when to retry, the same in the header, the text and the field.
fn assert_says_when(answer: &Answer, what: &str) -> u64 {
    assert_eq!(answer.status, 429, "{}", answer.body);
    let secs = answer.retry_after.expect("a Retry-After header");
    assert!(secs >= 1);
    assert_eq!(
        answer.body,
        json!({ "error": format!("{what}: try again in {secs} s"), "retry_after": secs })
    );
    secs
}

#[tokio::test]
async fn a_name_no_account_can_have_spends_no_budget_of_anyone() {
    let addr = serve(ApiLimits {
        login_per_address: Rate::new(3, HOUR),
        ..ApiLimits::default()
    })
    .await;
    let me = source(1);
    let reply = post(addr, me, "/api/register", credentials("ann", GOOD)).await;
    assert_eq!(reply.status, 201);
    // 4 KB names, markup, blanks: each a failed login, none spending the address's 3.
    let long = "x".repeat(4000);
    for name in [long.as_str(), "<script>", "   ", "a/b"] {
        for _ in 0..5 {
            let reply = post(addr, me, "/api/login", credentials(name, GOOD)).await;
            assert_eq!(
                (reply.status, &reply.body),
                (401, &json!({"error": "invalid username or password"}))
            );
        }
    }
    let reply = post(addr, me, "/api/login", credentials("ann", GOOD)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn one_address_cannot_spend_another_users_login_budget() {
    let addr = serve(ApiLimits {
        login_per_address: Rate::new(3, HOUR),
        login_per_username: Rate::new(5, HOUR),
        ..ApiLimits::default()
    })
    .await;
    let (attacker, ann) = (source(2), source(3));
    assert_eq!(
        post(addr, ann, "/api/register", credentials("ann", GOOD))
            .await
            .status,
        201
    );
    // The attacker's three wrong passwords, then 30 more refused by its own budget.
    for n in 0..33 {
        let reply = post(
            addr,
            attacker,
            "/api/login",
            credentials("Ann", "wrong guess!"),
        )
        .await;
        if n < 3 {
            assert_eq!(reply.status, 401);
        } else {
            assert_says_when(&reply, "too many attempts");
        }
    }
    // Only the three attempts its address was allowed spent ann's budget (5): she is in.
    let reply = post(addr, ann, "/api/login", credentials("ann", GOOD)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn only_accounts_created_spend_the_registration_budget_and_refusals_say_when() {
    let addr = serve(ApiLimits {
        register_per_address: Rate::new(2, HOUR),
        register_attempts_per_address: Rate::new(8, HOUR),
        ..ApiLimits::default()
    })
    .await;
    let me = source(4);
    let register = |name: &'static str, password: &'static str| {
        post(addr, me, "/api/register", credentials(name, password))
    };
    // Three weak passwords and a blank name: refused, nothing spent.
    for password in ["short", "1234567890", "password123"] {
        assert_eq!(register("ann", password).await.status, 422);
    }
    assert_eq!(register(" ", GOOD).await.status, 422);
    assert_eq!(register("ann", GOOD).await.status, 201);
    // A taken name: refused, nothing spent.
    assert_eq!(register("ANN", GOOD).await.status, 422);
    assert_eq!(register("bob", GOOD).await.status, 201);
    // Two accounts made: the third waits, and is told for how long (about an hour).
    let third = register("cat", GOOD).await;
    let secs = assert_says_when(&third, "too many new accounts from this address");
    assert!((3000..=3600).contains(&secs), "{secs}");
    // Eight attempts so far: the flood budget refuses the ninth, whatever it is.
    let flood = register("dan", "short").await;
    assert_says_when(&flood, "too many attempts");
}

#[tokio::test]
async fn a_legitimate_login_is_served_while_120_addresses_keep_the_hash_queue_full() {
    let open = Rate::new(1_000_000, Duration::from_millis(1));
    let addr = serve(ApiLimits {
        login_per_address: open,
        login_per_username: open,
        register_per_address: open,
        ..ApiLimits::default()
    })
    .await;
    let legit = source(1000);
    assert_eq!(
        post(addr, legit, "/api/register", credentials("ann", GOOD))
            .await
            .status,
        201
    );
    // 120 addresses, each keeping 8 logins of unknown users in flight (each a hash);
    // a refused one is sent again 100 ms later.
    let stop = Arc::new(AtomicBool::new(false));
    let hashed = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for a in 0..120u16 {
        for b in 0..8u16 {
            let (stop, hashed, refused) = (stop.clone(), hashed.clone(), refused.clone());
            attackers.push(tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let name = format!("nobody{a}x{b}x{n}");
                    let reply =
                        post(addr, source(a + 1), "/api/login", credentials(&name, GOOD)).await;
                    match reply.status {
                        401 => {
                            hashed.fetch_add(1, Ordering::Relaxed);
                        }
                        429 => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        other => panic!("attacker got {other}"),
                    }
                }
            }));
        }
    }
    // Let the queue fill: a few rounds of hashes.
    while hashed.load(Ordering::Relaxed) < 40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = hashed.load(Ordering::Relaxed);
    let started = Instant::now();
    let reply = tokio::time::timeout(
        Duration::from_secs(300),
        post(addr, legit, "/api/login", credentials("ann", GOOD)),
    )
    .await
    .expect("the legitimate login was answered");
    let waited = started.elapsed();
    let passed = hashed.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    println!(
        "legitimate login: {} after {waited:?}; {passed} attackers' hashes meanwhile, \
         {} refusals in all",
        reply.status,
        refused.load(Ordering::Relaxed)
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Served in turn: about one hash per waiting address before it, not the 960 ahead
    // of it in arrival order. (Counted in hashes, not seconds: the machine is shared.)
    assert!(
        passed <= 2 * 120 + 40,
        "{passed} hashes of the 120 addresses went before the legitimate login"
    );
    for attacker in attackers {
        attacker.abort();
    }
}
