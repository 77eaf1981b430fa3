//! `docs/quickstart.sh` — the quickstart of `docs/quickstart.md` —
//! against a real `plugboard serve`: SIPp's calls reach the buyer and the
//! records list them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use tests::call_lab::{free_port, sipp_path};
use tests::{plugboard_bin, target_dir};

#[test]
fn the_quickstart_routes_sipps_calls_to_the_buyer_and_lists_their_records() {
    assert!(sipp_path().exists());
    let dir = tempfile::tempdir().expect("temp dir");
    let bootstrap = Command::new(plugboard_bin())
        .args(["admin", "bootstrap", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("bootstrap runs");
    assert!(bootstrap.status.success());
    let key = String::from_utf8_lossy(&bootstrap.stdout).trim().to_owned();

    let mut serve = Command::new(plugboard_bin())
        .args(["serve", "--data-dir"])
        .arg(dir.path())
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
    let mut lines = BufReader::new(serve.stderr.take().expect("stderr")).lines();
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

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/quickstart.sh");
    let run = Command::new("bash")
        .arg(script)
        .env("K", &key)
        .env("PB_HTTP", http.expect("http"))
        .env("PB_SIP", sip.expect("sip"))
        .env("BUYER_PORT", free_port().to_string())
        .env("HOLD_MS", "500")
        .env(
            "SCORER",
            target_dir().join("policies/geo-history-scorer.wasm"),
        )
        .output()
        .expect("the quickstart runs");
    let _ = serve.kill();
    let _ = serve.wait();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("all 3 calls completed"), "{stdout}");
    assert_eq!(stdout.matches("outcome=answered").count(), 3, "{stdout}");
    assert!(stdout.contains("3 calls"), "{stdout}");
    // What serve wrote (store, artifacts) is the operator's user's alone.
    tests::assert_private(dir.path());
}
