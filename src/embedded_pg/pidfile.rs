//! A `postmaster.pid` left behind by a server that is gone (killed with
//! the machine, or `kill -9`). PostgreSQL itself ignores one whose process
//! is dead, but refuses to start while that PID belongs to any live
//! process, and after a reboot or in a container the PID is often taken by
//! something else. A PID whose process is not a `postgres` is stale.

use std::path::Path;

/// Removes `postmaster.pid` in `data` and the socket lock in `socket_dir`
/// when the process they name is not a running `postgres`. Returns whether
/// it removed anything.
pub fn clear_stale(data: &Path, socket_lock: &Path) -> std::io::Result<bool> {
    let mut cleared = false;
    for file in [data.join("postmaster.pid"), socket_lock.to_owned()] {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let pid = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok());
        if pid.is_some_and(is_postgres) {
            continue;
        }
        std::fs::remove_file(&file)?;
        cleared = true;
    }
    Ok(cleared)
}

fn is_postgres(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim() == "postgres" || comm.trim() == "postmaster")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_of_another_program_is_stale_and_removed() {
        let dir = std::env::temp_dir().join(format!("pk-pidfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("postmaster.pid");
        let lock = dir.join(".s.PGSQL.5432.lock");
        // Our own PID: alive, but not a postgres.
        let ours = format!("{}\n{}\n", std::process::id(), dir.display());
        std::fs::write(&pid_file, &ours).unwrap();
        std::fs::write(&lock, &ours).unwrap();
        assert!(clear_stale(&dir, &lock).unwrap());
        assert!(!pid_file.exists() && !lock.exists());
        // Nothing there: nothing to do.
        assert!(!clear_stale(&dir, &lock).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
