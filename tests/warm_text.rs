//! `link/warm-text.ld`, the linker script that groups the functions the
//! server runs (written by `scripts/warm-text`, used by `build.rs` in
//! release builds): CI links debug builds only, so its shape is checked here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

const SCRIPT: &str = include_str!("../link/warm-text.ld");

/// The pattern lines, after the header and before the closing lines.
fn patterns() -> Vec<&'static str> {
    let body = SCRIPT.split_once(".text.warm :\n  {\n").expect("output section header").1;
    let body = body.strip_suffix("  }\n}\nINSERT BEFORE .text;\n").expect("INSERT BEFORE .text");
    body.lines().collect()
}

#[test]
fn every_line_is_one_function_in_both_section_prefixes() {
    let lines = patterns();
    assert!(lines.len() > 1000, "only {} patterns: was the profile cut short?", lines.len());
    let lexable = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric() || b"_$.*".contains(&b));
    for line in &lines {
        let inner = line.strip_prefix("    *(.text.").and_then(|l| l.strip_suffix(')'));
        let (name, unlikely) = inner
            .and_then(|l| l.split_once(" .text.unlikely."))
            .unwrap_or_else(|| panic!("not `    *(.text.NAME .text.unlikely.NAME)`: {line}"));
        assert_eq!(name, unlikely, "{line}");
        assert!(name.starts_with("_ZN") || name.starts_with("_R"), "not a Rust symbol: {line}");
        assert!(name.ends_with('*'), "hash not wildcarded: {line}");
        assert!(lexable(name), "a character the linker script lexer splits on: {line}");
    }
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), lines.len(), "a pattern appears twice");
}

/// The profile behind the file ran startup and real traffic: its functions
/// for the main paths are all there.
#[test]
fn the_profile_covered_startup_ingest_delivery_and_reload() {
    for path in [
        "_ZN6meshes3cli5serve",
        "_ZN6meshes6config8validate",
        "_ZN6meshes3api6ingest",
        "_ZN6meshes5store6writer",
        "_ZN6meshes8delivery6engine",
        "_ZN6meshes8adapters7webhook",
        "_ZN6meshes7gateway6reload",
    ] {
        assert!(SCRIPT.contains(path), "no function of {path} in link/warm-text.ld");
    }
}
