//! Link-time options for the `meshes` binary.
//!
//! Both are about memory, not speed, and both can be turned off with
//! `MESHES_PLAIN_LINK=1` for a linker that lacks them (mold, gold).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/warm-text.ld");
    println!("cargo:rerun-if-env-changed=MESHES_PLAIN_LINK");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let plain = std::env::var_os("MESHES_PLAIN_LINK").is_some_and(|v| !v.is_empty() && v != "0");
    if os != "linux" || env != "gnu" || plain {
        return;
    }
    // Packed relative relocations (DT_RELR; rust-lld or GNU ld ≥ 2.38,
    // glibc ≥ 2.36 at run time).
    // A position-independent binary otherwise carries 24 bytes of
    // relocation per pointer in its read-only data: 1.5 MB here, all of
    // it read at startup and so resident for the life of the process.
    // Packed, they take 22 KB. ASLR is unchanged.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    // The functions the server runs, placed together before the rest of the
    // code (`scripts/warm-text` explains and regenerates the list). The
    // kernel maps code in 64 KiB windows around each page touched; spread
    // over the binary, startup's 3.4 MB of functions kept 10.5 MB of code
    // resident. The script only adds an output section (`INSERT BEFORE`), so
    // a function it does not name is linked as before.
    // Release builds only: matching the script's ~2,800 patterns (two section
    // globs each) against a debug build's sections added ~33 s to every debug
    // link, and nobody measures a debug binary's memory. (In release it is
    // within the link's noise.)
    if std::env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let script = std::path::Path::new(&manifest).join("link").join("warm-text.ld");
    // `-T` and the path as two arguments: a comma in the path would split `-Wl,`.
    println!("cargo:rustc-link-arg-bins=-T");
    println!("cargo:rustc-link-arg-bins={}", script.display());
}
