//! `docs/quickstart.sh` — the quickstart of `docs/quickstart.md` —
//! against a real `plugboard serve`: SIPp's calls reach the buyer and the
//! records list them.

use std::process::Command;

use tests::call_lab::{free_port, sipp_path};
use tests::served::Served;
use tests::target_dir;

#[test]
fn the_quickstart_routes_sipps_calls_to_the_buyer_and_lists_their_records() {
    assert!(sipp_path().exists());
    let mut served = Served::start();

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/quickstart.sh");
    let run = Command::new("bash")
        .arg(script)
        .env("K", &served.operator_key)
        .env("PB_HTTP", &served.http)
        .env("PB_SIP", &served.sip)
        .env("BUYER_PORT", free_port().to_string())
        .env("HOLD_MS", "500")
        .env(
            "SCORER",
            target_dir().join("policies/geo-history-scorer.wasm"),
        )
        .output()
        .expect("the quickstart runs");
    served.stop();
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
    tests::assert_private(served.data_dir.path());
}
