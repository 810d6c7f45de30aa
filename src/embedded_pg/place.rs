//! Who runs the private server and where its directory is.
//!
//! PostgreSQL refuses to run as root, so as root the server runs as the
//! `postgres` user (through `runuser`), and its directory must be one that
//! user can reach: root's home usually is not, so root's default is the
//! `postgres` user's own cache directory. Anyone else runs the server as
//! themselves, under their cache directory (`$XDG_CACHE_HOME`, else
//! `~/.cache`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::{Uid, User, geteuid};

use super::EmbeddedError;

/// The account the server runs as.
#[derive(Debug, Clone)]
pub struct ServerUser {
    pub name: String,
    pub uid: Uid,
    /// Set when we are root: commands run through `runuser -u <name>`.
    pub switch: bool,
    home: PathBuf,
}

impl ServerUser {
    pub fn current() -> Result<Self, EmbeddedError> {
        let me = geteuid();
        let wanted = if me.is_root() {
            User::from_name("postgres").ok().flatten()
        } else {
            User::from_uid(me).ok().flatten()
        };
        let user = wanted.ok_or(EmbeddedError::NoServerUser { root: me.is_root() })?;
        Ok(Self {
            name: user.name,
            uid: user.uid,
            switch: me.is_root(),
            home: user.dir,
        })
    }

    /// `program` as a command run by this user, from `dir` (initdb and
    /// pg_ctl fail when the current directory is one they cannot read).
    pub fn command(&self, program: &Path, dir: &Path) -> Command {
        let mut command = if self.switch {
            let mut c = Command::new("runuser");
            c.arg("-u").arg(&self.name).arg("--").arg(program);
            c
        } else {
            Command::new(program)
        };
        command.current_dir(dir);
        command
    }
}

/// `$XDG_CACHE_HOME/pricekeeper/pg` (else `~/.cache/pricekeeper/pg`); as
/// root, when that is out of the server user's reach, the same under the
/// server user's home.
pub fn default_dir(user: &ServerUser) -> Result<PathBuf, EmbeddedError> {
    let mine = dirs::cache_dir().map(|c| c.join("pricekeeper").join("pg"));
    match mine {
        Some(dir) if !user.switch || reachable_by_others(&dir) => Ok(dir),
        _ if user.switch => Ok(user.home.join(".cache").join("pricekeeper").join("pg")),
        _ => Err(EmbeddedError::NoCacheDir),
    }
}

/// Runs `program args dir` as the server user; returns its complaint,
/// empty when it succeeded.
fn as_user(
    user: &ServerUser,
    program: &str,
    args: &[&str],
    dir: &Path,
) -> Result<String, EmbeddedError> {
    let out = user
        .command(Path::new(program), Path::new("/"))
        .args(args)
        .arg(dir)
        .output()
        .map_err(|e| EmbeddedError::io("run runuser", e))?;
    Ok(if out.status.success() {
        String::new()
    } else {
        format!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// Whether every existing ancestor of `dir` lets other users through.
fn reachable_by_others(dir: &Path) -> bool {
    dir.ancestors()
        .filter_map(|a| std::fs::metadata(a).ok())
        .all(|m| m.permissions().mode() & 0o001 != 0)
}

/// Creates `dir` so that it belongs to the server user, and checks that
/// it does. As root: made by that user when it may (so every directory
/// made in its home is its own), else made by root and handed over, and
/// then that user must be able to reach it.
pub fn prepare(dir: &Path, user: &ServerUser) -> Result<(), EmbeddedError> {
    if user.switch {
        let made = as_user(user, "mkdir", &["-p"], dir)?;
        if !made.is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| EmbeddedError::io(format!("create {}", dir.display()), e))?;
            nix::unistd::chown(dir, Some(user.uid), None).map_err(|e| {
                EmbeddedError::io(format!("hand {} to {}", dir.display(), user.name), e.into())
            })?;
        }
    } else {
        std::fs::create_dir_all(dir)
            .map_err(|e| EmbeddedError::io(format!("create {}", dir.display()), e))?;
    }
    let meta = std::fs::metadata(dir)
        .map_err(|e| EmbeddedError::io(format!("read {}", dir.display()), e))?;
    if meta.uid() != user.uid.as_raw() {
        let owner = User::from_uid(Uid::from_raw(meta.uid()))
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {}", meta.uid()), |u| u.name);
        return Err(EmbeddedError::OwnedByOther {
            dir: dir.to_owned(),
            owner,
            user: user.name.clone(),
        });
    }
    if user.switch {
        let reached = as_user(user, "test", &["-w"], dir)?;
        if !reached.is_empty() {
            return Err(EmbeddedError::Unreachable {
                dir: dir.to_owned(),
                user: user.name.clone(),
                detail: "a directory above it does not let that user through".into(),
            });
        }
    }
    Ok(())
}
