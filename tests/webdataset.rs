//! WebDataset input end to end: the same images give the same embeddings as a folder, bit for
//! bit; samples are the ones the webdataset library yields; CLIP_benchmark's layout needs no
//! YAML; damage becomes error rows; shards split across workers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, StringArray};
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// One embedding row: the text columns by name, and the vector's bits.
#[derive(Debug, Clone)]
struct Row {
    cols: BTreeMap<String, Option<String>>,
    bits: Vec<u32>,
}

impl Row {
    fn get(&self, c: &str) -> Option<&str> {
        self.cols.get(c).and_then(|v| v.as_deref())
    }
}

/// Every row of every part under `dir` (a run's `embeddings/` or a model/modality folder).
fn rows(dir: &Path) -> Vec<Row> {
    let mut out = Vec::new();
    for (name, _) in files_under(dir) {
        if !name.ends_with(".parquet") || name.contains(".tmp-") {
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(dir.join(&name)).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let emb = batch
                .column_by_name("embedding")
                .unwrap()
                .as_fixed_size_list();
            let texts: Vec<(String, StringArray)> = batch
                .schema()
                .fields()
                .iter()
                .filter(|f| *f.data_type() == arrow_schema::DataType::Utf8)
                .map(|f| {
                    let a = batch.column_by_name(f.name()).unwrap().as_string::<i32>();
                    (f.name().clone(), a.clone())
                })
                .collect();
            for i in 0..batch.num_rows() {
                let v = emb.value(i);
                let v = v.as_primitive::<Float32Type>();
                out.push(Row {
                    cols: texts
                        .iter()
                        .map(|(n, a)| (n.clone(), (!a.is_null(i)).then(|| a.value(i).to_string())))
                        .collect(),
                    bits: v.values().iter().map(|x| x.to_bits()).collect(),
                });
            }
        }
    }
    out
}

/// `errors.parquet` as (id, stage, source, reason).
fn errors(run: &Path) -> Vec<(String, String, String, String)> {
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(File::open(run.join("errors.parquet")).unwrap())
            .unwrap()
            .build()
            .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = |n: &str| batch.column_by_name(n).unwrap().as_string::<i32>().clone();
        let (id, stage, source, reason) = (col("id"), col("stage"), col("source"), col("reason"));
        for i in 0..batch.num_rows() {
            out.push((
                id.value(i).to_string(),
                stage.value(i).to_string(),
                source.value(i).to_string(),
                reason.value(i).to_string(),
            ));
        }
    }
    out
}

/// A ustar archive of `(name, data)` regular files (names up to 100 bytes).
fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn image(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("images/{name}"))).unwrap()
}

fn study_yaml(dataset: &str, extra: &str) -> String {
    format!(
        "name: w\nseed: 5\ndataset:\n{dataset}\nnoise:\n  - kind: gaussian\n    sigma: [0.1]\nmodels:\n  - path: {}\n    name: xen\nruntime:\n  part_size: 4\n  batch_size: 3\n{extra}",
        fixture("models/xenova").display()
    )
}

#[test]
fn shards_give_the_folder_embeddings_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = image_folder(tmp.path());
    // The same good images in two shards: one plain, one gzip; `cls` is the folder's class.
    let shards = tmp.path().join("shards");
    std::fs::create_dir_all(&shards).unwrap();
    let mut members: Vec<Vec<(String, Vec<u8>)>> = vec![Vec::new(), Vec::new()];
    for (i, name) in GOOD.iter().enumerate() {
        let class = if i % 2 == 0 { "a" } else { "b" };
        let (stem, ext) = name.rsplit_once('.').unwrap();
        let key = format!("{class}_{stem}");
        let shard = &mut members[i % 2];
        shard.push((format!("{key}.{ext}"), image(name)));
        shard.push((
            format!("{key}.cls"),
            if class == "a" {
                b"0".to_vec()
            } else {
                b"1".to_vec()
            },
        ));
        shard.push((
            format!("{key}.txt"),
            format!("a picture of {stem}").into_bytes(),
        ));
    }
    let as_refs = |m: &Vec<(String, Vec<u8>)>| -> Vec<u8> {
        let refs: Vec<(&str, &[u8])> = m.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        tar(&refs)
    };
    std::fs::write(shards.join("part-0.tar"), as_refs(&members[0])).unwrap();
    std::fs::write(shards.join("part-1.tar.gz"), gzip(&as_refs(&members[1]))).unwrap();
    std::fs::write(shards.join("classnames.txt"), "a\nb\n").unwrap();

    let prompts = "texts:\n  prompts:\n    templates: ['a photo of a {}.']\n";
    let s1 = tmp.path().join("folder.yaml");
    std::fs::write(
        &s1,
        study_yaml(
            &format!("  format: folder\n  path: {}", folder.display()),
            prompts,
        ),
    )
    .unwrap();
    let s2 = tmp.path().join("wds.yaml");
    std::fs::write(
        &s2,
        study_yaml(
            &format!(
                "  format: webdataset\n  path: ['{0}/part-0.tar', '{0}/part-{{1..1}}.tar.gz']",
                shards.display()
            ),
            prompts,
        ),
    )
    .unwrap();
    let (r1, r2) = (tmp.path().join("r1"), tmp.path().join("r2"));
    let o = clipflow_run(&s1, &r1, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = clipflow_run(&s2, &r2, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 shards"), "{}", stderr(&o));

    let key_of_folder_id = |id: &str| {
        let (class, file) = id.split_once('/').unwrap();
        format!("{class}_{}", file.rsplit_once('.').unwrap().0)
    };
    let images = |run: &Path| -> BTreeMap<(String, String), Row> {
        rows(&run.join("embeddings/xen/image"))
            .into_iter()
            .map(|r| {
                (
                    (
                        r.get("id").unwrap().to_string(),
                        r.get("variant").unwrap().to_string(),
                    ),
                    r,
                )
            })
            .collect()
    };
    let folder_rows = images(&r1);
    let wds_rows = images(&r2);
    let clean: Vec<_> = folder_rows.keys().filter(|(_, v)| v == "clean").collect();
    assert_eq!(clean.len(), GOOD.len());
    for (id, variant) in folder_rows.keys() {
        let key = key_of_folder_id(id);
        let w = &wds_rows[&(key.clone(), variant.clone())];
        let f = &folder_rows[&(id.clone(), variant.clone())];
        if variant == "clean" {
            assert_eq!(w.bits, f.bits, "{id} vs {key}: clean embeddings differ");
        }
        assert_eq!(w.get("label"), f.get("label"), "{key}");
        assert_eq!(w.get("item_id"), Some(key.as_str()));
    }
    assert_eq!(wds_rows.len(), folder_rows.len());
    // Captions became text rows, one per sample, named by the key.
    let texts = rows(&r2.join("embeddings/xen/text"));
    let captions: BTreeSet<_> = texts
        .iter()
        .filter(|r| r.get("item_id").is_some())
        .map(|r| {
            (
                r.get("id").unwrap().to_string(),
                r.get("text").unwrap().to_string(),
            )
        })
        .collect();
    assert!(captions.contains(&("a_landscape".into(), "a picture of landscape".into())));
    assert_eq!(captions.len(), GOOD.len());
    // Prompts are the same texts in both runs, so the same vectors.
    let prompt_bits = |run: &Path| -> BTreeMap<String, Vec<u32>> {
        rows(&run.join("embeddings/xen/text"))
            .into_iter()
            .filter(|r| r.get("id").unwrap().starts_with("prompt:"))
            .map(|r| (r.get("id").unwrap().to_string(), r.bits))
            .collect()
    };
    assert_eq!(prompt_bits(&r1), prompt_bits(&r2));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r2.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["dataset"]["shards"], 2);
    assert!(manifest["dataset"]["items"].is_null());
}

#[test]
fn samples_are_the_ones_the_webdataset_library_yields() {
    let python = std::env::var("CLIPFLOW_PYTHON")
        .unwrap_or_else(|_| root().join(".venv/bin/python").display().to_string());
    let tmp = tempfile::tempdir().unwrap();
    let script = root().join("scripts/check_webdataset.py");
    let mut write = std::process::Command::new(&python);
    write.arg(&script).arg("write").arg(tmp.path());
    for name in GOOD {
        write.arg(fixture(&format!("images/{name}")));
    }
    let o = write
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}); run scripts/setup first"));
    assert!(o.status.success(), "{}", stderr(&o));
    let shards = [tmp.path().join("gnu.tar"), tmp.path().join("pax.tar")];
    let o = std::process::Command::new(&python)
        .arg(&script)
        .arg("list")
        .args(&shards)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let reference: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(reference.len() >= 10);

    let s = tmp.path().join("s.yaml");
    std::fs::write(
        &s,
        study_yaml(
            &format!(
                "  format: webdataset\n  path: {}/{{gnu,pax}}.tar",
                tmp.path().display()
            ),
            "",
        ),
    )
    .unwrap();
    let out = tmp.path().join("run");
    let o = clipflow_run(&s, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let all = rows(&out.join("embeddings"));
    let image_ids: BTreeSet<String> = all
        .iter()
        .filter(|r| r.get("modality") == Some("image") && r.get("variant") == Some("clean"))
        .map(|r| r.get("id").unwrap().to_string())
        .collect();
    let errs = errors(&out);
    for sample in &reference {
        let key = sample["key"].as_str().unwrap();
        if sample["image"].is_null() {
            // webdataset yields it; clipflow has no image to embed and says so.
            assert!(!image_ids.contains(key), "{key}");
            assert!(
                errs.iter()
                    .any(|(id, _, _, reason)| id == key && reason.contains("no image")),
                "{key}: {errs:?}"
            );
            continue;
        }
        assert!(image_ids.contains(key), "{key} missing from {image_ids:?}");
        let row = all
            .iter()
            .find(|r| r.get("id") == Some(key) && r.get("modality") == Some("image"))
            .unwrap();
        assert_eq!(row.get("text"), sample["caption"].as_str(), "{key}");
        let label = sample["label"].as_i64().map(|l| l.to_string());
        assert_eq!(row.get("label"), label.as_deref(), "{key}");
        if let Some(caption) = sample["caption"].as_str() {
            assert!(all.iter().any(|r| r.get("modality") == Some("text")
                && r.get("id") == Some(key)
                && r.get("item_id") == Some(key)
                && r.get("text") == Some(caption)));
        }
    }
    let with_image = reference.iter().filter(|s| !s["image"].is_null()).count();
    assert_eq!(image_ids.len(), with_image);
}

/// CLIP_benchmark's `<root>/<split>/{0..n-1}.tar` with `nshards.txt`, and its text files at
/// the root.
fn clip_benchmark_layout(dir: &Path) -> PathBuf {
    let root = dir.join("wds_textures");
    let test = root.join("test");
    std::fs::create_dir_all(&test).unwrap();
    for (shard, names) in [&GOOD[..3], &GOOD[3..]].iter().enumerate() {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for (k, name) in names.iter().enumerate() {
            let key = format!("s{:07}", shard * 3 + k);
            let ext = name.rsplit_once('.').unwrap().1;
            files.push((format!("{key}.{ext}"), image(name)));
            files.push((
                format!("{key}.cls"),
                format!("{}", (shard * 3 + k) % 3).into_bytes(),
            ));
        }
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        std::fs::write(test.join(format!("{shard}.tar")), tar(&refs)).unwrap();
    }
    std::fs::write(test.join("nshards.txt"), "2\n").unwrap();
    std::fs::write(
        root.join("classnames.txt"),
        "banded\npolka dotted\nt-shirt\n",
    )
    .unwrap();
    std::fs::write(
        root.join("zeroshot_classification_templates.txt"),
        "a photo of a {c}.\na {c} texture.\n",
    )
    .unwrap();
    root
}

#[test]
fn clip_benchmark_layout_gives_classes_and_prompts_without_yaml() {
    let tmp = tempfile::tempdir().unwrap();
    let root = clip_benchmark_layout(tmp.path());
    let s = tmp.path().join("s.yaml");
    std::fs::write(
        &s,
        study_yaml(
            &format!(
                "  format: webdataset\n  path: {}\n  split: test",
                root.display()
            ),
            "analysis:\n  zero_shot: {}\n",
        ),
    )
    .unwrap();
    let v = clipflow(&["validate", s.to_str().unwrap()]);
    assert!(v.status.success(), "{}", stderr(&v));
    assert!(stdout(&v).contains("2 shards"), "{}", stdout(&v));
    assert!(stdout(&v).contains("6 prompts"), "{}", stdout(&v));
    let out = tmp.path().join("run");
    let o = clipflow_run(&s, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let all = rows(&out.join("embeddings"));
    let prompts: BTreeSet<(String, String)> = all
        .iter()
        .filter(|r| r.get("id").is_some_and(|i| i.starts_with("prompt:")))
        .map(|r| {
            (
                r.get("id").unwrap().to_string(),
                r.get("text").unwrap().to_string(),
            )
        })
        .collect();
    assert!(prompts.contains(&("prompt:t-shirt:1".into(), "a t-shirt texture.".into())));
    assert_eq!(prompts.len(), 6);
    assert!(all
        .iter()
        .all(|r| r.get("id").unwrap().starts_with("prompt:") || r.get("item_id").is_some()));
    let labels: BTreeSet<&str> = all.iter().filter_map(|r| r.get("label")).collect();
    assert_eq!(
        labels,
        BTreeSet::from(["banded", "polka dotted", "t-shirt"])
    );
    assert!(out.join("tables/zero_shot.parquet").exists());
}

#[test]
fn damage_in_a_shard_becomes_error_rows_and_the_rest_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let jpg = image("landscape.jpg");
    let mut bytes = tar(&[
        ("ok1.jpg", &jpg),
        ("ok1.cls", b"1"),
        ("badjpeg.jpg", b"this is not a JPEG"),
        ("badcls.png", &image("square.png")),
        ("badcls.cls", b"one"),
        ("hdr.txt", b"its header will be damaged"),
        ("hdr.jpg", &image("tiny.jpg")),
        ("ok2.png", &image("gray.png")),
        ("cut.jpg", &jpg),
    ]);
    // Damage the header of hdr.txt: find it by name.
    let at = bytes.windows(7).position(|w| w == b"hdr.txt").unwrap();
    bytes[at + 2] = b'X';
    // Truncate the last member (cut.jpg) halfway through its data.
    let cut_at = bytes.windows(7).position(|w| w == b"cut.jpg").unwrap();
    bytes.truncate(cut_at + 512 + jpg.len() / 2);
    let shards = tmp.path().join("s");
    std::fs::create_dir_all(&shards).unwrap();
    std::fs::write(shards.join("00000.tar"), &bytes).unwrap();
    std::fs::write(shards.join("00001.tar"), tar(&[("next.jpg", &jpg)])).unwrap();

    let s = tmp.path().join("s.yaml");
    std::fs::write(
        &s,
        study_yaml(
            &format!(
                "  format: webdataset\n  path: {}/{{00000..00001}}.tar",
                shards.display()
            ),
            "",
        ),
    )
    .unwrap();
    let out = tmp.path().join("run");
    let o = clipflow_run(&s, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ids: BTreeSet<String> = rows(&out.join("embeddings/xen/image"))
        .iter()
        .filter(|r| r.get("variant") == Some("clean"))
        .map(|r| r.get("id").unwrap().to_string())
        .collect();
    // hdr.jpg is still a sample: the damaged header was skipped, the member after it read.
    assert_eq!(
        ids,
        BTreeSet::from(["ok1", "hdr", "ok2", "next"].map(String::from))
    );
    let errs = errors(&out);
    let find = |id: &str| {
        errs.iter()
            .find(|e| e.0 == id)
            .unwrap_or_else(|| panic!("no error row for {id}: {errs:#?}"))
    };
    assert_eq!(find("badjpeg").1, "decode");
    assert!(find("badcls").3.contains("not an integer"), "{errs:#?}");
    assert!(find("cut").3.contains("truncated"), "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.3.contains("checksum") && e.2.contains("00000.tar#offset=")),
        "{errs:#?}"
    );
    // A listing problem is recorded once, not once per modality or model.
    assert_eq!(errs.iter().filter(|e| e.0 == "cut").count(), 1);
}

#[test]
fn shard_workers_list_only_their_shards_and_together_make_the_whole_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = clip_benchmark_layout(tmp.path());
    let s = tmp.path().join("s.yaml");
    std::fs::write(
        &s,
        study_yaml(
            &format!("  format: webdataset\n  path: {}/test", root.display()),
            "",
        ),
    )
    .unwrap();
    let whole = tmp.path().join("whole");
    let o = clipflow_run(&s, &whole, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Parts in order: images of shards 0, 1; captions of shards 0, 1; prompts. Worker 0/2
    // takes parts 0, 2, 4: shard 0 only. Shard 1 is garbage (same size) while it runs: had
    // worker 0 read it, the damage would be error rows.
    let split = tmp.path().join("split");
    let shard1 = root.join("test/1.tar");
    let good = std::fs::read(&shard1).unwrap();
    std::fs::write(&shard1, vec![0x41u8; good.len()]).unwrap();
    let o = clipflow_run(&s, &split, &["--shard", "0/2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!split.join("manifest.json").exists());
    std::fs::write(&shard1, &good).unwrap();
    let o = clipflow_run(&s, &split, &["--shard", "1/2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(split.join("manifest.json").exists());
    let bits = |run: &Path| -> BTreeMap<String, Vec<u32>> {
        rows(&run.join("embeddings"))
            .into_iter()
            .map(|r| {
                (
                    format!(
                        "{}/{}/{}",
                        r.get("modality").unwrap(),
                        r.get("id").unwrap(),
                        r.get("variant").unwrap()
                    ),
                    r.bits,
                )
            })
            .collect()
    };
    let (a, b) = (bits(&whole), bits(&split));
    // 6 images x 2 variants, and the 6 prompts of the layout's templates.
    assert_eq!(a.len(), 18, "{:?}", a.keys());
    assert_eq!(a, b);
    assert!(errors(&split).is_empty(), "{:?}", errors(&split));
}

#[test]
fn webdataset_config_errors_name_the_key_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let root = clip_benchmark_layout(tmp.path());
    let check = |dataset: &str| {
        let s = tmp.path().join("v.yaml");
        std::fs::write(&s, study_yaml(dataset, "")).unwrap();
        let o = clipflow(&["validate", s.to_str().unwrap()]);
        (o.status.code(), stderr(&o), stdout(&o))
    };
    let test = root.join("test");
    for (dataset, want) in [
        (
            format!(
                "  format: webdataset\n  path: {}/{{0..2}}.tar",
                test.display()
            ),
            "2.tar does not exist".to_string(),
        ),
        (
            format!(
                "  format: webdataset\n  path: {}\n  sample: {{limit: 3}}",
                test.display()
            ),
            "dataset.sample: does not apply to format: webdataset".into(),
        ),
        (
            format!(
                "  format: webdataset\n  path: '{}/{{0..1.tar'",
                test.display()
            ),
            "dataset.path: unbalanced braces".into(),
        ),
        (
            format!(
                "  format: webdataset\n  path: {}\n  webdataset: {{caption: 'json:'}}",
                test.display()
            ),
            "dataset.webdataset.caption".into(),
        ),
        (
            format!(
                "  format: webdataset\n  path: {}\n  caption_column: txt",
                test.display()
            ),
            "dataset.caption_column: only applies to format: parquet".into(),
        ),
        (
            format!(
                "  format: folder\n  path: {}\n  webdataset: {{}}",
                test.display()
            ),
            "dataset.webdataset: only applies to format: webdataset".into(),
        ),
        (
            format!(
                "  format: webdataset\n  path: ['{0}/0.tar', '{0}/*.tar']",
                test.display()
            ),
            "is named twice".into(),
        ),
    ] {
        let (code, err, _) = check(&dataset);
        assert_eq!(code, Some(2), "{dataset}: {err}");
        assert!(err.contains(&want), "{dataset}: wanted {want:?} in {err}");
    }
    // A duplicate class name in classnames.txt names the file and line.
    std::fs::write(root.join("classnames.txt"), "a\nb\na\n").unwrap();
    let (code, err, _) = check(&format!("  format: webdataset\n  path: {}", test.display()));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("classnames.txt: row 3") && err.contains("named twice"),
        "{err}"
    );
}
