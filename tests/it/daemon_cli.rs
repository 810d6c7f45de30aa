//! `pricekeeper daemon` settings checked at start, through the binary.

use std::process::Command;

#[test]
fn a_bad_cron_stops_the_daemon_with_exit_2() {
    for bad in ["61 * * * *", "* *", "every minute"] {
        let out = Command::new(env!("CARGO_BIN_EXE_pricekeeper"))
            .args(["daemon", "--cron", bad])
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/unused")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("PRICEKEEPER_CRON"), "{bad}: {err}");
    }
}
