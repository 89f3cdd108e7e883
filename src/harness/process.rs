//! Process plumbing shared by the MariaDB and PostgreSQL harnesses: finding binaries where
//! Debian puts them, free ports, the reaper that stops a server when its owner is gone, and
//! signalling by pid.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Finds a MariaDB/MySQL program: `PATH` first, then Debian's and the tarball locations.
pub fn find_mariadb_bin(names: &[&str]) -> Result<PathBuf> {
    find_bin(names, &["/usr/sbin", "/usr/bin", "/usr/local/mysql/bin", "/usr/local/mariadb/bin"]).with_context(|| {
        format!(
            "{} not found on PATH or in /usr/sbin, /usr/bin; install MariaDB: sudo apt-get install -y mariadb-server",
            names.join(" / ")
        )
    })
}

/// Finds a PostgreSQL server program: the newest `/usr/lib/postgresql/<version>/bin` first
/// (Debian keeps server programs off `PATH`), then `PATH`.
pub fn find_postgres_bin(name: &str) -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    for (_, dir) in versions.iter().rev() {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    find_bin(&[name], &["/usr/local/pgsql/bin"]).with_context(|| {
        format!("{name} not found in /usr/lib/postgresql/*/bin or on PATH; install PostgreSQL: sudo apt-get install -y postgresql")
    })
}

fn find_bin(names: &[&str], extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(extra_dirs.iter().map(PathBuf::from));
    let dirs: Vec<PathBuf> = dirs.collect();
    for name in names {
        for dir in &dirs {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A free TCP port on 127.0.0.1 (bound and released; the server binds it right after).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a free port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

/// Whether a process with this pid exists and has not exited (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), signal);
}

/// Waits until `pid` is gone (reaping it when it is our child) or `timeout` passes.
pub fn wait_gone(child: &mut Option<Child>, pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(c) = child.as_mut() {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
        } else if !alive(pid) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `ready` every 50 ms until it returns true, the process `child` exits, or `timeout`.
pub fn wait_ready(
    what: &str,
    child: &mut Child,
    log: &Path,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "{what} exited during start-up ({status}); last lines of {}:\n{}",
                log.display(),
                tail(log, 20)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{what} not ready after {}s; last lines of {}:\n{}",
                timeout.as_secs(),
                log.display(),
                tail(log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `n` lines of a log file (empty when unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The reaper of one server: see the module documentation of `harness`.
#[derive(Debug)]
pub struct Reaper {
    child: Child,
}

impl Reaper {
    /// Starts a reaper that, once process `owner` is gone, sends `sig` to `server_pid`,
    /// escalates to SIGKILL after ten seconds and removes `dir`.
    pub fn spawn(owner: u32, server_pid: u32, sig: &str, dir: &Path) -> Result<Reaper> {
        const SCRIPT: &str = r#"
owner=$1; pid=$2; sig=$3; dir=$4
trap '' INT HUP
# A zombie (exited, not yet reaped by an init that may never reap it) counts as gone.
alive() { kill -0 "$1" 2>/dev/null && ! grep -q ') Z' "/proc/$1/stat" 2>/dev/null; }
while alive "$owner"; do sleep 0.2; done
kill -"$sig" "$pid" 2>/dev/null
i=0
while alive "$pid" && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$pid" 2>/dev/null
sleep 0.2
rm -rf "$dir"
"#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("my2pg-harness-reaper")
            .arg(owner.to_string())
            .arg(server_pid.to_string())
            .arg(sig)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Own process group: a Ctrl-C aimed at the test run must not kill the reaper
            // before it has done its job.
            .process_group(0)
            .spawn()
            .context("starting the harness reaper (sh)")?;
        Ok(Reaper { child })
    }

    /// Stops the reaper (the server is being stopped explicitly).
    pub fn disarm(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use std::os::unix::process::CommandExt as _;

/// The uid and gid to run PostgreSQL as when we are root (it refuses to run as root): the
/// `postgres` user Debian's package creates, else `nobody`.
pub fn unprivileged_user() -> Result<Option<(u32, u32)>> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(u)) = nix::unistd::User::from_name(name) {
            return Ok(Some((u.uid.as_raw(), u.gid.as_raw())));
        }
    }
    bail!(
        "running as root and neither user postgres nor nobody exists; PostgreSQL refuses to run as root"
    )
}
