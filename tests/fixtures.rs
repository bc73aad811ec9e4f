//! Every invalid fixture's exact diagnostics, as insta snapshots, and proof
//! that the fixtures cover every diagnostic code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use meshes::config::{self, CheckOptions, Code};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Fixture paths relative to the crate root, so snapshots are machine-independent.
fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().to_path_buf()
}

fn check(path: &Path) -> config::Report {
    let rel = relative(path);
    let loaded = config::read_paths(std::slice::from_ref(&rel)).unwrap();
    let check_env = rel.to_string_lossy().contains(".check-env.");
    loaded.check(CheckOptions { check_env })
}

#[test]
fn invalid_fixtures_report_exact_diagnostics() {
    insta::glob!("fixtures/invalid/*", |path| {
        let report = check(path);
        assert!(!report.diagnostics.is_empty(), "{} reported nothing", path.display());
        let text: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(text.join("\n"));
    });
}

#[test]
fn fixtures_cover_every_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        seen.extend(check(&entry.unwrap().path()).diagnostics.iter().map(|d| d.code));
    }
    // Remote codes need a live provider: tests/check_remote.rs covers them.
    let missing: Vec<&Code> =
        Code::ALL.iter().filter(|c| !c.is_remote() && !seen.contains(c)).collect();
    assert!(missing.is_empty(), "codes without a fixture: {missing:?}");
}
