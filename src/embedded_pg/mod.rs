//! A private PostgreSQL for a machine that has the server package
//! installed but no server running: `initdb` once into a directory kept
//! between runs, `pg_ctl start` listening on a Unix socket only, `pg_ctl
//! stop` when the last pricekeeper process using it is done.
//!
//! Layout of the directory (default `~/.cache/pricekeeper/pg`): `data/`
//! (the cluster), `server.log`, the socket `.s.PGSQL.5432`, and two lock
//! files: `start.lock` (held while a process starts or stops the server)
//! and `users.lock` (held shared by every process using it, so the last
//! one out stops it and two demos at once share one server).
//!
//! The server runs in its own process group, so a Ctrl-C at the terminal
//! reaches pricekeeper, which stops it in order, not the server directly.
//! A server left running by a process killed with SIGKILL is adopted by
//! the next run; a stale `postmaster.pid` is removed (see [`pidfile`]).

mod binaries;
mod choose;
mod pidfile;
mod place;

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use sqlx::postgres::PgConnectOptions;

pub use choose::{Choice, EmbeddedMode, choose};
use place::ServerUser;

/// The socket's port number: only part of the socket's file name, since
/// the server listens on no TCP address.
const PORT: u16 = 5432;
/// The superuser `initdb` creates, whoever runs the server.
const SUPERUSER: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found; looked in {}. \
         Install them (`apt-get install postgresql`), point PRICEKEEPER_PG_BINDIR at them, \
         or set DATABASE_URL to a server you have",
        tried.join(", ")
    )]
    NoServerBinaries { tried: Vec<String> },
    #[error(
        "{}",
        if *root { "PostgreSQL refuses to run as root and there is no `postgres` user to run it as; \
                   create one (`useradd -r postgres`) or set DATABASE_URL" }
        else { "cannot look up the current user to run PostgreSQL as" }
    )]
    NoServerUser { root: bool },
    #[error(
        "no cache directory for the embedded PostgreSQL (HOME is not set); set PRICEKEEPER_PG_DIR"
    )]
    NoCacheDir,
    #[error(
        "the embedded PostgreSQL's directory {dir} is out of reach of the {user} user who runs \
         the server ({detail}); set PRICEKEEPER_PG_DIR to a directory it can reach"
    )]
    Unreachable {
        dir: PathBuf,
        user: String,
        detail: String,
    },
    #[error(
        "the embedded PostgreSQL's directory {dir} belongs to {owner}, but the server runs as \
         {user} and PostgreSQL only uses a data directory of its own; remove it or set \
         PRICEKEEPER_PG_DIR to another directory"
    )]
    OwnedByOther {
        dir: PathBuf,
        owner: String,
        user: String,
    },
    #[error(
        "{data} was made by PostgreSQL {found}, but the server binaries in {bindir} are version \
         {binaries}; remove the directory for a fresh one, or point PRICEKEEPER_PG_BINDIR at \
         PostgreSQL {found}"
    )]
    VersionMismatch {
        data: PathBuf,
        found: String,
        binaries: String,
        bindir: PathBuf,
    },
    #[error("{what} failed ({status}): {output}")]
    Command {
        what: String,
        status: String,
        output: String,
    },
    #[error("could not {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl EmbeddedError {
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// Where to find the binaries and put the server; `None`: the defaults.
#[derive(Debug, Clone, Default)]
pub struct Place {
    pub bindir: Option<PathBuf>,
    pub dir: Option<PathBuf>,
}

/// A running private server. Stopped by [`EmbeddedPg::stop`] or on drop,
/// unless another process still uses it.
#[derive(Debug)]
pub struct EmbeddedPg {
    dir: PathBuf,
    bindir: PathBuf,
    user: ServerUser,
    version: String,
    /// `users.lock`, held shared while we use the server; `None` once stopped.
    users: Mutex<Option<File>>,
}

impl EmbeddedPg {
    /// Finds the binaries, makes the cluster if there is none, and starts
    /// the server unless it already runs. Blocking: call it from
    /// `spawn_blocking` in async code.
    pub fn start(place: &Place) -> Result<Self, EmbeddedError> {
        let bindir = binaries::find(place.bindir.as_deref())
            .map_err(|tried| EmbeddedError::NoServerBinaries { tried })?;
        let user = ServerUser::current()?;
        let dir = match &place.dir {
            Some(dir) => std::path::absolute(dir)
                .map_err(|e| EmbeddedError::io(format!("resolve {}", dir.display()), e))?,
            None => place::default_dir(&user)?,
        };
        place::prepare(&dir, &user)?;
        let version = server_version(&bindir)?;
        let start_lock = lock_file(&dir.join("start.lock"))?;
        start_lock
            .lock()
            .map_err(|e| EmbeddedError::io("lock start.lock", e))?;
        let users = lock_file(&dir.join("users.lock"))?;
        users
            .lock_shared()
            .map_err(|e| EmbeddedError::io("lock users.lock", e))?;
        let server = Self {
            dir,
            bindir,
            user,
            version,
            users: Mutex::new(Some(users)),
        };
        // On failure, `server` drops here and lets go of users.lock.
        server.init_and_start()?;
        Ok(server)
    }

    fn init_and_start(&self) -> Result<(), EmbeddedError> {
        let data = self.data_dir();
        match std::fs::read_to_string(data.join("PG_VERSION")) {
            Ok(found) if found.trim() != self.major() => {
                return Err(EmbeddedError::VersionMismatch {
                    data,
                    found: found.trim().to_owned(),
                    binaries: self.version.clone(),
                    bindir: self.bindir.clone(),
                });
            }
            Ok(_) => {}
            Err(_) => self.initdb()?,
        }
        let socket_lock = self.dir.join(format!(".s.PGSQL.{PORT}.lock"));
        if pidfile::clear_stale(&data, &socket_lock)
            .map_err(|e| EmbeddedError::io("remove a stale postmaster.pid", e))?
        {
            tracing::warn!(data = %data.display(),
                "removed a stale postmaster.pid (the server was killed; its PID now belongs to another program)");
        }
        if self.pg_ctl(&["status"])?.status.success() {
            tracing::info!(dir = %self.dir.display(),
                "embedded PostgreSQL is already running (another pricekeeper, or one killed before it could stop it); using it");
            return Ok(());
        }
        let log = self.dir.join("server.log");
        let options = format!(
            "-c listen_addresses='' -k {} -p {PORT}",
            shell_quote(&self.dir.to_string_lossy())
        );
        let mut start = self.user.command(&self.bindir.join("pg_ctl"), &self.dir);
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            // Keeps a Ctrl-C at the terminal from reaching the server.
            .process_group(0);
        let out = run(start, "pg_ctl start")?;
        if !out.status.success() {
            return Err(failed("pg_ctl start", &out, Some(&log)));
        }
        tracing::info!(dir = %self.dir.display(), version = %self.version, "embedded PostgreSQL started");
        Ok(())
    }

    fn initdb(&self) -> Result<(), EmbeddedError> {
        tracing::info!(data = %self.data_dir().display(), user = %self.user.name,
            "creating the embedded PostgreSQL cluster (once)");
        let mut initdb = self.user.command(&self.bindir.join("initdb"), &self.dir);
        initdb.arg("-D").arg(self.data_dir()).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        let out = run(initdb, "initdb")?;
        if !out.status.success() {
            // A half-made cluster would fail every later start.
            let _ = std::fs::remove_dir_all(self.data_dir());
            return Err(failed("initdb", &out, None));
        }
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output, EmbeddedError> {
        let mut command = self.user.command(&self.bindir.join("pg_ctl"), &self.dir);
        command.arg("-D").arg(self.data_dir()).args(args);
        run(command, "pg_ctl")
    }

    /// Stops the server unless another process still uses it. Idempotent.
    pub fn stop(&self) {
        let Some(users) = self.users.lock().expect("users lock").take() else {
            return;
        };
        let start_lock = lock_file(&self.dir.join("start.lock"));
        if let Ok(lock) = &start_lock {
            let _ = lock.lock();
        }
        // Upgrading our shared lock succeeds only when nobody else holds one.
        if users.try_lock().is_err() {
            tracing::info!(dir = %self.dir.display(),
                "embedded PostgreSQL left running: another pricekeeper process still uses it");
            return;
        }
        match self.pg_ctl(&["-m", "fast", "-w", "-t", "30", "stop"]) {
            Ok(out) if out.status.success() => {
                tracing::info!(dir = %self.dir.display(), "embedded PostgreSQL stopped")
            }
            Ok(out) => {
                tracing::warn!(error = %failed("pg_ctl stop", &out, None), "could not stop the embedded PostgreSQL")
            }
            Err(e) => tracing::warn!(error = %e, "could not stop the embedded PostgreSQL"),
        }
    }

    /// Options for `database` on this server, over its socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.dir)
            .port(PORT)
            .username(SUPERUSER)
            .database(database)
    }

    /// The directory holding the cluster, the socket and the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The socket's port number.
    pub fn port(&self) -> u16 {
        PORT
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn major(&self) -> &str {
        self.version.split('.').next().unwrap_or(&self.version)
    }
}

impl Drop for EmbeddedPg {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `15.8` from `postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)`.
fn server_version(bindir: &Path) -> Result<String, EmbeddedError> {
    let out = run(
        {
            let mut c = Command::new(bindir.join("postgres"));
            c.arg("--version");
            c
        },
        "postgres --version",
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .map(str::to_owned)
        .ok_or_else(|| failed("postgres --version", &out, None))
}

fn lock_file(path: &Path) -> Result<File, EmbeddedError> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| EmbeddedError::io(format!("open {}", path.display()), e))
}

fn run(mut command: Command, what: &str) -> Result<Output, EmbeddedError> {
    command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| EmbeddedError::io(format!("run {what}"), e))
}

fn failed(what: &str, out: &Output, log: Option<&Path>) -> EmbeddedError {
    let mut output = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if output.is_empty() {
        output = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    if let Some(tail) = log.and_then(|l| std::fs::read_to_string(l).ok()) {
        let lines: Vec<&str> = tail.lines().collect();
        let from = lines.len().saturating_sub(5);
        output = format!(
            "{output}; server log ({}):\n{}",
            log.unwrap().display(),
            lines[from..].join("\n")
        );
    }
    EmbeddedError::Command {
        what: what.to_owned(),
        status: out.status.to_string(),
        output,
    }
}

/// `s` as one word for a POSIX shell (pg_ctl hands `-o` to `sh -c`).
fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_keeps_plain_paths_and_quotes_the_rest() {
        assert_eq!(shell_quote("/var/lib/pg"), "/var/lib/pg");
        assert_eq!(shell_quote("/tmp/my dir"), "'/tmp/my dir'");
        assert_eq!(shell_quote("/tmp/it's"), r"'/tmp/it'\''s'");
    }
}
