//! Compiles every BPF program kpbench ships (`bpf/`: the ebpf mode's socket LB, the
//! ebpf-tc mode's per-packet LB and the harness's transit probes) with clang (`-O2 -g -target bpf`) into `$OUT_DIR`,
//! and sets `cfg(kpbench_bpf)` so `src/floor/bpf.rs` embeds them.
//!
//! Without clang or libbpf's headers (`bpf/bpf_helpers.h`, Debian's libbpf-dev) the
//! build still succeeds: it embeds nothing, warns, and whatever needs a program says
//! at run time what to install. It then watches `/usr/bin` and `/usr/include`, so
//! installing the packages makes the next build compile the programs.

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCES: &[&str] = &["socklb", "tclb", "transit"];
/// Headers the sources include.
const HEADERS: &[&str] = &["cilium_lb4.h"];
const HELPERS: &str = "bpf/bpf_helpers.h";
const INCLUDE_DIRS: &[&str] = &["/usr/include", "/usr/local/include"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kpbench_bpf)");
    println!("cargo::rerun-if-env-changed=CLANG");
    println!("cargo::rerun-if-env-changed=KPBENCH_NO_BPF");
    for src in SOURCES {
        println!("cargo::rerun-if-changed=bpf/{src}.bpf.c");
    }
    for h in HEADERS {
        println!("cargo::rerun-if-changed=bpf/{h}");
    }
    if std::env::var_os("KPBENCH_NO_BPF").is_some() {
        println!("cargo::warning=KPBENCH_NO_BPF is set: the BPF programs are not built");
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let (clang, helpers) = match (find_clang(), find_helpers()) {
        (Some(c), Some(h)) => (c, h),
        (clang, helpers) => {
            let missing: Vec<&str> = [
                clang.is_none().then_some("clang"),
                helpers
                    .is_none()
                    .then_some("libbpf-dev (bpf/bpf_helpers.h)"),
            ]
            .into_iter()
            .flatten()
            .collect();
            println!(
                "cargo::warning=BPF programs not built: {} not found; install clang and libbpf-dev (scripts/install-deps.sh), then rebuild",
                missing.join(" and ")
            );
            // Rerun when either may have been installed.
            println!("cargo::rerun-if-changed=/usr/bin");
            println!("cargo::rerun-if-changed=/usr/include");
            return;
        }
    };
    println!("cargo::rerun-if-changed={}", clang.display());
    println!("cargo::rerun-if-changed={}", helpers.display());
    for src in SOURCES {
        if let Err(e) = compile(&clang, src, &out) {
            println!("cargo::warning=BPF program {src} not built: {e}");
            return;
        }
    }
    println!("cargo::rustc-cfg=kpbench_bpf");
}

/// `$CLANG`, else `clang`, else the newest versioned `clang-N` on PATH.
fn find_clang() -> Option<PathBuf> {
    if let Some(c) = std::env::var_os("CLANG") {
        return Some(PathBuf::from(c));
    }
    let names =
        std::iter::once("clang".to_string()).chain((14..=22).rev().map(|v| format!("clang-{v}")));
    for name in names {
        if let Some(p) = on_path(&name) {
            return Some(p);
        }
    }
    None
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn find_helpers() -> Option<PathBuf> {
    INCLUDE_DIRS
        .iter()
        .map(|d| Path::new(d).join(HELPERS))
        .find(|p| p.is_file())
}

fn compile(clang: &Path, src: &str, out: &Path) -> Result<(), String> {
    let input = format!("bpf/{src}.bpf.c");
    let output = out.join(format!("{src}.bpf.o"));
    let mut cmd = Command::new(clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall"]);
    // With -target bpf clang does not search the multiarch directory that holds
    // <asm/types.h> (Debian: /usr/include/x86_64-linux-gnu).
    if let Some(dir) = multiarch_include() {
        cmd.arg("-I").arg(dir);
    }
    cmd.arg("-c").arg(&input).arg("-o").arg(&output);
    let res = cmd
        .output()
        .map_err(|e| format!("running {}: {e}", clang.display()))?;
    if !res.status.success() {
        let stderr = String::from_utf8_lossy(&res.stderr);
        let first = stderr.lines().take(6).collect::<Vec<_>>().join(" | ");
        return Err(format!("{} {input} failed: {first}", clang.display()));
    }
    Ok(())
}

fn multiarch_include() -> Option<PathBuf> {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let triple = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        other => return Some(PathBuf::from(format!("/usr/include/{other}-linux-gnu"))),
    };
    Some(PathBuf::from(format!("/usr/include/{triple}"))).filter(|p| p.is_dir())
}
