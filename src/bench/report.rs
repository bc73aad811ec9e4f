//! The machine description and the Markdown results table.

use std::fmt::Write as _;
use std::path::Path;

/// One figure of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Benchmark (`Ingest c=64`).
    pub bench: String,
    /// What is measured (`events/s`).
    pub figure: String,
    /// The measured value, formatted.
    pub value: String,
    /// The target, or `—`.
    pub target: String,
    /// The same figure for the ceiling server, or `—`.
    pub ceiling: String,
    /// `value / ceiling`, or `—`.
    pub ratio: String,
    /// `yes`, `NO`, or `—` when there is no target.
    pub met: &'static str,
}

impl Row {
    /// A row without target or ceiling.
    pub fn info(bench: &str, figure: &str, value: String) -> Row {
        Row {
            bench: bench.into(),
            figure: figure.into(),
            value,
            target: "—".into(),
            ceiling: "—".into(),
            ratio: "—".into(),
            met: "—",
        }
    }

    /// Adds a target and whether it was met.
    #[must_use]
    pub fn target(mut self, target: &str, met: bool) -> Row {
        self.target = target.into();
        self.met = if met { "yes" } else { "NO" };
        self
    }

    /// Adds a target this run cannot judge (`met` stays `—`): the note in
    /// `target` says what would.
    #[must_use]
    pub fn unjudged(mut self, target: &str) -> Row {
        self.target = target.into();
        self
    }

    /// Adds the ceiling's figure and the ratio `value / ceiling`.
    #[must_use]
    pub fn ceiling(mut self, shown: String, ratio: Option<f64>) -> Row {
        self.ceiling = shown;
        self.ratio = ratio.filter(|r| r.is_finite()).map_or("—".into(), |r| format!("{r:.2}×"));
        self
    }
}

/// `12,345`.
pub fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `a / b` when `b` is positive.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Where and how the benchmarks ran.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs available.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// MemTotal.
    pub memory: String,
    /// Kernel release.
    pub kernel: String,
    /// Filesystem of the data directories.
    pub disk: String,
    /// Build profile and version.
    pub build: String,
}

impl Machine {
    /// Reads /proc; `data` is the directory the stores live in.
    pub fn detect(data: &Path) -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?.split_once(':').map(|x| x.1.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory = read("/proc/meminfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map_or_else(|| "unknown".into(), |kb| format!("{:.1} GB", kb * 1024.0 / 1e9));
        let profile = if cfg!(debug_assertions) {
            "DEBUG build: figures are not meaningful"
        } else {
            "release build"
        };
        Machine {
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            cpu,
            memory,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            disk: filesystem(data),
            build: format!("meshes {} ({profile}, {})", env!("CARGO_PKG_VERSION"), git_commit()),
        }
    }
}

/// The commit of the checkout this binary was built in (found from the
/// binary's own path, `…/target/release/meshes`, not from the working
/// directory), `-modified` when its code (sources, manifests, build script,
/// link layout) differs from that commit, and a warning when the binary is
/// older than that code: it was then built from something else.
fn git_commit() -> String {
    let Some(root) = std::env::current_exe().ok().as_deref().and_then(checkout_of) else {
        return "commit unknown: the binary is not inside a meshes checkout".into();
    };
    let git = |args: &[&str]| {
        std::process::Command::new("git").arg("-C").arg(&root).args(args).output().ok()
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]).filter(|o| o.status.success()) else {
        return "commit unknown".into();
    };
    let mut diff = vec!["diff", "--quiet", "HEAD", "--"];
    diff.extend(CODE);
    let modified = git(&diff).is_some_and(|o| o.status.code() == Some(1));
    let head = String::from_utf8_lossy(&head.stdout);
    let stale = if binary_is_stale(&root) {
        " — WARNING: the binary is older than this code; rebuild it"
    } else {
        ""
    };
    format!("commit {}{}{stale}", head.trim(), if modified { "-modified" } else { "" })
}

/// What a build reads, relative to the checkout.
const CODE: [&str; 5] = ["src", "build.rs", "Cargo.toml", "Cargo.lock", "link"];

/// The meshes checkout holding `exe`: the nearest ancestor with a
/// `Cargo.toml` that names the package `meshes`.
fn checkout_of(exe: &Path) -> Option<std::path::PathBuf> {
    exe.ancestors().skip(1).find_map(|dir| {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        manifest.lines().any(|l| l.trim() == "name = \"meshes\"").then(|| dir.to_path_buf())
    })
}

/// True when a file of the checkout's code changed after the binary was written.
fn binary_is_stale(root: &Path) -> bool {
    let built = std::env::current_exe().and_then(std::fs::metadata).and_then(|m| m.modified());
    let Ok(built) = built else { return false };
    let mut dirs: Vec<std::path::PathBuf> = CODE.iter().map(|c| root.join(c)).collect();
    while let Some(path) = dirs.pop() {
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).into_iter().flatten().flatten();
            dirs.extend(entries.map(|e| e.path()));
        } else if meta.modified().is_ok_and(|m| m > built) {
            return true;
        }
    }
    false
}

/// The mount holding `dir` (longest mount-point prefix in /proc/mounts):
/// `ext4 on /dev/vda mounted at /`.
pub fn filesystem(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    match mount_of(&dir) {
        Some((dev, at, fs)) => format!("{} ({fs} on {dev} mounted at {at})", dir.display()),
        None => format!("{} (filesystem unknown)", dir.display()),
    }
}

/// `(device, mount point, file system)` of the mount holding `dir`.
pub fn mount_of(dir: &Path) -> Option<(String, String, String)> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3).then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string()))
        })
        .filter(|(_, at, _)| dir.starts_with(at))
        .max_by_key(|(_, at, _)| at.len())
}

/// The whole report: machine, command, date, then the table.
pub fn markdown(m: &Machine, command: &str, rows: &[Row]) -> String {
    let mut s = String::new();
    let date = crate::clock::rfc3339(crate::clock::now_ms());
    let _ = writeln!(s, "## meshes benchmark results\n");
    let _ = writeln!(s, "- **Date**: {date}");
    let _ = writeln!(s, "- **Command**: `{command}`");
    let _ = writeln!(s, "- **Build**: {}", m.build);
    let _ = writeln!(s, "- **CPU**: {} × {}", m.cores, m.cpu);
    let _ = writeln!(s, "- **Memory**: {}; kernel {}", m.memory, m.kernel);
    let _ = writeln!(s, "- **Data dir**: {}", m.disk);
    let _ = writeln!(
        s,
        "\n| Benchmark | Figure | Result | Target | Ceiling | Ratio to ceiling | Met |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.bench, r.figure, r.value, r.target, r.ceiling, r.ratio, r.met
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_thousands_and_ratios() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        let r =
            Row::info("b", "f", "1".into()).ceiling("2".into(), ratio(1.0, 2.0)).target("t", true);
        assert_eq!((r.ratio.as_str(), r.met), ("0.50×", "yes"));
        assert_eq!(Row::info("b", "f", "1".into()).ceiling("0".into(), ratio(1.0, 0.0)).ratio, "—");
    }
}
