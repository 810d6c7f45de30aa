//! Test harness: every test gets its own fresh, migrated database, cloned
//! from a template that is migrated once per schema version.
//!
//! The server is the first that answers of `TEST_DATABASE_URL`,
//! `DATABASE_URL`, `postgres://postgres@127.0.0.1:5432`, the embedded
//! PostgreSQL (the demo's, from the server binaries installed on this
//! machine; left running for the next test binary), and a PostgreSQL
//! started with testcontainers when Docker is available.
//! `TEST_DATABASE_URL=embedded` goes straight to the embedded one.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::str::FromStr;
use std::time::Duration;

use pricekeeper::db::{MIGRATOR, quote_ident};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor, PgConnection, PgPool};
use tokio::sync::OnceCell;

const LOCAL_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The schema the tables are in (the binary's default).
pub const SCHEMA: &str = pricekeeper::db::schema::DEFAULT_SCHEMA;

/// The server every test in this process uses, with the template made.
struct Server {
    /// Connection URL of the server's `postgres` database.
    base_url: url::Url,
    template: String,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    url: String,
    admin: PgConnectOptions,
}

impl TestDb {
    /// URL of this test's database, e.g. for running the binary against it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection outside the pool (e.g. for LISTEN or a second writer).
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connect to test database")
    }
}

/// A fresh database with every migration applied.
pub async fn test_db() -> TestDb {
    let server = SERVER.get_or_init(find_server).await;
    let name = format!("pk_test_{}", uuid::Uuid::new_v4().simple());
    let admin = admin_options(&server.base_url);
    let mut conn = admin.connect().await.expect("connect to test server");
    let sql = format!(
        "CREATE DATABASE {} TEMPLATE {}",
        quote_ident(&name),
        quote_ident(&server.template)
    );
    if let Err(e) = conn.execute(AssertSqlSafe(sql.clone())).await {
        // A test run of another checkout (another schema) may have dropped
        // our template as stale: make it again, once.
        let missing = e.as_database_error().and_then(|d| d.code()).as_deref() == Some("3D000");
        assert!(missing, "create test database: {e}");
        with_template(server.base_url.clone()).await;
        conn.execute(AssertSqlSafe(sql))
            .await
            .expect("create test database");
    }
    let _ = conn.close().await;

    let url = database_url(&server.base_url, &name);
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect(&url)
        .await
        .expect("connect to test database");
    TestDb {
        pool,
        name,
        url,
        admin,
    }
}

/// A URL on the test server for a database that does not exist yet.
pub async fn unused_database_url() -> (String, String) {
    let server = SERVER.get_or_init(find_server).await;
    let name = format!("pk_test_{}", uuid::Uuid::new_v4().simple());
    (database_url(&server.base_url, &name), name)
}

/// Drops a database made by a test (e.g. through the binary).
pub async fn drop_database(name: &str) {
    let server = SERVER.get_or_init(find_server).await;
    drop_database_with(&admin_options(&server.base_url), name).await;
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs outside async; a short-lived runtime on its own thread
        // removes the database even when the test panicked.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(drop_database_with(&admin, &name));
        })
        .join();
    }
}

async fn drop_database_with(admin: &PgConnectOptions, name: &str) {
    if let Ok(mut conn) = admin.connect().await {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
        let _ = conn.execute(AssertSqlSafe(sql)).await;
        let _ = conn.close().await;
    }
}

async fn find_server() -> Server {
    let mut tried = Vec::new();
    let wanted = std::env::var("TEST_DATABASE_URL").ok();
    if wanted.as_deref() == Some("embedded") {
        let base_url = start_embedded()
            .await
            .expect("embedded PostgreSQL for the tests");
        return with_template(base_url).await;
    }
    let candidates = [
        ("TEST_DATABASE_URL", std::env::var("TEST_DATABASE_URL").ok()),
        ("DATABASE_URL", std::env::var("DATABASE_URL").ok()),
        ("local default", Some(LOCAL_URL.to_owned())),
    ];
    for (source, url) in candidates {
        let Some(url) = url else { continue };
        match try_server(&url).await {
            Ok(base_url) => return with_template(base_url).await,
            Err(e) => tried.push(format!("{source} ({}): {e}", redact(&url))),
        }
    }
    match start_embedded().await {
        Ok(base_url) => return with_template(base_url).await,
        Err(e) => tried.push(format!("embedded: {e}")),
    }
    match start_container().await {
        Ok(base_url) => return with_template(base_url).await,
        Err(e) => tried.push(format!("testcontainers: {e}")),
    }
    panic!(
        "no PostgreSQL for the tests. Tried:\n  - {}\n\
         Start one (e.g. `pg_ctlcluster 15 main start`), set TEST_DATABASE_URL, or run Docker.",
        tried.join("\n  - ")
    );
}

async fn try_server(raw: &str) -> Result<url::Url, String> {
    let mut url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    url.set_path("/postgres");
    let options = admin_options(&url);
    match tokio::time::timeout(Duration::from_secs(5), options.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(url)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5s".into()),
    }
}

/// Starts (or joins) the embedded PostgreSQL in its default directory.
/// Never stopped by the tests: the next test binary, or the next demo,
/// uses it, and the demo stops it when it is done.
async fn start_embedded() -> Result<url::Url, String> {
    use pricekeeper::embedded_pg::{EmbeddedPg, Place};
    static EMBEDDED: std::sync::OnceLock<EmbeddedPg> = std::sync::OnceLock::new();
    let pg = tokio::task::spawn_blocking(|| EmbeddedPg::start(&Place::default()))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let pg = EMBEDDED.get_or_init(|| pg);
    let mut url = url::Url::parse("postgres://postgres@localhost/postgres").expect("URL");
    url.query_pairs_mut()
        .append_pair("host", &pg.dir().to_string_lossy())
        .append_pair("port", "5432");
    Ok(url)
}

/// Starts PostgreSQL in Docker. The container lives as long as the process.
async fn start_container() -> Result<url::Url, String> {
    use testcontainers_modules::postgres::Postgres;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;

    static CONTAINER: std::sync::OnceLock<
        testcontainers_modules::testcontainers::ContainerAsync<Postgres>,
    > = std::sync::OnceLock::new();
    let container = Postgres::default()
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .map_err(|e| e.to_string())?;
    let _ = CONTAINER.set(container);
    let url = format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres");
    url::Url::parse(&url).map_err(|e| e.to_string())
}

/// Makes sure the template for the current migrations exists. Migrated
/// under another name and renamed, so a half-made template is never used;
/// an advisory lock keeps concurrent test processes from doing it twice.
async fn with_template(base_url: url::Url) -> Server {
    let template = format!("pricekeeper_tpl_{}", migrations_hash());
    let admin = admin_options(&base_url);
    let mut conn = admin.connect().await.expect("connect to test server");
    sqlx::query("SELECT pg_advisory_lock(hashtext('pricekeeper test template'))")
        .execute(&mut conn)
        .await
        .expect("template lock");
    let exists: bool =
        sqlx::query_scalar("SELECT exists(SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut conn)
            .await
            .expect("look up template");
    if !exists {
        let building = format!("{template}_building");
        for sql in [
            format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&building)
            ),
            format!("CREATE DATABASE {}", quote_ident(&building)),
        ] {
            conn.execute(AssertSqlSafe(sql))
                .await
                .expect("prepare template");
        }
        // As the binary does: the schema first, then every migration in it.
        let options =
            PgConnectOptions::from_str(&database_url(&base_url, &building)).expect("template URL");
        let (pool, _) =
            pricekeeper::db::connect_in_schema(&options, None, 2, Duration::from_secs(30))
                .await
                .expect("connect to template");
        pricekeeper::db::migrate(&pool)
            .await
            .expect("migrate template");
        pool.close().await;
        let sql = format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(&building),
            quote_ident(&template)
        );
        conn.execute(AssertSqlSafe(sql))
            .await
            .expect("publish template");
        // Templates of older schemas pile up otherwise. One still being
        // cloned by a process of another checkout refuses to go: skip it.
        let stale: Vec<String> = sqlx::query_scalar(
            r"SELECT datname::text FROM pg_database
              WHERE datname LIKE 'pricekeeper\_tpl\_%' AND datname <> $1",
        )
        .bind(&template)
        .fetch_all(&mut conn)
        .await
        .expect("list templates");
        for old in stale {
            let sql = format!("DROP DATABASE IF EXISTS {}", quote_ident(&old));
            let _ = conn.execute(AssertSqlSafe(sql)).await;
        }
    }
    let _ = conn.close().await; // releases the advisory lock
    Server { base_url, template }
}

fn migrations_hash() -> String {
    // FNV-1a over the layout (tables in their own schema since issue 13)
    // and every migration's version and checksum.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in SCHEMA.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    for m in MIGRATOR.iter() {
        for byte in m.version.to_le_bytes().iter().chain(m.checksum.iter()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn admin_options(base_url: &url::Url) -> PgConnectOptions {
    PgConnectOptions::from_str(base_url.as_str())
        .expect("valid server URL")
        .log_statements(tracing::log::LevelFilter::Off)
}

/// A test database's URL: its connections see pricekeeper's schema first,
/// as the binary's do.
fn database_url(base_url: &url::Url, name: &str) -> String {
    let mut url = base_url.clone();
    url.set_path(&format!("/{name}"));
    url.query_pairs_mut()
        .append_pair("options", &format!("-c search_path={SCHEMA}"));
    url.to_string()
}

fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

/// Adds a NASDAQ stock to the catalog, as a host application would.
pub async fn insert_stock(pool: &PgPool, symbol: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO assets (symbol, asset_type, exchange, currency)
         VALUES ($1, 'stock', 'XNAS', 'USD') RETURNING id",
    )
    .bind(symbol)
    .fetch_one(pool)
    .await
    .expect("insert asset")
}

/// Waits for `check` to hold, polling, or panics after `deadline`. For
/// conditions reached by other tasks or processes; never a bare sleep.
pub async fn eventually<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    loop {
        if check().await {
            return;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for `check` to yield a value, polling, or panics after `deadline`.
pub async fn eventually_some<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Settings as the binary would parse them from these flags (and the
/// environment), for code under test.
pub fn settings(args: &[&str]) -> pricekeeper::config::Settings {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        settings: pricekeeper::config::Settings,
    }
    let argv = std::iter::once("pricekeeper").chain(args.iter().copied());
    <Cli as clap::Parser>::try_parse_from(argv)
        .expect("valid test settings")
        .settings
}
