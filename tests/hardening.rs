//! Hostile inputs from issue 12, each as a user would meet it through the `clipflow` binary:
//! directory link loops, dataset paths that lead outside the dataset, special and oversized
//! files, a report that cannot be written, and run names that are paths.
//!
//! Every child process runs under a memory ceiling and a deadline, so a regression fails the
//! test instead of exhausting the machine or hanging the suite.

mod common;

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, ArrayRef, BinaryArray, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

/// Limits of one child process.
#[derive(Clone, Copy)]
struct Limits {
    /// Address space (RLIMIT_AS), bytes.
    memory: u64,
    /// Largest file it may write (RLIMIT_FSIZE), bytes; a write past it fails with EFBIG,
    /// which is how a full disk looks to the writer.
    file_size: Option<u64>,
    deadline: Duration,
}

const LIMITS: Limits = Limits {
    memory: 6 << 30,
    file_size: None,
    deadline: Duration::from_secs(120),
};

/// What a limited child did: its output, or `None` when it ran past the deadline (killed).
fn clipflow_limited(args: &[&str], limits: Limits) -> Option<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clipflow"));
    cmd.args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    unsafe {
        cmd.pre_exec(move || {
            let set = |resource, value: u64| {
                let lim = libc::rlimit {
                    rlim_cur: value as libc::rlim_t,
                    rlim_max: value as libc::rlim_t,
                };
                if libc::setrlimit(resource, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            };
            set(libc::RLIMIT_AS, limits.memory)?;
            if let Some(bytes) = limits.file_size {
                // A write past the limit then fails with EFBIG instead of killing the process.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                set(libc::RLIMIT_FSIZE, bytes)?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("clipflow starts");
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut b).ok();
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut b).ok();
        b
    });
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(Output {
                status,
                stdout: t_out.join().unwrap(),
                stderr: t_err.join().unwrap(),
            });
        }
        if start.elapsed() > limits.deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn must_finish(args: &[&str], limits: Limits, what: &str) -> Output {
    clipflow_limited(args, limits).unwrap_or_else(|| {
        panic!(
            "{what}: clipflow {} still running after {:?}",
            args.join(" "),
            limits.deadline
        )
    })
}

/// `(id, reason)` of every row of an errors.parquet.
fn error_rows(path: &Path) -> Vec<(String, String)> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = |name: &str| {
            let c = arrow_cast::cast(batch.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
            c.as_any().downcast_ref::<StringArray>().unwrap().clone()
        };
        let (ids, reasons) = (col("id"), col("reason"));
        for i in 0..batch.num_rows() {
            out.push((ids.value(i).to_string(), reasons.value(i).to_string()));
        }
    }
    out
}

/// Ids of the embedded clean images of model `model` in a run directory.
fn embedded_ids(run: &Path, model: &str) -> Vec<String> {
    let dir = run.join("embeddings").join(model).join("image");
    let mut ids = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return ids;
    };
    let mut files: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".parquet") || name.starts_with('.') {
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let id = batch.column_by_name("id").unwrap();
            let id = arrow_cast::cast(id, &DataType::Utf8).unwrap();
            let id = id.as_any().downcast_ref::<StringArray>().unwrap();
            let variant = batch.column_by_name("variant").unwrap();
            let variant = arrow_cast::cast(variant, &DataType::Utf8).unwrap();
            let variant = variant.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..batch.num_rows() {
                if variant.value(i) == "clean" {
                    ids.push(id.value(i).to_string());
                }
            }
        }
    }
    ids.sort();
    ids
}

/// A Hugging Face-style Parquet whose `{bytes, path}` image cells have null bytes and the given
/// paths, with ids `r0`, `r1`, ...
fn path_parquet(path: &Path, paths: &[&str]) {
    let fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    let image: ArrayRef = Arc::new(StructArray::new(
        fields,
        vec![
            Arc::new(BinaryArray::from_iter(paths.iter().map(|_| None::<&[u8]>))) as ArrayRef,
            Arc::new(StringArray::from(
                paths.iter().map(|p| Some(*p)).collect::<Vec<_>>(),
            )) as ArrayRef,
        ],
        None,
    ));
    let ids: ArrayRef = Arc::new(StringArray::from(
        (0..paths.len())
            .map(|i| Some(format!("r{i}")))
            .collect::<Vec<_>>(),
    ));
    let schema = Arc::new(Schema::new(vec![
        Field::new("image", image.data_type().clone(), true),
        Field::new("id", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(schema.clone(), vec![image, ids]).unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn copy_fixture(name: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(fixture(&format!("images/{name}")), to).unwrap();
}

fn parquet_study(dir: &Path, data: &Path, extra: &str) -> PathBuf {
    study(
        dir,
        &format!(
            "name: hardening\ndataset:\n  format: parquet\n  path: {}\n  id_column: id\n{extra}models:\n  - path: {}\n    name: m\n",
            data.display(),
            fixture("models/optimum").display()
        ),
    )
}

fn folder_study(dir: &Path, data: &Path, format: &str, extra: &str) -> PathBuf {
    study(
        dir,
        &format!(
            "name: hardening\ndataset:\n  format: {format}\n  path: {}\n{extra}models:\n  - path: {}\n    name: m\n",
            data.display(),
            fixture("models/optimum").display()
        ),
    )
}

fn run(study: &Path, out: &Path, limits: Limits, what: &str) -> Output {
    must_finish(
        &[
            "run",
            study.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ],
        limits,
        what,
    )
}

// ---- 1. directory link loops -------------------------------------------------------------

#[test]
fn directory_link_loops_list_each_file_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("folder");
    copy_fixture("square.png", &data.join("a/one.png"));
    copy_fixture("tiny.jpg", &data.join("a/deeper/two.jpg"));
    copy_fixture("gray.png", &data.join("b/three.png"));
    // One self-link: every file was listed 41 times (until ELOOP). Two: the listing never ended.
    std::os::unix::fs::symlink(".", data.join("a/selfdir")).unwrap();
    std::os::unix::fs::symlink(".", data.join("a/deeper/again")).unwrap();
    std::os::unix::fs::symlink("..", data.join("b/up")).unwrap();
    // A link to a sibling class folder: the folder is listed once, under its own name.
    std::os::unix::fs::symlink("../a", data.join("b/link_to_a")).unwrap();
    let s = folder_study(tmp.path(), &data, "folder", "");
    let o = must_finish(
        &["validate", s.to_str().unwrap()],
        Limits {
            deadline: Duration::from_secs(30),
            ..LIMITS
        },
        "validate",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(", 3 items (3 before sampling), 2 classes"),
        "{}",
        stdout(&o)
    );

    let out = tmp.path().join("run");
    let o = run(&s, &out, LIMITS, "run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        embedded_ids(&out, "m"),
        ["a/deeper/two.jpg", "a/one.png", "b/three.png"]
    );
}

// ---- 2. paths outside the dataset --------------------------------------------------------

#[test]
fn parquet_paths_outside_the_dataset_are_ledgered() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    copy_fixture("square.png", &ds.join("imgs/inside.png"));
    let outside = tmp.path().join("outside.png");
    copy_fixture("tiny.jpg", &outside);
    std::os::unix::fs::symlink("../../outside.png", ds.join("imgs/leads_out.png")).unwrap();
    // A link that stays inside the dataset is fine.
    std::os::unix::fs::symlink("inside.png", ds.join("imgs/stays_in.png")).unwrap();
    let abs = outside.display().to_string();
    path_parquet(
        &ds.join("train.parquet"),
        &[
            "imgs/inside.png",
            "../outside.png",
            &abs,
            "imgs/leads_out.png",
            "../../../../../../../../../../etc/passwd",
            "/etc/hostname",
            "imgs/stays_in.png",
            "imgs/../imgs/inside.png",
        ],
    );
    let s = parquet_study(tmp.path(), &ds.join("train.parquet"), "");
    let out = tmp.path().join("run");
    let o = run(&s, &out, LIMITS, "run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(embedded_ids(&out, "m"), ["r0", "r6", "r7"]);
    let errors = error_rows(&out.join("errors.parquet"));
    let ids: Vec<&str> = errors.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["r1", "r2", "r3", "r4", "r5"], "{errors:?}");
    for (id, reason) in &errors {
        assert!(
            reason.contains("outside the dataset folder")
                && reason.contains("dataset.allow_paths_outside"),
            "{id}: {reason}"
        );
    }

    // The user who needs them lifts the confinement; /etc files are then plain bad images.
    let s = parquet_study(
        tmp.path(),
        &ds.join("train.parquet"),
        "  allow_paths_outside: true\n",
    );
    let out = tmp.path().join("run-allowed");
    let o = run(&s, &out, LIMITS, "run allowed");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        embedded_ids(&out, "m"),
        ["r0", "r1", "r2", "r3", "r6", "r7"]
    );
    let errors = error_rows(&out.join("errors.parquet"));
    let ids: Vec<&str> = errors.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["r4", "r5"], "{errors:?}");
}

#[test]
fn dtd_split_lists_and_folder_links_stay_inside_the_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let dtd = tmp.path().join("dtd");
    copy_fixture("square.png", &dtd.join("images/banded/a.png"));
    copy_fixture("tiny.jpg", &tmp.path().join("secret/b.jpg"));
    std::fs::create_dir_all(dtd.join("labels")).unwrap();
    std::fs::write(
        dtd.join("labels/train1.txt"),
        format!(
            "banded/a.png\nbanded/../../../secret/b.jpg\n{}\n",
            tmp.path().join("secret/b.jpg").display()
        ),
    )
    .unwrap();
    // `split` is a name, not a path.
    std::fs::write(tmp.path().join("secret/x.txt"), "banded/a.png\n").unwrap();
    let s = folder_study(tmp.path(), &dtd, "dtd", "  split: ../../secret/x\n");
    let o = must_finish(&["validate", s.to_str().unwrap()], LIMITS, "validate");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("dataset.split"), "{}", stderr(&o));

    let s = folder_study(tmp.path(), &dtd, "dtd", "  split: train1\n");
    let out = tmp.path().join("run");
    let o = run(&s, &out, LIMITS, "dtd run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(embedded_ids(&out, "m"), ["banded/a.png"]);
    let errors = error_rows(&out.join("errors.parquet"));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|(_, r)| r.contains("outside the dataset folder")),
        "{errors:?}"
    );

    // ImageFolder: a file link and a directory link that lead out of the root.
    let folder = tmp.path().join("folder");
    copy_fixture("square.png", &folder.join("a/in.png"));
    std::os::unix::fs::symlink(tmp.path().join("secret/b.jpg"), folder.join("a/out.jpg")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret"), folder.join("a/secret_dir")).unwrap();
    let s = folder_study(tmp.path(), &folder, "folder", "");
    let out = tmp.path().join("run-folder");
    let o = run(&s, &out, LIMITS, "folder run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(embedded_ids(&out, "m"), ["a/in.png"]);
    let errors = error_rows(&out.join("errors.parquet"));
    let ids: Vec<&str> = errors.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["a/out.jpg"], "{errors:?}");
}

// ---- 3. special and oversized files ------------------------------------------------------

#[test]
fn special_and_oversized_files_are_ledgered_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    copy_fixture("tiny.jpg", &ds.join("imgs/small.jpg"));
    copy_fixture("landscape.jpg", &ds.join("imgs/big.jpg"));
    let big = std::fs::metadata(ds.join("imgs/big.jpg")).unwrap().len();
    let small = std::fs::metadata(ds.join("imgs/small.jpg")).unwrap().len();
    assert!(small < 4000 && big > 4000, "{small} {big}");
    // A FIFO: opening it for reading used to block forever.
    let fifo = ds.join("imgs/fifo.png");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    path_parquet(
        &ds.join("train.parquet"),
        &[
            "imgs/small.jpg",
            "/dev/zero",
            "imgs/fifo.png",
            "imgs/big.jpg",
            "imgs",
        ],
    );
    let limits = Limits {
        memory: 3 << 30,
        deadline: Duration::from_secs(60),
        ..LIMITS
    };
    // A check that the error ledger's reason for a row holds every one of some words.
    let reason_checker = |out: &Path| {
        let errors = error_rows(&out.join("errors.parquet"));
        move |id: &str, words: &[&str]| {
            let reason = errors
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, r)| r.as_str())
                .unwrap_or_else(|| panic!("{id} not in errors.parquet: {errors:?}"));
            assert!(words.iter().all(|w| reason.contains(w)), "{id}: {reason}");
        }
    };
    // As the probe ran it: /dev/zero grew one run to 23.6 GB; the FIFO blocked forever.
    let s = parquet_study(tmp.path(), &ds.join("train.parquet"), "");
    let out = tmp.path().join("run");
    let o = run(&s, &out, limits, "run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(embedded_ids(&out, "m"), ["r0", "r3"]);
    let expect_reason = reason_checker(&out);
    expect_reason("r1", &["outside the dataset folder"]);
    expect_reason("r2", &["not a regular file"]);
    expect_reason("r4", &["not a regular file"]);

    // Confinement lifted, so only the file checks stand between /dev/zero and memory; and a
    // size cap.
    let s = parquet_study(
        tmp.path(),
        &ds.join("train.parquet"),
        "  allow_paths_outside: true\n  max_file_bytes: 4000\n",
    );
    let out = tmp.path().join("run-capped");
    let o = run(&s, &out, limits, "run capped");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(embedded_ids(&out, "m"), ["r0"]);
    let expect_reason = reason_checker(&out);
    expect_reason("r1", &["not a regular file"]);
    expect_reason("r2", &["not a regular file"]);
    expect_reason("r3", &["dataset.max_file_bytes", "4000"]);
    expect_reason("r4", &["not a regular file"]);
    assert_eq!(error_rows(&out.join("errors.parquet")).len(), 4);

    let s = parquet_study(
        tmp.path(),
        &ds.join("train.parquet"),
        "  max_file_bytes: 0\n",
    );
    let o = must_finish(&["validate", s.to_str().unwrap()], LIMITS, "validate");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("dataset.max_file_bytes"),
        "{}",
        stderr(&o)
    );
}

// ---- 5. a report that cannot be written --------------------------------------------------

fn largest_file(dir: &Path, skip: &str) -> u64 {
    files_under(dir)
        .iter()
        .filter(|(n, _)| !n.ends_with(skip))
        .map(|(_, b)| b.len() as u64)
        .max()
        .unwrap_or(0)
}

#[test]
fn a_report_that_cannot_be_written_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = image_folder(tmp.path());
    let s = folder_study(tmp.path(), &data, "folder", "");
    let text = std::fs::read_to_string(&s).unwrap()
        + "texts:\n  prompts:\n    templates: ['a photo of a {}.']\nanalysis:\n  zero_shot:\n  retrieval:\n    k: [1]\n";
    std::fs::write(&s, text).unwrap();

    // A first run measures the sizes: the report is the largest file written.
    let full = tmp.path().join("full");
    let o = run(&s, &full, LIMITS, "full run");
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::metadata(full.join("report.html")).unwrap().len();
    let others = largest_file(&full, "report.html");
    assert!(others < report, "{others} < {report}");

    // The same run where only the report does not fit: the disk is full for it alone.
    let limits = Limits {
        file_size: Some((others + report) / 2),
        ..LIMITS
    };
    let out = tmp.path().join("cut");
    let o = run(&s, &out, limits, "run with a full disk");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("report.html"), "{e}");
    assert!(!out.join("report.html").exists());
    let leftovers: Vec<String> = files_under(&out)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // `clipflow analyze` too: the report it was asked for is not written, so it fails. Its
    // report has no thumbnails (no dataset at hand), so its size is measured on its own.
    let analyze = |out: &Path, limits: Limits| {
        must_finish(
            &[
                "analyze",
                full.to_str().unwrap(),
                "--config",
                s.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            limits,
            "analyze",
        )
    };
    let analyzed = tmp.path().join("analyzed-full");
    let o = analyze(&analyzed, LIMITS);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::metadata(analyzed.join("report.html"))
        .unwrap()
        .len();
    let others = largest_file(&analyzed, "report.html");
    assert!(others < report, "{others} < {report}");
    let analyzed = tmp.path().join("analyzed");
    let o = analyze(
        &analyzed,
        Limits {
            file_size: Some((others + report) / 2),
            ..LIMITS
        },
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("report.html"), "{}", stderr(&o));
    assert!(!analyzed.join("report.html").exists());
    let leftovers: Vec<String> = files_under(&analyzed)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// ---- 6. a name is a name -----------------------------------------------------------------

#[test]
fn a_run_name_is_a_name() {
    let tmp = tempfile::tempdir().unwrap();
    let data = image_folder(tmp.path());
    for (line, key, bad) in [
        (1, "name", "../../escaped"),
        (1, "name", "/abs/path"),
        (1, "name", "a/b"),
        (1, "name", ".."),
        (1, "name", "'a\\b'"),
        (8, "models.0.name", "../../m"),
    ] {
        let yaml = format!(
            "name: {}\ndataset:\n  format: folder\n  path: {}\nmodels:\n  - path: {}\n    name: {}\n",
            if key == "name" { bad } else { "ok" },
            data.display(),
            fixture("models/optimum").display(),
            if key == "name" { "m" } else { bad },
        );
        let yaml = if key == "name" {
            yaml
        } else {
            // Put the model name on its own line 8 to check the reported line.
            yaml.replace("  - path:", "  - batch_size: 2\n    path:")
        };
        let s = study(tmp.path(), &yaml);
        let o = must_finish(&["validate", s.to_str().unwrap()], LIMITS, "validate");
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(&format!("study.yaml:{line}:")) && e.contains(key),
            "{bad}: {e}"
        );
    }
    // `--set name=...` is refused the same way.
    let s = study(
        tmp.path(),
        &format!(
            "name: ok\ndataset:\n  format: folder\n  path: {}\nmodels:\n  - path: {}\n",
            data.display(),
            fixture("models/optimum").display()
        ),
    );
    let o = must_finish(
        &[
            "validate",
            s.to_str().unwrap(),
            "--set",
            "name=../../escaped",
        ],
        LIMITS,
        "validate",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--set name"), "{}", stderr(&o));
}
