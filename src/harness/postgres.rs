//! A throwaway PostgreSQL server: `initdb` into a temporary directory (as the `postgres` user
//! when we are root, since PostgreSQL refuses to run as root), then `postgres` on a free
//! 127.0.0.1 port with trust authentication. Readiness is read from `postmaster.pid`, whose
//! eighth line becomes `ready` once the server accepts connections (the port opens earlier,
//! during recovery, and would answer "the database system is starting up").

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

use super::process::{self, Reaper};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings of a throwaway PostgreSQL.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Further `-c name=value` settings.
    pub settings: Vec<(String, String)>,
}

#[derive(Debug)]
struct Running {
    child: Option<Child>,
    pid: u32,
    reaper: Reaper,
}

/// A PostgreSQL server started by the harness.
#[derive(Debug)]
pub struct Postgres {
    dir: PathBuf,
    port: u16,
    opts: PostgresOptions,
    user: Option<(u32, u32)>,
    running: Mutex<Option<Running>>,
}

impl Postgres {
    /// Initialises and starts a server.
    pub fn start(opts: PostgresOptions) -> Result<Postgres> {
        let dir = tempfile::Builder::new()
            .prefix("my2pg-postgres-")
            .tempdir()
            .context("creating a temporary directory for PostgreSQL")?
            .keep();
        let user = process::unprivileged_user()?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .with_context(|| format!("giving {} to uid {uid}", dir.display()))?;
        }
        let server = Postgres {
            dir,
            port: process::free_port()?,
            opts,
            user,
            running: Mutex::new(None),
        };
        server.initdb()?;
        server.launch()?;
        Ok(server)
    }

    /// The server's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/<db>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The postmaster's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.running.lock().ok()?.as_ref().map(|r| r.pid)
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt as _;
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn initdb(&self) -> Result<()> {
        let initdb = process::find_postgres_bin("initdb")?;
        let log = self.dir.join("initdb.log");
        let status = self
            .command(&initdb)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .status()
            .with_context(|| format!("running {}", initdb.display()))?;
        if !status.success() {
            bail!(
                "{} failed ({status}):\n{}",
                initdb.display(),
                process::tail(&log, 20)
            );
        }
        // The superuser `postgres` is trusted; every other user must give its password, so that
        // tests can check what wrong credentials do.
        let hba = "local all all trust\n\
                   host all postgres 127.0.0.1/32 trust\n\
                   host all all 127.0.0.1/32 scram-sha-256\n\
                   host all postgres ::1/128 trust\n\
                   host all all ::1/128 scram-sha-256\n";
        std::fs::write(self.dir.join("data").join("pg_hba.conf"), hba)
            .context("writing pg_hba.conf")?;
        Ok(())
    }

    fn launch(&self) -> Result<()> {
        let postgres = process::find_postgres_bin("postgres")?;
        let log = self.dir.join("postgres.log");
        let mut cmd = self.command(&postgres);
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300"])
            .args(["-c", "shared_buffers=256MB"])
            .args(["-c", "max_wal_size=2GB"])
            .args(["-c", "log_min_messages=warning"]);
        for (k, v) in &self.opts.settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(&log)?,
            )
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", postgres.display()))?;
        let pid = child.id();
        // SIGINT is PostgreSQL's "fast shutdown": it does not wait for clients to disconnect.
        let reaper = Reaper::spawn(std::process::id(), pid, "INT", &self.dir)?;
        let pidfile = self.dir.join("data").join("postmaster.pid");
        let ready = process::wait_ready("postgres", &mut child, &log, START_TIMEOUT, || {
            std::fs::read_to_string(&pidfile)
                .map(|s| s.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
                .unwrap_or(false)
        });
        let mut running = Running {
            child: Some(child),
            pid,
            reaper,
        };
        if let Err(e) = ready {
            Self::halt(&mut running, Signal::SIGKILL);
            return Err(e);
        }
        *self
            .running
            .lock()
            .map_err(|_| anyhow::anyhow!("harness lock poisoned"))? = Some(running);
        Ok(())
    }

    fn halt(r: &mut Running, sig: Signal) {
        r.reaper.disarm();
        process::signal(r.pid, sig);
        if !process::wait_gone(&mut r.child, r.pid, Duration::from_secs(30)) {
            process::signal(r.pid, Signal::SIGKILL);
            process::wait_gone(&mut r.child, r.pid, Duration::from_secs(5));
        }
    }

    /// Fast shutdown (SIGINT), keeping the data.
    pub fn stop(&self) {
        if let Ok(mut g) = self.running.lock()
            && let Some(mut r) = g.take()
        {
            Self::halt(&mut r, Signal::SIGINT);
        }
    }

    /// Immediate shutdown (SIGQUIT: a crash as far as the data is concerned), keeping the data.
    pub fn kill(&self) {
        if let Ok(mut g) = self.running.lock()
            && let Some(mut r) = g.take()
        {
            Self::halt(&mut r, Signal::SIGQUIT);
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&self) -> Result<()> {
        self.stop();
        self.launch()
    }

    /// Starts a stopped server again.
    pub fn start_again(&self) -> Result<()> {
        if self.pid().is_some() {
            return Ok(());
        }
        self.launch()
    }
}

use std::os::unix::process::CommandExt as _;

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
