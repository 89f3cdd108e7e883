//! A throwaway MariaDB server: `mariadb-install-db` into a temporary directory, then `mariadbd`
//! on a free 127.0.0.1 port with the binlog configured for change data capture (ROW format,
//! FULL row image and metadata, GTID strict mode) unless the options say otherwise, so that
//! error paths (STATEMENT format, MINIMAL images, no binlog) can be tested too.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

use super::process::{self, Reaper};

/// How long a MariaDB start may take (install + crash recovery on a loaded CI machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings of a throwaway MariaDB.
#[derive(Debug, Clone)]
pub struct MariaDbOptions {
    /// Whether the binary log is on.
    pub log_bin: bool,
    /// `binlog_format`: ROW, STATEMENT or MIXED.
    pub binlog_format: String,
    /// `binlog_row_image`: FULL, MINIMAL or NOBLOB.
    pub binlog_row_image: String,
    /// `binlog_row_metadata`: FULL, MINIMAL or NO_LOG.
    pub binlog_row_metadata: String,
    /// `server_id`.
    pub server_id: u32,
    /// `gtid_domain_id`.
    pub gtid_domain_id: u32,
    /// Further `--option=value` arguments for `mariadbd`.
    pub extra_args: Vec<String>,
}

impl Default for MariaDbOptions {
    fn default() -> Self {
        MariaDbOptions {
            log_bin: true,
            binlog_format: "ROW".into(),
            binlog_row_image: "FULL".into(),
            binlog_row_metadata: "FULL".into(),
            server_id: 1,
            gtid_domain_id: 0,
            extra_args: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Running {
    child: Option<Child>,
    pid: u32,
    reaper: Reaper,
}

/// A MariaDB server started by the harness. Stopped (and its directory removed) on drop, or by
/// its reaper when the process that started it ends.
#[derive(Debug)]
pub struct MariaDb {
    dir: PathBuf,
    port: u16,
    opts: MariaDbOptions,
    running: Mutex<Option<Running>>,
}

impl MariaDb {
    /// Installs and starts a server.
    pub fn start(opts: MariaDbOptions) -> Result<MariaDb> {
        let dir = tempfile::Builder::new()
            .prefix("my2pg-mariadb-")
            .tempdir()
            .context("creating a temporary directory for MariaDB")?
            .keep();
        let server = MariaDb {
            dir,
            port: process::free_port()?,
            opts,
            running: Mutex::new(None),
        };
        server.install()?;
        server.launch()?;
        Ok(server)
    }

    /// The server's directory (data in `data/`, log in `error.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory (binlog files are `data/binlog.NNNNNN`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://root@127.0.0.1:PORT` (root has no password on a throwaway server).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.running.lock().ok()?.as_ref().map(|r| r.pid)
    }

    fn install(&self) -> Result<()> {
        let install = process::find_mariadb_bin(&["mariadb-install-db", "mysql_install_db"])?;
        let log = self.dir.join("install.log");
        let mut cmd = Command::new(&install);
        // Own tmpdir: parallel installs otherwise collide on temporary-table files in /tmp.
        let tmp = self.dir.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg("--skip-name-resolve");
        if nix::unistd::Uid::effective().is_root() {
            cmd.arg("--user=root");
        }
        let out = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(self.dir.join("install.err"))?)
            .status()
            .with_context(|| format!("running {}", install.display()))?;
        if !out.success() {
            bail!(
                "{} failed ({out}):\n{}",
                install.display(),
                process::tail(&self.dir.join("install.err"), 20)
            );
        }
        Ok(())
    }

    fn launch(&self) -> Result<()> {
        let mariadbd = process::find_mariadb_bin(&["mariadbd", "mysqld"])?;
        let o = &self.opts;
        let log = self.dir.join("error.log");
        let mut cmd = Command::new(&mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg(format!(
                "--socket={}",
                self.dir.join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--tmpdir={}", self.dir.join("tmp").display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg("--skip-name-resolve")
            .arg(format!("--server-id={}", o.server_id))
            .arg(format!("--gtid-domain-id={}", o.gtid_domain_id))
            .arg("--gtid-strict-mode=1")
            .arg("--character-set-server=utf8mb4")
            .arg("--collation-server=utf8mb4_general_ci")
            .arg("--max-connections=400")
            .arg("--max-allowed-packet=256M")
            .arg("--innodb-buffer-pool-size=256M")
            .arg("--innodb-log-file-size=256M")
            .arg("--innodb-flush-log-at-trx-commit=2")
            .arg("--sync-binlog=0")
            .arg("--performance-schema=OFF")
            .arg("--secure-file-priv=");
        if o.log_bin {
            cmd.arg(format!(
                "--log-bin={}",
                self.data_dir().join("binlog").display()
            ))
            .arg(format!("--binlog-format={}", o.binlog_format))
            .arg(format!("--binlog-row-image={}", o.binlog_row_image))
            .arg(format!("--binlog-row-metadata={}", o.binlog_row_metadata));
        }
        if nix::unistd::Uid::effective().is_root() {
            cmd.arg("--user=root");
        }
        cmd.args(&o.extra_args);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("stderr.log"))?,
            )
            .spawn()
            .with_context(|| format!("starting {}", mariadbd.display()))?;
        let pid = child.id();
        let reaper = Reaper::spawn(std::process::id(), pid, "TERM", &self.dir)?;
        let port = self.port;
        let ready = process::wait_ready("mariadbd", &mut child, &log, START_TIMEOUT, || {
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
                .is_ok()
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

    /// Shuts the server down cleanly (SIGTERM), keeping its data for [`MariaDb::restart`].
    pub fn stop(&self) {
        if let Ok(mut g) = self.running.lock()
            && let Some(mut r) = g.take()
        {
            Self::halt(&mut r, Signal::SIGTERM);
        }
    }

    /// Kills the server with SIGKILL (a crash), keeping its data.
    pub fn kill(&self) {
        if let Ok(mut g) = self.running.lock()
            && let Some(mut r) = g.take()
        {
            Self::halt(&mut r, Signal::SIGKILL);
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

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
