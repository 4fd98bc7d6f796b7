//! A throwaway Postgres cluster for tests: started once per test process with the system's
//! `initdb`/`postgres` on a free loopback port, stopped by a watchdog when the process exits.
//! `PALAVER_TEST_DATABASE_URL` points tests at an existing server instead. Without Postgres the
//! tests say so and skip, unless `PALAVER_REQUIRE_POSTGRES=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::Connection;

fn required() -> bool {
    std::env::var("PALAVER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Skips (or, when Postgres is required, fails) with the reason.
fn unavailable(reason: &str) -> Option<String> {
    if required() {
        panic!("PALAVER_REQUIRE_POSTGRES=1 but Postgres is unavailable: {reason}");
    }
    eprintln!(
        "skipping Postgres test: {reason} (set PALAVER_REQUIRE_POSTGRES=1 to make this an error)"
    );
    None
}

fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PALAVER_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a Postgres binary, as the `postgres` user when we are root (Postgres refuses root).
fn pg_command(bin: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

const DIR_PREFIX: &str = "palaver-pg-";

/// Removes the clusters of test processes that are gone without their watchdog having cleaned
/// up (a killed process group, a rebooted machine): each directory is named after its process.
fn sweep_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(e) = removed {
                eprintln!("cannot remove stale test cluster {}: {e}", path.display());
            }
        }
    }
}

fn start_cluster() -> Result<String, String> {
    let bin = bin_dir().ok_or("no initdb found (install the `postgresql` package)")?;
    let root = is_root();
    sweep_stale_clusters();
    let dir = std::env::temp_dir().join(format!(
        "{DIR_PREFIX}{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if root {
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?
            .success();
        if !ok {
            return Err(
                "running as root and cannot hand the data directory to the `postgres` user".into(),
            );
        }
    }
    let out = pg_command(&bin.join("initdb"), root)
        .args(["-D"])
        .arg(&dir)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        ])
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = free_port();
    let postgres = bin.join("postgres");
    let runner = if root { "runuser -u postgres -- " } else { "" };
    // The watchdog stops the server (and removes its files) once this test process is gone. It
    // runs in a session of its own, so killing the test's process group does not orphan the
    // cluster. It signals the server itself, by the pid in its `postmaster.pid` (SIGINT: a fast
    // shutdown): a background job starts with SIGINT ignored, and `runuser`, between the two
    // when tests run as root, then neither takes it nor passes it on.
    let script = format!(
        "{runner}'{pg}' -D '{dir}' -p {port} -k '{dir}' -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 >'{dir}.log' 2>&1 & pg=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 0.5; done; \
         kill -INT \"$(head -n 1 '{dir}/postmaster.pid' 2>/dev/null)\" 2>/dev/null \
         || kill -TERM $pg 2>/dev/null; wait $pg; rm -rf '{dir}' '{dir}.log'",
        pg = postgres.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(url);
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(format!("{}.log", dir.display())).unwrap_or_default();
            return Err(format!("postgres did not start: {log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The admin URL of the shared test server, if there is one.
fn server_url() -> Result<String, String> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var("PALAVER_TEST_DATABASE_URL") {
            Ok(url) => Ok(url),
            Err(_) => start_cluster(),
        })
        .clone()
}

/// A URL to a fresh, empty database, or `None` (after saying why) when Postgres is unavailable.
pub async fn fresh_database() -> Option<String> {
    let admin = match server_url() {
        Ok(url) => url,
        Err(reason) => return unavailable(&reason),
    };
    let name = format!("palaver_test_{}", uuid::Uuid::new_v4().simple());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = loop {
        match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => {
                return unavailable(&format!("cannot connect to {admin}: {e}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(format!("{base}/{name}"))
}
