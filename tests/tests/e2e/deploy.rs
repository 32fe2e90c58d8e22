//! Deployment files: the systemd unit is checked by systemd itself.

use std::path::PathBuf;
use std::process::Command;

fn unit_for_verification() -> (tempfile::TempDir, PathBuf) {
    let unit =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/sightline.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    // `verify` requires ExecStart's binary to exist on this machine.
    let text = text.replace("/usr/local/bin/sightline", "/bin/true");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sightline.service");
    std::fs::write(&copy, text).unwrap();
    (dir, copy)
}

#[test]
fn the_systemd_unit_verifies_cleanly_and_is_hardened() {
    let (_dir, unit) = unit_for_verification();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze missing: scripts/test.sh installs Debian's systemd");
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // verify exits 0 even for unknown keys or bad values; any output is a finding.
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify:\n{complaints}"
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for").nth(1))
        .and_then(|rest| rest.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(
        exposure <= 2.5,
        "exposure {exposure} (systemd rates 0 safest, 10 unsafe)"
    );
    for directive in [
        "User=sightline",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/sightline",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "Restart=on-failure",
        "EnvironmentFile=",
    ] {
        assert!(
            std::fs::read_to_string(&unit).unwrap().contains(directive),
            "unit lacks {directive}"
        );
    }
}
