//! Where the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`)
//! are: `PRICEKEEPER_PG_BINDIR`, then `pg_config --bindir`, then the newest
//! `/usr/lib/postgresql/*/bin` (Debian and Ubuntu keep them off `PATH`),
//! then `PATH`. A directory counts only when it holds all three: the client
//! package alone ships `pg_config` and `psql` but no server.

use std::path::{Path, PathBuf};
use std::process::Command;

const NEEDED: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// The first directory holding every server binary, and the places tried.
pub fn find(configured: Option<&Path>) -> Result<PathBuf, Vec<String>> {
    let mut tried = Vec::new();
    let mut candidates: Vec<(String, PathBuf)> = Vec::new();
    if let Some(dir) = configured {
        // A configured directory is the only candidate: looking elsewhere
        // would hide the mistake.
        candidates.push(("PRICEKEEPER_PG_BINDIR".into(), dir.to_owned()));
    } else {
        if let Some(dir) = pg_config_bindir() {
            candidates.push(("pg_config --bindir".into(), dir));
        }
        if let Some(dir) = newest_debian_bindir(Path::new("/usr/lib/postgresql")) {
            candidates.push(("/usr/lib/postgresql/*/bin".into(), dir));
        }
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            candidates.push(("PATH".into(), dir));
        }
    }
    for (source, dir) in candidates {
        if NEEDED.iter().all(|bin| dir.join(bin).is_file()) {
            return Ok(dir);
        }
        tried.push(format!("{} ({source})", dir.display()));
    }
    Err(tried)
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !dir.trim().is_empty()).then(|| PathBuf::from(dir.trim()))
}

/// `/usr/lib/postgresql/<major>/bin` of the highest major version.
fn newest_debian_bindir(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("postgres").is_file())
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_major_version_wins_numerically() {
        let root = std::env::temp_dir().join(format!("pk-bindir-{}", std::process::id()));
        for major in ["9", "14", "16", "notaversion"] {
            let bin = root.join(major).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("postgres"), "").unwrap();
        }
        assert_eq!(newest_debian_bindir(&root), Some(root.join("16/bin")));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_configured_directory_without_a_server_is_refused() {
        let tried = find(Some(Path::new("/nonexistent/pg/bin"))).unwrap_err();
        assert_eq!(tried, vec!["/nonexistent/pg/bin (PRICEKEEPER_PG_BINDIR)"]);
    }
}
