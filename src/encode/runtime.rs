//! ONNX Runtime: finding the shared library, the process-wide environment, sessions and devices.
//!
//! The `ort` crate's `download-binaries` cannot work offline, so clipflow loads the library
//! that the `onnxruntime` (or `onnxruntime-gpu`) PyPI wheel ships, through `ort::init_from`,
//! which returns an error we can explain instead of panicking.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep::{ExecutionProvider, CUDA};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use super::EncodeError;

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    /// CUDA when the loaded ONNX Runtime has it and a GPU answers; else CPU, with a warning.
    Auto,
    Cpu,
    Cuda(i32),
}

impl DeviceRequest {
    /// Parses `auto`, `cpu`, `cuda`, `cuda:N` (the `runtime.device` key).
    pub fn parse(s: &str) -> Result<DeviceRequest, EncodeError> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" => Ok(DeviceRequest::Auto),
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" | "gpu" => Ok(DeviceRequest::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<i32>().ok())
                .filter(|n| *n >= 0)
                .map(DeviceRequest::Cuda)
                .ok_or_else(|| {
                    EncodeError::Device(format!(
                        "runtime.device: `{s}` is not one of auto, cpu, cuda, cuda:N"
                    ))
                }),
        }
    }
}

/// The device a session actually runs on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placement {
    pub device: String,
    /// Why the request was not honoured, when it was not.
    pub fallback_reason: Option<String>,
}

/// Thread and device settings for sessions.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    pub device: DeviceRequest,
    pub intra_threads: usize,
}

static ENVIRONMENT: OnceLock<Result<(Environment, PathBuf), String>> = OnceLock::new();

/// The process-wide ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<(&'static Environment, &'static Path), EncodeError> {
    let entry = ENVIRONMENT.get_or_init(|| {
        let path = find_library()?;
        let builder = ort::init_from(&path).map_err(|e| {
            format!(
                "cannot load ONNX Runtime from {}: {e}\n  clipflow needs onnxruntime 1.31 \
                 (scripts/setup installs it); ORT_DYLIB_PATH may name another copy",
                path.display()
            )
        })?;
        let env = builder
            .with_name("clipflow")
            .with_telemetry(false)
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime ({}): {e}", path.display()))?;
        Ok((env, path))
    });
    match entry {
        Ok((env, path)) => Ok((env, path.as_path())),
        Err(message) => Err(EncodeError::Runtime(message.clone())),
    }
}

/// `ORT_DYLIB_PATH`, else the `onnxruntime` wheel in a `.venv` of the working directory or of
/// an ancestor of the executable, else the wheel the `python3` on PATH imports.
pub fn find_library() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("ORT_DYLIB_PATH={} is not a file", p.display()))
        };
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    for root in &roots {
        let pattern = format!(
            "{}/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*",
            root.display()
        );
        if let Some(found) = best_match(&pattern) {
            return Ok(found);
        }
    }
    let python = std::process::Command::new("python3")
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .output();
    if let Ok(out) = python {
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if let Some(found) = best_match(&format!("{dir}/capi/libonnxruntime.so*")) {
                return Ok(found);
            }
        }
    }
    Err(
        "ONNX Runtime not found. Run scripts/setup (it installs the onnxruntime wheel into \
         .venv), `pip install onnxruntime==1.31.1`, or set ORT_DYLIB_PATH to \
         libonnxruntime.so"
            .into(),
    )
}

fn best_match(pattern: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = glob::glob(pattern).ok()?.filter_map(Result::ok).collect();
    found.sort();
    // The wheel ships only a versioned name (libonnxruntime.so.1.31.1); the longest name is the
    // most specific.
    found.into_iter().max_by_key(|p| p.as_os_str().len())
}

/// Opens an ONNX file on the requested device. `warn` receives the one fallback warning.
pub fn open_session(
    path: &Path,
    settings: SessionSettings,
    warn: &dyn Fn(&str),
) -> Result<(Session, Placement), EncodeError> {
    let (env, lib) = environment()?;
    let fail = |what: &str, e: &dyn std::fmt::Display| EncodeError::Model {
        path: path.to_path_buf(),
        message: format!("{what}: {e}"),
    };
    let mut builder = Session::builder(env)
        .map_err(|e| fail("session builder", &e))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| fail("optimization level", &e))?;
    if settings.intra_threads > 0 {
        builder = builder
            .with_intra_threads(settings.intra_threads)
            .map_err(|e| fail("threads", &e))?;
    }
    // Idle ORT worker threads spin by default; that steals the cores decoding needs.
    builder = builder
        .with_config_entry("session.intra_op.allow_spinning", "0")
        .map_err(|e| fail("spinning", &e))?;

    let placement = match settings.device {
        DeviceRequest::Cpu => Placement {
            device: "cpu".into(),
            fallback_reason: None,
        },
        DeviceRequest::Cuda(id) => {
            cuda_usable(lib).map_err(|reason| {
                EncodeError::Device(format!("runtime.device: cuda:{id} requested but {reason}"))
            })?;
            CUDA::default()
                .with_device_id(id)
                .register(&mut builder)
                .map_err(|e| {
                    EncodeError::Device(format!(
                        "runtime.device: cuda:{id} requested but ONNX Runtime could not start \
                         its CUDA provider: {e}"
                    ))
                })?;
            Placement {
                device: format!("cuda:{id}"),
                fallback_reason: None,
            }
        }
        DeviceRequest::Auto => {
            let registered = cuda_usable(lib).and_then(|()| {
                CUDA::default()
                    .register(&mut builder)
                    .map_err(|e| format!("its CUDA provider did not start: {e}"))
            });
            match registered {
                Ok(()) => Placement {
                    device: "cuda:0".into(),
                    fallback_reason: None,
                },
                Err(reason) => {
                    // One warning per process, however many sessions fall back.
                    static WARNED: std::sync::Once = std::sync::Once::new();
                    WARNED.call_once(|| {
                        warn(&format!("device auto: running on CPU because {reason}"))
                    });
                    Placement {
                        device: "cpu".into(),
                        fallback_reason: Some(reason),
                    }
                }
            }
        }
    };
    let session = builder
        .commit_from_file(path)
        .map_err(|e| fail("cannot load the model", &e))?;
    Ok((session, placement))
}

/// Whether a CUDA session can be attempted, or why not.
fn cuda_usable(lib: &Path) -> Result<(), String> {
    if !CUDA::is_available().unwrap_or(false) {
        return Err(format!(
            "the loaded ONNX Runtime ({}) has no CUDA provider (install onnxruntime-gpu)",
            lib.display()
        ));
    }
    cuda_driver_present()
}

#[cfg(feature = "cuda")]
fn cuda_driver_present() -> Result<(), String> {
    // cudarc panics without a driver, so ask whether the library is there first.
    // SAFETY: only tries to dlopen libcuda; no CUDA call is made when it is absent.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no CUDA driver (libcuda) on this machine".into());
    }
    match cudarc::driver::CudaContext::device_count() {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err("the CUDA driver sees no GPU".into()),
        Err(e) => Err(format!("the CUDA driver failed: {e}")),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_driver_present() -> Result<(), String> {
    // Without cudarc, ONNX Runtime's own registration error is the check.
    Ok(())
}
