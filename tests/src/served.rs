//! A real `plugboard serve` in a temporary data directory, bootstrapped,
//! for the tests that drive it from outside (scripts, Python tools): it
//! listens on ports of its own choosing and is stopped by PID when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::plugboard_bin;

pub struct Served {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub http: String,
    /// `127.0.0.1:<port>`, UDP and TCP.
    pub sip: String,
    /// The operator's API key from `admin bootstrap`.
    pub operator_key: String,
    pub data_dir: tempfile::TempDir,
}

impl Served {
    pub fn start() -> Served {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let bootstrap = Command::new(plugboard_bin())
            .args(["admin", "bootstrap", "--data-dir"])
            .arg(data_dir.path())
            .output()
            .expect("bootstrap runs");
        assert!(bootstrap.status.success(), "{bootstrap:?}");
        let operator_key = String::from_utf8_lossy(&bootstrap.stdout).trim().to_owned();
        let mut child = Command::new(plugboard_bin())
            .args(["serve", "--data-dir"])
            .arg(data_dir.path())
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--sip-listen",
                "127.0.0.1:0",
            ])
            .args(["--example-policies", "/nonexistent"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("plugboard serve starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let (mut sip, mut http) = (None, None);
        while sip.is_none() || http.is_none() {
            let line = lines
                .next()
                .expect("serve logs until it listens")
                .expect("log");
            if let Some(rest) = line.split("SIP listening on udp:").nth(1) {
                sip = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(rest) = line.split("listening on http://").nth(1) {
                http = Some(format!("http://{}", rest.trim()));
            }
        }
        // Keep reading the log so that the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Served {
            child,
            http: http.expect("http"),
            sip: sip.expect("sip"),
            operator_key,
            data_dir,
        }
    }
}

impl Served {
    /// Stops the server (the data directory stays until the drop).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A tool of the virtualenv `cargo xtask test` installs from
/// `tests/python-requirements.txt`.
pub fn python_tool(name: &str) -> PathBuf {
    let tool = crate::target_dir().join("python-tools/bin").join(name);
    assert!(
        tool.is_file(),
        "{} is missing; `cargo xtask test` installs it (tests/python-requirements.txt)",
        tool.display()
    );
    tool
}
