//! Child processes under test and what `/proc` says about them.

use super::{BenchError, Result, http, io};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now (bound, then released). Another
/// process could take it in between; on loopback that is unlikely and the
/// child would fail loudly.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("reserve a port"))?;
    Ok(l.local_addr().map_err(io("reserve a port"))?.port())
}

/// A running child process, killed on drop if still running.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// When it was spawned.
    pub spawned: Instant,
}

impl Proc {
    /// Spawns this binary (`meshes`) with `args`, listening on `port`;
    /// stdout is discarded, stderr appended to `log`.
    pub fn spawn(args: &[OsString], port: u16, log: &Path) -> Result<Proc> {
        let exe = std::env::current_exe().map_err(io("find the meshes binary"))?;
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io(format!("open {}", log.display())))?;
        let spawned = Instant::now();
        let child = Command::new(exe)
            .args(args)
            .env("MESHES_LOG", std::env::var("MESHES_LOG").unwrap_or_else(|_| "info".into()))
            .envs(super::configs::ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(io("spawn meshes"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Ok(Proc { child, base: format!("http://{addr}"), addr, spawned })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `GET <base><path>` every 5 ms until it answers 200; returns the
    /// time since spawn. Fails if the process exits or `limit` passes.
    pub async fn wait_ready(&mut self, path: &str, limit: Duration) -> Result<Duration> {
        let client = control_client()?;
        let url = format!("{}{path}", self.base);
        loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(self.spawned.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError::Failed(format!("process exited before ready ({status})")));
            }
            if self.spawned.elapsed() > limit {
                return Err(BenchError::Failed(format!("{url} not ready after {limit:?}")));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sends a signal by name (`TERM`, `HUP`) with `kill(1)`: the crate
    /// forbids `unsafe`, so no `libc::kill`.
    pub fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .map_err(io("run kill"))?;
        if status.success() {
            Ok(())
        } else {
            Err(BenchError::Failed(format!("kill -{name} {} failed", self.pid())))
        }
    }

    /// SIGTERM, then waits up to `limit` for a clean exit (SIGKILL after).
    pub async fn stop(mut self, limit: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        self.signal("TERM")?;
        while t0.elapsed() < limit {
            if self.child.try_wait().map_err(io("wait for the child"))?.is_some() {
                return Ok(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(BenchError::Failed(format!("process {} ignored SIGTERM for {limit:?}", self.pid())))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A client for control requests (readiness, stats); never the load itself.
pub fn control_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        // The server closes a connection idle for 10 s. A sample taken 10 s
        // after the previous one would reuse it just as it closes ("connection
        // closed before message completed"): never keep one idle that long.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .map_err(http("build the control client"))
}

/// GETs `url` and parses the JSON body.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    client
        .get(url)
        .send()
        .await
        .map_err(http(format!("GET {url}")))?
        .json()
        .await
        .map_err(http(format!("GET {url}")))
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`, else 100).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// User + system CPU seconds a process has used so far.
pub fn cpu_seconds(pid: u32, ticks: f64) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(io(format!("read {path}")))?;
    // The command name (field 2) may hold spaces; count fields after its `)`.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `)`: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    Ok((tick(11) + tick(12)) / ticks)
}

/// The whole machine's CPU time so far, in ticks, from the first line of
/// `/proc/stat`: (stolen by the hypervisor, total). Guest time is already
/// counted in user time, so the total is the first eight fields.
pub fn machine_cpu() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(io("read /proc/stat"))?;
    let line = stat.lines().next().unwrap_or_default();
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    Ok((fields.get(7).copied().unwrap_or(0), fields.iter().take(8).sum()))
}

/// Bytes the thread of `pid` whose name starts with `name` has had read
/// from the disk (`read_bytes` of `/proc/<pid>/task/<tid>/io`: page cache
/// hits are not counted); `None` when there is no such thread or no such file.
pub fn thread_disk_reads(pid: u32, name: &str) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let task = tasks.flatten().find(|t| {
        std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(name))
    })?;
    let io = std::fs::read_to_string(task.path().join("io")).ok()?;
    io.lines().find_map(|l| l.strip_prefix("read_bytes:")?.trim().parse().ok())
}

/// The kernel's I/O counters of the block device holding `dir`
/// (`/sys/class/block/<name>/stat`); `None` for a mount with no block
/// device (tmpfs, overlay).
pub fn device_stat(dir: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let (dev, _, _) = super::report::mount_of(&dir)?;
    // `/dev/mapper/x` is a link to `/dev/dm-0`; the sysfs name is the target's.
    let dev = std::fs::canonicalize(&dev).ok()?;
    let stat = Path::new("/sys/class/block").join(dev.file_name()?).join("stat");
    stat.is_file().then_some(stat)
}

/// Bytes written to the device so far (sectors written, the stat file's
/// seventh field, are 512 bytes whatever the device's block size). This is
/// what the disk was asked to write, by every process: the page cache's
/// per-process `write_bytes` counts a whole large folio each time a few
/// bytes in it are dirtied, a thousand times what reached the disk for a
/// log rewritten in place.
pub fn device_written(stat: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(stat).ok()?;
    let sectors: u64 = text.split_whitespace().nth(6)?.parse().ok()?;
    Some(sectors * 512)
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn status_bytes(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(io(format!("read {path}")))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| BenchError::Failed(format!("no {key} in {path}")))
}

/// Resident memory now.
pub fn rss(pid: u32) -> Result<u64> {
    status_bytes(pid, "VmRSS")
}

/// Bytes as `12.3 MB` (10^6, like `ps` users expect from MB).
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The `meshes serve` arguments used by every scenario: the rate limit is
/// raised so it never caps a benchmark, and file watching is on as in production.
pub fn serve_args(config: &Path, port: u16, data: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["serve", "--listen"].map(OsString::from).to_vec();
    a.push(format!("127.0.0.1:{port}").into());
    a.push("--config".into());
    a.push(config.into());
    a.push("--data-dir".into());
    a.push(data.into());
    a.push("--rate-limit".into());
    a.push("1000000000".into());
    a.push("--shutdown-timeout".into());
    a.push("10".into());
    a
}

/// Starts `meshes serve` on a free port and waits for `/readyz`.
pub async fn start_meshes(config: &Path, data: &Path, log: &Path) -> Result<(Proc, Duration)> {
    let port = free_port()?;
    let mut p = Proc::spawn(&serve_args(config, port, data), port, log)?;
    let ready = p.wait_ready("/readyz", Duration::from_secs(600)).await?;
    Ok((p, ready))
}

/// Starts `meshes bench <kind> --listen 127.0.0.1:<port> <extra>…` and waits for it.
pub async fn start_helper(kind: &str, extra: &[OsString], port: u16, log: &Path) -> Result<Proc> {
    let mut args: Vec<OsString> =
        vec!["bench".into(), kind.into(), "--listen".into(), format!("127.0.0.1:{port}").into()];
    args.extend_from_slice(extra);
    let mut p = Proc::spawn(&args, port, log)?;
    p.wait_ready("/healthz", Duration::from_secs(20)).await?;
    Ok(p)
}
