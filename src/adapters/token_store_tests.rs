use super::*;

#[test]
fn tokens_survive_a_reopen_only_for_the_same_configured_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::open(dir.path());
    store.put("ws/crm", &fingerprint("configured"), "rotated-1").unwrap();
    let again = TokenStore::open(dir.path());
    let slot = again.slot("ws/crm".into());
    assert_eq!(slot.current(&fingerprint("configured")).as_deref(), Some("rotated-1"));
    assert_eq!(slot.current(&fingerprint("new-from-env")), None);
    assert_eq!(again.slot("ws/other".into()).current(&fingerprint("configured")), None);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(!dir.path().join("oauth-tokens.json.tmp").exists());
}

#[test]
fn a_version_1_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = serde_json::json!({"version": 1, "tokens": {"ws/crm": {
        "configured_sha256": fingerprint("configured"), "refresh_token": "rotated-1"}}});
    std::fs::write(dir.path().join(FILE), v1.to_string()).unwrap();
    let store = TokenStore::open(dir.path());
    assert_eq!(store.current("ws/crm", &fingerprint("configured")).unwrap(), "rotated-1");
    // Written back with one chain, it keeps the shape an earlier meshes
    // reads (a rollback): `tokens.<key>` is one entry, not a list.
    store.put("ws/crm", &fingerprint("configured"), "rotated-2").unwrap();
    // A second connection with two chains: still one entry per
    // connection under `tokens`, the newest, and every chain beside it.
    store.put("ws/other", &fingerprint("old"), "old-1").unwrap();
    store.put("ws/other", &fingerprint("new"), "new-1").unwrap();
    let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["tokens"]["ws/crm"]["refresh_token"], "rotated-2", "{doc}");
    assert_eq!(doc["tokens"]["ws/other"]["refresh_token"], "new-1", "{doc}");
    // What version 1 read: `tokens` as one entry per connection.
    #[derive(serde::Deserialize)]
    struct V1 {
        #[allow(dead_code)]
        tokens: BTreeMap<String, V1Entry>,
    }
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct V1Entry {
        configured_sha256: String,
        refresh_token: String,
    }
    assert!(serde_json::from_str::<V1>(&text).is_ok(), "{text}");
    let again = TokenStore::open(dir.path());
    assert_eq!(again.current("ws/other", &fingerprint("old")).unwrap(), "old-1");
    assert_eq!(again.current("ws/other", &fingerprint("new")).unwrap(), "new-1");
}

#[test]
fn a_replaced_chain_never_writes_over_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::open(dir.path());
    let (old, new) = (fingerprint("configured-1"), fingerprint("configured-2"));
    store.put("ws/crm", &new, "new-2").unwrap();
    // An adapter of the previous config finishes a refresh afterwards.
    store.put("ws/crm", &old, "old-2").unwrap();
    let again = TokenStore::open(dir.path());
    assert_eq!(again.current("ws/crm", &new).unwrap(), "new-2");
    assert_eq!(again.current("ws/crm", &old).unwrap(), "old-2");
    for i in 0..CHAINS_KEPT {
        store.put("ws/crm", &fingerprint(&format!("more-{i}")), "x").unwrap();
    }
    assert_eq!(again.current("ws/crm", &new), None, "only the newest chains are kept");
}

#[test]
fn what_another_process_wrote_is_read_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, cli) = (TokenStore::open(dir.path()), TokenStore::open(dir.path()));
    let configured = fingerprint("configured");
    gateway.put("ws/crm", &configured, "rotated-1").unwrap();
    cli.put("ws/crm", &configured, "rotated-2").unwrap();
    cli.put("ws/chat", &configured, "chat-1").unwrap();
    // The gateway's memory holds rotated-1; the file's newer serial wins.
    assert_eq!(gateway.current("ws/crm", &configured).unwrap(), "rotated-2");
    gateway.put("ws/mail", &configured, "mail-1").unwrap();
    let file = TokenStore::open(dir.path());
    assert_eq!(file.current("ws/chat", &configured).unwrap(), "chat-1");
    assert_eq!(file.current("ws/crm", &configured).unwrap(), "rotated-2");
}

#[test]
fn an_unreadable_file_is_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
    let store = TokenStore::open(dir.path());
    assert_eq!(store.slot("ws/crm".into()).current(&fingerprint("x")), None);
    // The next rotation replaces it with a good file.
    store.put("ws/crm", &fingerprint("x"), "r").unwrap();
    assert_eq!(TokenStore::open(dir.path()).current("ws/crm", &fingerprint("x")).unwrap(), "r");
}
