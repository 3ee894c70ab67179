//! A throwaway PostgreSQL cluster for `storage-broker dev`, made with the machine's server
//! binaries in a temporary directory, on a free loopback port, and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where server binaries are looked for after `BROKER_DEV_POSTGRES_BIN` and `PATH`.
const USUAL_PLACES: &[&str] = &[
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
];

const INSTALL_HINT: &str = "install PostgreSQL's server package (Debian/Ubuntu: apt install postgresql; \
     Fedora: dnf install postgresql-server; macOS: brew install postgresql@16), \
     or set DATABASE_URL to use a database you already have";

/// A running throwaway cluster.
pub struct Postgres {
    bindir: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
    /// `postgres://…` for the `postgres` database.
    pub url: String,
}

impl Postgres {
    /// Makes and starts a cluster under `dir` (which must not exist yet).
    pub fn start(dir: &Path) -> Result<Self, String> {
        let bindir = find_bindir(std::env::var_os("BROKER_DEV_POSTGRES_BIN").map(PathBuf::from))?;
        // initdb refuses to run as root: the cluster then belongs to the `postgres` user.
        let as_postgres = running_as_root();
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let mut postgres = Self {
            bindir,
            dir: dir.to_owned(),
            as_postgres,
            url: String::new(),
        };
        if as_postgres {
            run(Command::new("chown").arg("postgres").arg(dir), "chown")
                .map_err(|e| format!("{e} (running as root needs a `postgres` user)"))?;
        }
        let data = dir.join("data");
        postgres.run_tool(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        let port = free_port()?;
        let settings = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.display()
        );
        let log = dir.join("server.log");
        postgres.run_tool(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-o".as_ref(),
                settings.as_ref(),
                "start".as_ref(),
            ],
        )?;
        postgres.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        Ok(postgres)
    }

    fn run_tool(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let program = self.bindir.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        run(command.args(args), tool)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.run_tool(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "stop".as_ref(),
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let why = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    Err(format!("{what} failed ({}): {why}", out.status))
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port for PostgreSQL: {e}"))
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `explicit`
/// (`BROKER_DEV_POSTGRES_BIN`) when given, else the first on `PATH` or in the usual places.
fn find_bindir(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    let has_tools = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|t| dir.join(t).is_file())
    };
    if let Some(dir) = explicit {
        return if has_tools(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "BROKER_DEV_POSTGRES_BIN: no initdb, pg_ctl and postgres in {}; {INSTALL_HINT}",
                dir.display()
            ))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut candidates: Vec<PathBuf> = on_path;
    for pattern in USUAL_PLACES {
        candidates.extend(expand(pattern));
    }
    candidates
        .into_iter()
        .find(|d| has_tools(d))
        .ok_or_else(|| {
            format!(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in {}; {INSTALL_HINT}",
                USUAL_PLACES.join(", ")
            )
        })
}

/// The directories matching a pattern with one `*` in one path component, highest version first.
fn expand(pattern: &str) -> Vec<PathBuf> {
    let Some((head, tail)) = pattern.split_once('*') else {
        return vec![PathBuf::from(pattern)];
    };
    let (parent, prefix) = head.rsplit_once('/').unwrap_or(("", head));
    let (suffix, rest) = tail.split_once('/').unwrap_or((tail, ""));
    let Ok(entries) = std::fs::read_dir(if parent.is_empty() { "/" } else { parent }) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u64>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let middle = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            let version = middle.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            Some((version, e.path().join(rest)))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bindir_says_what_to_install() {
        let dir = std::env::temp_dir().join("storage-broker-no-postgres-here");
        std::fs::create_dir_all(&dir).expect("dir");
        let err = find_bindir(Some(dir)).expect_err("an empty directory");
        assert!(err.contains("BROKER_DEV_POSTGRES_BIN"), "{err}");
        assert!(err.contains("apt install postgresql"), "{err}");
    }

    #[test]
    fn versions_sort_highest_first() {
        let root = std::env::temp_dir().join(format!("sb-expand-{}", std::process::id()));
        for v in ["9.6", "15", "13"] {
            std::fs::create_dir_all(root.join(v).join("bin")).expect("dir");
        }
        let found = expand(&format!("{}/*/bin", root.display()));
        let names: Vec<String> = found
            .iter()
            .map(|p| {
                p.parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(names, ["15", "13", "9.6"]);
        let _ = std::fs::remove_dir_all(root);
    }
}
