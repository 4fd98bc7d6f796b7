//! Operations: the systemd unit the README gives for a replica is one systemd accepts, pointing at
//! the built binary (`systemd-analyze verify`, any complaint fails). Skips without systemd unless
//! `PALAVER_REQUIRE_SYSTEMD=1`.

use std::path::Path;
use std::process::Command;

/// The `ini` block of the README's "Running several replicas" section.
fn readme_unit() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("### Running several replicas")
        .nth(1)
        .expect("the README has a section on running several replicas");
    let block = section
        .split("```ini\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section has an ini block");
    block.to_string()
}

fn verify(unit: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("palaver.service");
    std::fs::write(&file, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .expect("systemd-analyze runs");
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && complaints.trim().is_empty(),
        complaints,
    )
}

#[test]
fn the_readme_systemd_unit_passes_systemd_analyze_verify() {
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            !std::env::var("PALAVER_REQUIRE_SYSTEMD").is_ok_and(|v| v == "1"),
            "PALAVER_REQUIRE_SYSTEMD=1 but systemd-analyze is missing"
        );
        eprintln!(
            "skipping: no systemd-analyze (set PALAVER_REQUIRE_SYSTEMD=1 to make this an error)"
        );
        return;
    }
    let unit = readme_unit();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/palaver serve"),
        "{unit}"
    );
    // The unit as installed, with the binary where this build put it and its environment file.
    let env_dir = tempfile::tempdir().unwrap();
    let env_file = env_dir.path().join("env");
    std::fs::write(
        &env_file,
        "PALAVER__DATABASE__URL=postgres://palaver@db/palaver\n",
    )
    .unwrap();
    let installed = unit
        .replace("/usr/local/bin/palaver", env!("CARGO_BIN_EXE_palaver"))
        .replace("/etc/palaver/env", &env_file.display().to_string());
    let (ok, complaints) = verify(&installed);
    assert!(ok, "systemd-analyze verify: {complaints}");
    // The check can fail: a misspelt setting and a missing binary are reported.
    let (ok, complaints) = verify(&installed.replace("Type=exec", "Type=exce"));
    assert!(!ok, "{complaints}");
    let (ok, _) = verify(&installed.replace(env!("CARGO_BIN_EXE_palaver"), "/nonexistent/palaver"));
    assert!(!ok);
}
