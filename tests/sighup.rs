//! SIGHUP: caught from the very start, and the way to reload when the file
//! watcher cannot start. A test binary of its own: the signal goes to the
//! whole process (and an early one used to kill it).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use meshes::config::watch::WatchError;
use meshes::gateway::GatewayOptions;
use serde_json::json;
use std::sync::Arc;
use support::*;

/// Each test signals the whole process: one at a time, so that a reload
/// is the test's own signal.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sighup() {
    let pid = std::process::id().to_string();
    let status = std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(status.success());
}

/// A SIGHUP while the store opens (a repair after a crash can take seconds)
/// used to kill the process (exit 129); it is kept and reloads once the
/// reloader runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_during_startup_is_kept_and_reloads() {
    let _one = ONE_AT_A_TIME.lock().await;
    let rx = Receiver::start().await;
    let cfg = webhook_config(&[("a", &rx.url)], "[0s]");
    let mut gw = TestGateway::prepare(&cfg);
    let (path, next) = (config_path(gw.dir.path()), with_second_rule(&cfg, "a"));
    gw.tune = Some(Arc::new(move |o: &mut GatewayOptions| {
        // No file watcher: only the signal can apply the edit.
        o.watch = false;
        let (path, next) = (path.clone(), next.clone());
        o.store_opener = Some(opening_after(move || {
            std::fs::write(&path, &next).unwrap();
            sighup();
        }));
    }));
    gw.boot().await;
    config_version(&gw, 2).await;
    gw.post_event(json!({"event": "user.other", "payload": {"n": 1}})).await;
    rx.wait_for(1).await;
}

/// Out of inotify instances (per user, node-wide): `serve` used to exit 1.
/// It serves, says so in a gauge, and reloads on SIGHUP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_file_watcher_it_serves_and_sighup_reloads() {
    let _one = ONE_AT_A_TIME.lock().await;
    // This test owns the process-wide recorder.
    let handle = meshes::api::ops::prometheus_builder().install_recorder().unwrap();
    let rx = Receiver::start().await;
    let cfg = webhook_config(&[("a", &rx.url)], "[0s]");
    let mut gw = TestGateway::prepare(&cfg);
    gw.metrics = Some(handle);
    gw.tune = Some(Arc::new(|o: &mut GatewayOptions| {
        o.watcher_starter = Some(Arc::new(|_, _| {
            let emfile = std::io::Error::from_raw_os_error(24);
            Err(WatchError::Init(notify::Error::io(emfile)))
        }));
    }));
    gw.boot().await;
    let metrics = gw.http.get(format!("{}/metrics", gw.base)).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("meshes_config_watcher_active 0"), "{metrics}");
    let ready: serde_json::Value =
        gw.http.get(format!("{}/readyz", gw.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["config_reloads_on"], "SIGHUP only", "{ready}");
    gw.write_config(&with_second_rule(&cfg, "a"));
    sighup();
    config_version(&gw, 2).await;
}
