//! The binary's contract with operators: exit codes and messages for bad
//! configuration, and `migrate` on a database that does not exist yet.

use crate::common;

use std::process::{Command, Output};

fn pricekeeper(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pricekeeper"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run pricekeeper")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_lists_every_subcommand() {
    let out = pricekeeper(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        listed,
        [
            "migrate",
            "worker",
            "daemon",
            "run",
            "status",
            "prices",
            "jobs",
            "seed-catalog",
            "demo",
            "market",
            "fetch",
            "quote",
            "calendar",
            "bench",
            "help"
        ]
    );
}

fn help(command: &str) -> String {
    let out = pricekeeper(&[command, "--help"], &[]);
    assert!(out.status.success(), "{command} --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Each command's help shows the settings it uses and not the others
/// (`fetch --help` listed database and daemon settings in 207 lines).
#[test]
fn each_commands_help_shows_only_its_settings() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "fetch",
            &["PRICEKEEPER_YAHOO_URL", "COINGECKO_API_KEY"],
            &[
                "DATABASE_URL",
                "FETCH_INTERVAL_MINUTES",
                "BACKFILL_BATCH_SIZE",
            ],
        ),
        (
            "calendar",
            &["PRICEKEEPER_CALENDAR_CLOSURES"],
            &["DATABASE_URL", "PRICEKEEPER_YAHOO_URL"],
        ),
        (
            "migrate",
            &["DATABASE_URL", "PRICEKEEPER_SCHEMA"],
            &["FETCH_INTERVAL_MINUTES", "PRICEKEEPER_YAHOO_URL"],
        ),
        (
            "worker",
            &[
                "DATABASE_URL",
                "RETRY_EXPONENTIAL_BASE",
                "PRICEKEEPER_CONCURRENCY",
            ],
            &["FETCH_INTERVAL_MINUTES", "PRICEKEEPER_EMBEDDED_PG"],
        ),
        (
            "daemon",
            &["FETCH_INTERVAL_MINUTES", "PRICEKEEPER_CRON"],
            &["PRICEKEEPER_CONCURRENCY", "BACKFILL_BATCH_SIZE"],
        ),
        (
            "run",
            &[
                "PRICEKEEPER_EMBEDDED_PG",
                "FETCH_INTERVAL_MINUTES",
                "PRICEKEEPER_CONCURRENCY",
            ],
            &[],
        ),
        (
            "demo",
            &["PRICEKEEPER_DEMO_DATABASE", "PRICEKEEPER_EMBEDDED_PG"],
            &["PRICEKEEPER_YAHOO_URL"],
        ),
    ];
    for (command, shown, hidden) in cases {
        let text = help(command);
        for var in *shown {
            assert!(text.contains(var), "{command} --help lacks {var}");
        }
        for var in *hidden {
            assert!(
                !text.contains(var),
                "{command} --help shows {var}, which it does not use"
            );
        }
    }
    // Each provider adds its URL and rate; the rest stays out.
    assert!(help("fetch").lines().count() < 250);
}

/// A setting in the environment is not shown in the usage line as if it
/// were required.
#[test]
fn the_usage_line_does_not_list_settings_from_the_environment() {
    let out = pricekeeper(&["fetch"], &[("PRICEKEEPER_YAHOO_RATE", "10/min")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let usage = err
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .expect("usage line");
    assert!(!usage.contains("yahoo-rate"), "{usage}");
}

#[test]
fn a_bad_choice_names_the_variable_and_a_bad_date_the_format() {
    let out = pricekeeper(&["calendar", "XNYS"], &[("PRICEKEEPER_LOG_FORMAT", "text")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("PRICEKEEPER_LOG_FORMAT must be one of pretty, json"),
        "{}",
        stderr(&out)
    );
    let out = pricekeeper(&["calendar", "XNYS", "--from", "2024-13-01"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("YYYY-MM-DD"), "{}", stderr(&out));
}

#[test]
fn bad_settings_exit_2_naming_the_variable() {
    let cases = [
        ("DATABASE_URL", "mysql://root@localhost/x"),
        ("DATABASE_URL", "postgres://h:notaport/x"),
        ("FETCH_INTERVAL_MINUTES", "0"),
        ("BACKFILL_BATCH_SIZE", "many"),
        ("MAX_BACKFILL_ATTEMPTS", "0"),
        ("RETRY_EXPONENTIAL_BASE", "soon"),
        ("TRADING_HOURS_ONLY", "perhaps"),
        ("MAX_REQUESTS_PER_MINUTE", "-3"),
    ];
    for (var, value) in cases {
        // worker reads every one of them, and parses before connecting.
        let out = pricekeeper(&["worker"], &[(var, value)]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{var}={value}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        let names_it = err.contains(var) || err.contains(&var.to_lowercase().replace('_', "-"));
        assert!(names_it, "{var}={value}: message does not name it: {err}");
    }
}

#[test]
fn unreachable_database_gives_up_naming_host_and_port() {
    let out = pricekeeper(
        &["migrate"],
        &[
            (
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:1/pricekeeper",
            ),
            ("PRICEKEEPER_DB_CONNECT_TIMEOUT", "1s"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("127.0.0.1:1 unreachable"), "{err}");
    assert!(
        err.contains("not reachable yet"),
        "retried before giving up: {err}"
    );
}

#[tokio::test]
async fn migrate_creates_a_missing_database_and_is_idempotent() {
    let (url, name) = common::unused_database_url().await;
    let first = pricekeeper(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stderr(&first).contains("database did not exist; created it"));

    let second = pricekeeper(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(!stderr(&second).contains("created it"));

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables
         WHERE table_schema = 'pricekeeper' AND table_name IN ('assets', 'backfill_queue')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 2);
    pool.close().await;
    common::drop_database(&name).await;
}

#[test]
fn a_malformed_database_url_is_shown_with_its_password_masked() {
    for url in [
        // An unescaped # or / in the password: the usual mistake.
        "postgres://app:s3cr#t@db.internal:5432/prices",
        "postgres://app:s3cr/t@db.internal:5432/prices",
        "postgres://app:s3cr@t@db.internal:99999/prices",
    ] {
        for args in [&["migrate"][..], &["migrate", "--database-url", url][..]] {
            let out = pricekeeper(args, &[("DATABASE_URL", url)]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{url}: {err}");
            assert!(err.contains("DATABASE_URL"), "{url}: {err}");
            assert!(err.contains("***"), "{url}: {err}");
            assert!(!err.contains("s3cr"), "{url} leaked: {err}");
        }
    }
}

#[test]
fn an_api_key_that_cannot_be_a_header_is_a_configuration_error() {
    let out = pricekeeper(
        &["quote", "bitcoin", "--provider", "coingecko"],
        &[("COINGECKO_API_KEY", "CG-secret key\u{7f}")],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("COINGECKO_API_KEY"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

/// Managed PostgreSQL services require TLS: `sslmode=require` in
/// DATABASE_URL reaches the server encrypted, through the binary as
/// through the library. Skipped (and said so) where the server has no TLS.
#[tokio::test]
async fn a_database_url_asking_for_tls_is_reached_over_tls() {
    use sqlx::Connection;
    let db = common::test_db().await;
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    if ssl != "on" {
        eprintln!("skipped: this PostgreSQL server has ssl = {ssl}");
        return;
    }
    let sep = if db.url().contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}sslmode=require", db.url());

    let status = pricekeeper(&["status"], &[("DATABASE_URL", &url)]);
    assert!(status.status.success(), "{}", stderr(&status));
    // The binary keeps the URL's TLS settings: a certificate that cannot
    // be checked is refused, though the server takes plain connections.
    let pinned = format!(
        "{}{sep}sslmode=verify-full&sslrootcert=/nonexistent/root.crt",
        db.url()
    );
    let refused = pricekeeper(
        &["status"],
        &[
            ("DATABASE_URL", &pinned),
            ("PRICEKEEPER_DB_CONNECT_TIMEOUT", "0s"),
        ],
    );
    assert!(
        !refused.status.success(),
        "pricekeeper ignored the URL's TLS settings"
    );

    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(encrypted);
}
