//! Throwaway MariaDB and PostgreSQL servers for tests, benchmarks and `my2pg demo`.
//!
//! Each server gets its own temporary directory and a free port on 127.0.0.1, is started from
//! the binaries Debian installs (`/usr/sbin/mariadbd`, `/usr/lib/postgresql/*/bin`) or found on
//! `PATH`, and is stopped by its own pid. Nothing the harness did not start is ever touched.
//!
//! **Cleanup without relying on destructors.** Test binaries keep a shared server pair in a
//! `static`, and statics are never dropped; a panicking test or a `kill -9` of the test binary
//! would leak servers if cleanup depended on `Drop`. So every server is paired with a *reaper*:
//! a tiny `sh` loop that waits until the process that started the server is gone, then sends the
//! server its shutdown signal (by the pid the harness recorded), escalates to SIGKILL after ten
//! seconds, and removes the server's directory. A server stopped explicitly (by
//! [`MariaDb::stop`], [`Postgres::stop`] or `Drop`) has its reaper killed first, so a recycled
//! pid can never be signalled by mistake.
//!
//! **Sharing.** [`shared`] starts one pair per test binary on first use; [`Servers::fresh`]
//! creates a new, uniquely named database on both for each test. Tests that restart or kill a
//! server start their own with [`MariaDb::start`] / [`Postgres::start`].
//!
//! **Existing servers.** With `MY2PG_TEST_MYSQL_URL` and `MY2PG_TEST_PG_URL` set (a MySQL 8 in a
//! container, say), [`shared`] uses those instead of starting its own; tests that need to
//! restart a server still start private ones.

mod mariadb;
mod postgres;
mod process;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};

pub use mariadb::{MariaDb, MariaDbOptions};
pub use postgres::{Postgres, PostgresOptions};
pub use process::{find_mariadb_bin, find_postgres_bin, free_port};

/// Environment variable naming an existing MySQL/MariaDB server (as a `mysql://` URL with a user
/// that may create databases) to use instead of a throwaway one.
pub const ENV_TEST_MYSQL_URL: &str = "MY2PG_TEST_MYSQL_URL";
/// Environment variable naming an existing PostgreSQL server (`postgres://` URL of a superuser).
pub const ENV_TEST_PG_URL: &str = "MY2PG_TEST_PG_URL";

/// A source and a target server, started by the harness or given by URL.
#[derive(Debug)]
pub struct Servers {
    /// The throwaway MariaDB, when the harness started one.
    pub mariadb: Option<Arc<MariaDb>>,
    /// The throwaway PostgreSQL, when the harness started one.
    pub postgres: Option<Arc<Postgres>>,
    mysql_url: String,
    pg_url: String,
}

/// One test's databases: a fresh MySQL database and a fresh PostgreSQL database.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Name of the MySQL database (also used as the PostgreSQL schema name by default).
    pub name: String,
    /// `mysql://` URL of the server, without a default database.
    pub mysql_url: String,
    /// `mysql://` URL with the fresh database as default database.
    pub mysql_db_url: String,
    /// `postgres://` URL of the fresh PostgreSQL database.
    pub pg_url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Servers {
    /// Starts a throwaway pair with the given options.
    pub fn start(mysql: MariaDbOptions, pg: PostgresOptions) -> Result<Servers> {
        // Start both at once: they are independent and each takes about a second.
        let pg_thread = std::thread::spawn(move || Postgres::start(pg));
        let mariadb = Arc::new(MariaDb::start(mysql)?);
        let postgres = Arc::new(
            pg_thread
                .join()
                .map_err(|_| anyhow::anyhow!("postgres start panicked"))??,
        );
        Ok(Servers {
            mysql_url: mariadb.url(),
            pg_url: postgres.url("postgres"),
            mariadb: Some(mariadb),
            postgres: Some(postgres),
        })
    }

    /// Uses `MY2PG_TEST_MYSQL_URL` / `MY2PG_TEST_PG_URL` where set, starting throwaway servers
    /// for whichever is not.
    pub fn from_env_or_start() -> Result<Servers> {
        let mysql_env = std::env::var(ENV_TEST_MYSQL_URL)
            .ok()
            .filter(|s| !s.is_empty());
        let pg_env = std::env::var(ENV_TEST_PG_URL)
            .ok()
            .filter(|s| !s.is_empty());
        let (mariadb, mysql_url) = match mysql_env {
            Some(url) => (None, url.trim_end_matches('/').to_owned()),
            None => {
                let m = Arc::new(MariaDb::start(MariaDbOptions::default())?);
                let url = m.url();
                (Some(m), url)
            }
        };
        let (postgres, pg_url) = match pg_env {
            Some(url) => (None, url),
            None => {
                let p = Arc::new(Postgres::start(PostgresOptions::default())?);
                let url = p.url("postgres");
                (Some(p), url)
            }
        };
        Ok(Servers {
            mariadb,
            postgres,
            mysql_url,
            pg_url,
        })
    }

    /// `mysql://` URL of the source server (no default database).
    pub fn mysql_url(&self) -> &str {
        &self.mysql_url
    }

    /// `postgres://` URL of the target server's maintenance database.
    pub fn pg_admin_url(&self) -> &str {
        &self.pg_url
    }

    /// Creates a uniquely named database on both servers (`hint` plus a counter and the pid),
    /// so that tests sharing a server pair never see each other's tables.
    pub async fn fresh(&self, hint: &str) -> Result<TestDb> {
        let clean: String = hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(32)
            .collect();
        let name = format!(
            "{clean}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.database(&name).await
    }

    /// Creates the database `name` on both servers (utf8mb4 on MySQL).
    pub async fn database(&self, name: &str) -> Result<TestDb> {
        let name = name.to_owned();
        let mut conn = mysql_async::Conn::from_url(&self.mysql_url)
            .await
            .with_context(|| format!("connecting to {}", self.mysql_url))?;
        use mysql_async::prelude::Queryable;
        conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await?;
        conn.disconnect().await?;
        let (client, connection) = tokio_postgres::connect(&self.pg_url, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {}", self.pg_url))?;
        let task = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        drop(client);
        let _ = task.await;
        let pg_url = replace_pg_database(&self.pg_url, &name)?;
        Ok(TestDb {
            mysql_db_url: format!("{}/{name}", self.mysql_url),
            mysql_url: self.mysql_url.clone(),
            pg_url,
            name,
        })
    }
}

fn replace_pg_database(url: &str, db: &str) -> Result<String> {
    let mut u = url::Url::parse(url).with_context(|| format!("parsing {url}"))?;
    u.set_path(&format!("/{db}"));
    Ok(u.to_string())
}

/// The server pair shared by every test of this test binary, started on first use. Panics with
/// the cause when the servers cannot start (a test cannot run without them).
pub fn shared() -> &'static Servers {
    static SHARED: OnceLock<Servers> = OnceLock::new();
    SHARED.get_or_init(|| match Servers::from_env_or_start() {
        Ok(s) => s,
        Err(e) => panic!("cannot start the test servers: {e:#}"),
    })
}
