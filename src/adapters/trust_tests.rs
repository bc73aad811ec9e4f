use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
}

#[test]
fn a_bundle_gives_one_root_per_certificate_and_skips_other_blocks() {
    assert_eq!(read_ca_file(&fixture("ca.pem")).map(|r| r.len()).ok(), Some(1));
    let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
    let bundle = dir.path().join("bundle.pem");
    let read = |name| std::fs::read_to_string(fixture(name)).unwrap_or_default();
    // A key beside the certificates (a common mistake) is not a root.
    let text = [read("ca.pem"), read("server.key"), read("server.pem")].concat();
    std::fs::write(&bundle, text).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(read_ca_file(&bundle).map(|r| r.len()).ok(), Some(2));
}

#[test]
fn errors_name_the_file_and_what_it_should_hold() {
    let err = read_ca_file(&fixture("server.key")).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.starts_with("--ca-file ") && err.contains("server.key"), "{err}");
    assert!(err.contains("holds no certificate"), "{err}");
}

#[test]
fn untrusted_certificates_are_recognised_in_rustls_messages() {
    assert!(untrusted("invalid peer certificate: UnknownIssuer"));
    assert!(!untrusted("connection refused"));
}
