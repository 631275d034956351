//! PostgreSQL errors in an operator's terms: tokio-postgres displays only the kind
//! ("db error", "error connecting to server", "invalid connection string") and keeps
//! what went wrong in the error's source.

use std::error::Error as _;

use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::Config;

/// One line saying what is wrong with connecting to PostgreSQL and, for the usual
/// mistakes, what to do: the missing database or role by name, the `host:port` that
/// refused, the option of the connection string that does not parse.
pub fn explain(error: &tokio_postgres::Error, config: Option<&Config>) -> String {
    let target = config.map(target).unwrap_or_default();
    if let Some(db) = error.as_db_error() {
        let hint = match *db.code() {
            SqlState::INVALID_CATALOG_NAME => {
                let name = config.and_then(Config::get_dbname).unwrap_or("<name>");
                format!(
                    " (create it with `createdb {name}`, or name another database in DATABASE_URL)"
                )
            }
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION | SqlState::INVALID_PASSWORD => {
                " (check the user and password in DATABASE_URL)".to_owned()
            }
            _ => String::new(),
        };
        return format!("PostgreSQL at {target}: {}{hint}", db.message());
    }
    // The kind, then every cause: tokio-postgres keeps the useful part in the source.
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    if config.is_some() {
        format!("PostgreSQL at {target}: {line}")
    } else {
        line
    }
}

/// `host:port` (every host, comma-separated), without user or password.
pub fn target(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}/.s.PGSQL.{port}", path.display()),
            }
        })
        .collect();
    if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    }
}

/// The connection string for the start-up line: user, `host:port`, database and TLS
/// mode; never the password.
pub fn describe(config: &Config) -> String {
    format!(
        "postgres://{}@{}/{} (sslmode={:?}, password {})",
        config.get_user().unwrap_or("<default>"),
        target(config),
        config.get_dbname().unwrap_or("<default>"),
        config.get_ssl_mode(),
        if config.get_password().is_some() {
            "set"
        } else {
            "not set"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_connection_string_names_the_bad_part() {
        for (url, part) in [
            ("postgres://u@h:notaport/db", "port"),
            ("postgres://u@h/db?sslmode=sometimes", "sslmode"),
            ("host=h port=x", "port"),
        ] {
            let error = url.parse::<Config>().unwrap_err();
            let line = explain(&error, None);
            assert!(line.contains(part), "{url}: {line}");
        }
    }

    #[test]
    fn the_target_and_description_never_show_the_password() {
        let config: Config = "postgres://alice:s3cret@db.example:6543/chat"
            .parse()
            .unwrap();
        assert_eq!(target(&config), "db.example:6543");
        let line = describe(&config);
        assert!(line.contains("alice@db.example:6543/chat"), "{line}");
        assert!(!line.contains("s3cret"), "{line}");
    }
}
