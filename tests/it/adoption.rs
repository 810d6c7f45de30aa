//! Adopting pricekeeper in a database that already has an application in
//! it: its tables go into their own schema beside the host's (even a host
//! `assets` table), the README's trigger example feeds it from the host's
//! own trades, `assets.id` takes the host's ids, and an installation from
//! before the schema keeps working where it is.

use crate::common;

use std::process::Output;

use sqlx::{Executor, PgPool};

fn pricekeeper(args: &[&str], url: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pricekeeper"))
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("PRICEKEEPER_SCHEMA")
        .env("PRICEKEEPER_LOG_FORMAT", "json")
        .output()
        .unwrap()
}

/// `url` as the host application connects: its default search_path.
fn host_url(url: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "options")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    parsed.set_query(None);
    if !kept.is_empty() {
        parsed.query_pairs_mut().extend_pairs(kept);
    }
    parsed.to_string()
}

/// The README's adoption example, as printed there.
fn readme_example() -> String {
    let readme = include_str!("../../README.md");
    let after = readme
        .split("<!-- adoption-example")
        .nth(1)
        .expect("README marks the adoption example");
    let block = after.split("```sql\n").nth(1).unwrap();
    block.split("```").next().unwrap().to_owned()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn beside_a_host_with_its_own_assets_table_fed_by_the_readme_trigger() {
    let (url, name) = common::unused_database_url().await;
    let host_url = host_url(&url);
    let admin = PgPool::connect(&host_url.replace(&format!("/{name}"), "/postgres"))
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    admin.close().await;
    let host = PgPool::connect(&host_url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE assets (id serial PRIMARY KEY, label text NOT NULL);
         INSERT INTO assets (label) VALUES ('the host''s own');
         CREATE TABLE instruments (id bigint PRIMARY KEY, ticker text, mic text, ccy text);
         INSERT INTO instruments VALUES (501, 'AAPL', 'XNAS', 'USD'), (502, 'MSFT', 'XNAS', 'USD');
         CREATE TABLE trades (id bigint PRIMARY KEY, account_id uuid, instrument_id bigint,
                              kind text, qty numeric, px numeric, traded_at timestamptz);
         INSERT INTO trades VALUES (9001, gen_random_uuid(), 501, 'BUY', 10, 180, now() - interval '20 days');",
    )
    .execute(&host)
    .await
    .unwrap();

    let migrated = pricekeeper(&["migrate"], &url);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    // The host's table is untouched; pricekeeper's is beside it.
    assert_eq!(count(&host, "SELECT count(*) FROM public.assets").await, 1);
    assert_eq!(
        count(&host, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'pricekeeper' AND table_name IN ('assets', '_sqlx_migrations')").await,
        2
    );

    sqlx::raw_sql(sqlx::AssertSqlSafe(readme_example()))
        .execute(&host)
        .await
        .expect("the README's example runs");
    // Host ids kept, and the sequence moved past them.
    assert_eq!(
        count(
            &host,
            "SELECT count(*) FROM pricekeeper.assets WHERE id IN (501, 502)"
        )
        .await,
        2
    );
    let next: i64 = sqlx::query_scalar(
        "INSERT INTO pricekeeper.assets (symbol, asset_type, exchange, currency)
         VALUES ('NVDA', 'stock', 'XNAS', 'USD') RETURNING id",
    )
    .fetch_one(&host)
    .await
    .unwrap();
    assert_eq!(next, 503);

    // The host writes its own table, from its own session; the outbox
    // trigger runs there, with pricekeeper's tables out of its search_path.
    sqlx::raw_sql(
        "INSERT INTO trades VALUES (9002, gen_random_uuid(), 502, 'BUY', 3, 420, now() - interval '5 days');
         UPDATE trades SET qty = 12 WHERE id = 9001;
         DELETE FROM trades WHERE id = 9002;",
    )
    .execute(&host)
    .await
    .unwrap();
    let events: Vec<(String, i64)> =
        sqlx::query_as("SELECT op, transaction_id FROM pricekeeper.portfolio_events ORDER BY id")
            .fetch_all(&host)
            .await
            .unwrap();
    let ops: Vec<(&str, i64)> = events.iter().map(|(o, t)| (o.as_str(), *t)).collect();
    assert_eq!(
        ops,
        [
            ("insert", 9001),
            ("insert", 9002),
            ("update", 9001),
            ("delete", 9002)
        ]
    );
    assert_eq!(
        count(
            &host,
            "SELECT quantity::bigint FROM pricekeeper.portfolio_transactions WHERE id = 9001"
        )
        .await,
        12
    );
    host.close().await;
    common::drop_database(&name).await;
}

#[tokio::test]
async fn an_installation_in_public_keeps_working_there() {
    let (url, name) = common::unused_database_url().await;
    let host_url = host_url(&url);
    // What an earlier pricekeeper made: everything in public.
    let created = pricekeeper(&["migrate", "--schema", "public"], &url);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let again = pricekeeper(&["migrate"], &url);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("are in schema public"), "{stderr}");
    let pool = PgPool::connect(&host_url).await.unwrap();
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pricekeeper'"
        )
        .await,
        0,
        "no second installation"
    );
    pool.close().await;
    common::drop_database(&name).await;
}
