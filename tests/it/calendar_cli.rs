//! `pricekeeper calendar` through the binary: what an operator sees.

use std::process::Command;

fn calendar(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pricekeeper"));
    cmd.arg("calendar").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run pricekeeper");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn calendar_prints_one_row_per_session_of_2025() {
    let (code, out, err) = calendar(&["XNYS", "--from", "2025-01-01", "--to", "2025-12-31"], &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "date,open,close");
    // NYSE 2025: 261 weekdays less 11 weekday closures.
    assert_eq!(lines.len() - 1, 250);
    assert_eq!(
        lines[1],
        "2025-01-02,2025-01-02T14:30:00Z,2025-01-02T21:00:00Z"
    );
    assert!(!out.contains("2025-01-09"), "Carter's day of mourning");
    assert!(out.contains("2025-11-28,2025-11-28T14:30:00Z,2025-11-28T18:00:00Z"));
}

#[test]
fn calendar_json_and_nasdaq_share_nyse_days() {
    let (code, out, err) = calendar(
        &[
            "XNAS",
            "--from",
            "2026-07-02",
            "--to",
            "2026-07-06",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dates: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, ["2026-07-02", "2026-07-06"]);
    assert_eq!(rows[0]["close"], "2026-07-02T20:00:00Z");
}

#[test]
fn calendar_refuses_unknown_exchanges_and_bad_closure_files() {
    let (code, _, err) = calendar(&["XTSE"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("XTSE") && err.contains("XNYS"), "{err}");

    let (code, _, err) = calendar(&["XNYS", "--from", "2025-02-01", "--to", "2025-01-01"], &[]);
    assert_eq!(code, 2, "{err}");

    let dir = std::env::temp_dir().join(format!("pk-cal-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("closures.csv");
    std::fs::write(
        &file,
        "exchange,date,change,reason\nXNYS,2026-01-05,closed,storm\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, out, err) = calendar(
        &["XNYS", "--from", "2026-01-02", "--to", "2026-01-06"],
        &[("PRICEKEEPER_CALENDAR_CLOSURES", path)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("2026-01-05") && out.contains("2026-01-06"),
        "{out}"
    );

    std::fs::write(
        &file,
        "exchange,date,change,reason\nXNYS,2026-01-05,sometimes,?\n",
    )
    .unwrap();
    let (code, _, err) = calendar(&["XNYS"], &[("PRICEKEEPER_CALENDAR_CLOSURES", path)]);
    assert_eq!(code, 2);
    assert!(err.contains("sometimes"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
