//! Batches through the model with decoding overlapping inference.
//!
//! A producer thread fetches bytes (I/O) and has a rayon pool decode, resize, crop, perturb and
//! normalise each item; finished batches wait in a bounded channel (`queue_depth`), so memory
//! stays at a few batches whatever the dataset size, and the model never waits on a decode
//! unless decoding is truly the bottleneck. Order is kept: rows come out in item order, then
//! variant order, however the threads were scheduled.
//!
//! Decoding always overlaps inference. When a CPU model keeps every core busy (ViT-B/32 on 2
//! cores), a decoder beside it takes time slices from ONNX Runtime's threads, which split each
//! matrix product evenly, so one preempted thread idles the other until the operation ends;
//! decoding strictly between batches instead was measured (README, "Benchmarks and
//! fidelity") and gave no lasting gain there on an Intel Xeon, was 1.8–2.6% slower per row on
//! a Zen 3 AMD EPYC, and cost 10% with the small texture-clip, where the model leaves room
//! beside it. What pays on such machines is less decode CPU per image.

use std::sync::mpsc::sync_channel;

use rayon::prelude::*;

use super::{EncodeError, Encoder};
use crate::augment::{self, Variant};
use crate::dataset::{Dataset, Item};

/// The pool that decodes and preprocesses images: `threads` workers (0 = one per core) at a
/// lower scheduling priority, so on a machine with few cores the model never waits for a core
/// while a worker prepares a batch it does not need yet.
pub fn decode_pool(threads: usize) -> Result<rayon::ThreadPool, String> {
    let threads = if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("clipflow-decode-{i}"))
        .start_handler(|_| lower_thread_priority())
        .build()
        .map_err(|e| format!("cannot start decode threads: {e}"))
}

fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread's own id has no memory-safety preconditions.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, 5);
    }
}

/// Which (item, variant) each embedding row belongs to, plus the vectors.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    /// (index into the job's items or texts, index into its variants) per row.
    pub rows: Vec<(usize, usize)>,
    /// Row-major `rows.len() × dim`, L2-normalised.
    pub embeddings: Vec<f32>,
    pub dim: usize,
}

/// An item (or one variant of it) that could not be embedded, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFailure {
    pub index: usize,
    pub variant: Option<usize>,
    pub stage: &'static str,
    pub reason: String,
}

/// One chunk of images to embed.
pub struct ImageJob<'a> {
    pub dataset: &'a Dataset,
    pub items: &'a [Item],
    pub variants: &'a [Variant],
    pub seed: u64,
    pub max_pixels: u64,
    /// Exact (Pillow's pixels) or fast (JPEG DCT-domain downscale first).
    pub mode: super::preprocess::Mode,
    /// Tensors per inference call (items × variants).
    pub batch_size: usize,
    pub queue_depth: usize,
    pub pool: &'a rayon::ThreadPool,
}

/// What became of one item: `Err` when it failed as a whole (read, decode), otherwise the
/// variants that failed (their tensor slots hold nothing usable).
type ItemOutcome = Result<Vec<RowFailure>, RowFailure>;

struct Prepared {
    rows: Vec<(usize, usize)>,
    pixels: Vec<f32>,
    failures: Vec<RowFailure>,
    items_done: usize,
}

/// Embeds every (item, variant) of `job`, handing each batch to `sink` in order, and returns
/// the rows that failed. `advance` is told how many items each batch finished.
///
/// The decode workers write each tensor straight into its slot of the batch buffer, and the
/// buffers go back to the producer once the model has read them: a tensor is written once and
/// never copied, and no batch buffer is allocated (nor its pages faulted in) after the first
/// few. On a machine where the model and the decoders share the cores, every byte moved here is
/// taken from the model.
pub fn encode_images<E: From<EncodeError>>(
    encoder: &mut Encoder,
    job: &ImageJob<'_>,
    sink: &mut dyn FnMut(EncodedBatch) -> Result<(), E>,
    advance: &dyn Fn(u64),
) -> Result<Vec<RowFailure>, E> {
    let variants = job.variants.len().max(1);
    let items_per_batch = (job.batch_size / variants).max(1);
    let (h, w) = encoder.input_size;
    let plane = 3 * h * w;
    let preprocess = encoder
        .preprocess
        .clone()
        .ok_or_else(|| E::from(no_tower(encoder, "image")))?;
    let depth = job.queue_depth.max(1);
    let (tx, rx) = sync_channel::<Prepared>(depth);
    // Buffers in flight: `depth` queued, one being embedded, one being filled.
    let (free_tx, free_rx) = sync_channel::<Vec<f32>>(depth + 2);
    let mut failures = Vec::new();

    std::thread::scope(|scope| -> Result<(), E> {
        let producer = scope.spawn(move || {
            for (chunk_no, chunk) in job.items.chunks(items_per_batch).enumerate() {
                let first = chunk_no * items_per_batch;
                let bytes = job.dataset.fetch(chunk);
                let mut pixels = free_rx.try_recv().unwrap_or_default();
                // A recycled buffer keeps its length, so only a first (or larger) batch pays
                // for zeroing.
                pixels.resize(chunk.len() * variants * plane, 0.0);
                let outcomes: Vec<ItemOutcome> = job.pool.install(|| {
                    pixels
                        .par_chunks_mut(variants * plane)
                        .zip(chunk.par_iter().zip(bytes))
                        .enumerate()
                        .map(|(k, (slot, (item, bytes)))| {
                            // A decoder that panics on hostile bytes fails that item, not
                            // the rest of the part.
                            let index = first + k;
                            crate::util::catch_panic(|| {
                                prepare_item(item, bytes, index, job, &preprocess, slot)
                            })
                            .unwrap_or_else(|panic| {
                                Err(RowFailure {
                                    index,
                                    variant: None,
                                    stage: "decode",
                                    reason: format!(
                                        "the image code failed on this file (internal error: {panic})"
                                    ),
                                })
                            })
                        })
                        .collect()
                });
                let batch = gather(outcomes, pixels, first, job.variants.len(), variants, plane);
                if tx.send(batch).is_err() {
                    return; // the consumer stopped (an inference error)
                }
            }
        });

        let mut result = Ok(());
        for batch in rx.iter() {
            failures.extend(batch.failures);
            if !batch.rows.is_empty() {
                let n = batch.rows.len();
                let embeddings = match encoder.embed_pixels(&batch.pixels[..n * plane], n) {
                    Ok(e) => e,
                    Err(e) => {
                        result = Err(E::from(e));
                        break;
                    }
                };
                if let Err(e) = sink(EncodedBatch {
                    rows: batch.rows,
                    embeddings,
                    dim: encoder.dim,
                }) {
                    result = Err(e);
                    break;
                }
            }
            // The producer may have finished; then the buffer is simply freed.
            let _ = free_tx.try_send(batch.pixels);
            advance(batch.items_done as u64);
        }
        drop(rx);
        // Items the producer never handed over would otherwise vanish without a trace.
        if producer.join().is_err() && result.is_ok() {
            result = Err(E::from(EncodeError::Runtime(
                "image preparation stopped unexpectedly; the part was not written".into(),
            )));
        }
        result
    })?;
    Ok(failures)
}

/// Turns a chunk's outcomes into a batch: the rows in (item, variant) order, and the tensors
/// of the rows that failed squeezed out of `pixels` (slots of `slots_per_item` tensors per
/// item, of which the first `used` are the job's variants).
fn gather(
    outcomes: Vec<ItemOutcome>,
    mut pixels: Vec<f32>,
    first: usize,
    used: usize,
    slots_per_item: usize,
    plane: usize,
) -> Prepared {
    let mut batch = Prepared {
        rows: Vec::with_capacity(outcomes.len() * used),
        pixels: Vec::new(),
        failures: Vec::new(),
        items_done: outcomes.len(),
    };
    for (k, outcome) in outcomes.into_iter().enumerate() {
        let failed_variants = match outcome {
            Ok(variant_failures) => variant_failures,
            Err(f) => {
                batch.failures.push(f);
                continue;
            }
        };
        for v in 0..used {
            if failed_variants.iter().any(|f| f.variant == Some(v)) {
                continue; // recorded below
            }
            let from = (k * slots_per_item + v) * plane;
            let to = batch.rows.len() * plane;
            if from != to {
                pixels.copy_within(from..from + plane, to);
            }
            batch.rows.push((first + k, v));
        }
        batch.failures.extend(failed_variants);
    }
    batch.pixels = pixels;
    batch
}

/// Decodes one item and writes the tensor of each variant into its `plane`-sized part of
/// `slot`. A variant whose noise fails is returned as a failure (the other variants go on); a
/// decode failure fails the whole item.
fn prepare_item(
    item: &Item,
    bytes: Result<Vec<u8>, String>,
    index: usize,
    job: &ImageJob<'_>,
    preprocess: &super::Preprocess,
    slot: &mut [f32],
) -> ItemOutcome {
    let fail = |stage: &'static str, reason: String| RowFailure {
        index,
        variant: None,
        stage,
        reason,
    };
    let bytes = bytes.map_err(|r| fail("read", r))?;
    let image = preprocess
        .decode(&bytes, job.max_pixels, job.mode)
        .map_err(|f| fail(f.stage, f.reason))?;
    drop(bytes);
    let plane = slot.len() / job.variants.len().max(1);
    let (width, height) = preprocess
        .crop_size(&image)
        .map_err(|f| fail(f.stage, f.reason))?;
    if width * height * 3 != plane {
        return Err(fail(
            "preprocess",
            format!(
                "preprocessed to {width}x{height} but the model takes {plane} values per image"
            ),
        ));
    }
    if job.variants.iter().all(|v| v.noise.is_none()) {
        // The clean tensor, straight from the resize; each further variant is a copy.
        if !job.variants.is_empty() {
            let (first, rest) = slot[..plane * job.variants.len()].split_at_mut(plane);
            preprocess
                .resize_crop_normalize_into(&image, first)
                .map_err(|f| fail(f.stage, f.reason))?;
            for tensor in rest.chunks_mut(plane.max(1)) {
                tensor.copy_from_slice(first);
            }
        }
        return Ok(Vec::new());
    }
    let crop = preprocess
        .resize_crop(&image)
        .map_err(|f| fail(f.stage, f.reason))?;
    drop(image);
    // Float pixels for the variants that perturb them.
    let base = preprocess.pixels_of(&crop);
    let mut variant_failures = Vec::new();
    for ((v, variant), tensor) in job
        .variants
        .iter()
        .enumerate()
        .zip(slot.chunks_mut(plane.max(1)))
    {
        match &variant.noise {
            None => preprocess.normalize_rgbx_into(&crop, tensor),
            Some(noise) => {
                let mut rng = augment::rng_for(job.seed, &item.id, variant);
                let mut pixels = base.clone();
                if let Err(reason) = noise.apply_pixels(&mut pixels, &mut rng) {
                    variant_failures.push(RowFailure {
                        index,
                        variant: Some(v),
                        stage: "augment",
                        reason,
                    });
                    continue;
                }
                preprocess.normalize_into(&pixels, tensor);
                noise.apply_normalized(tensor, &mut rng);
            }
        }
    }
    Ok(variant_failures)
}

/// One text to embed.
#[derive(Debug, Clone)]
pub struct TextInput {
    pub text: String,
}

/// Embeds `texts` in batches of `batch_size`, handing each batch to `sink`; returns the texts
/// that failed (tokenizer errors).
pub fn encode_texts<E: From<EncodeError>>(
    encoder: &mut Encoder,
    texts: &[TextInput],
    batch_size: usize,
    sink: &mut dyn FnMut(EncodedBatch) -> Result<(), E>,
    advance: &dyn Fn(u64),
) -> Result<Vec<RowFailure>, E> {
    let context = match &encoder.tokenizer {
        Some(t) => t.context_length,
        None => return Err(E::from(no_tower(encoder, "text"))),
    };
    let mut failures = Vec::new();
    for (chunk_no, chunk) in texts.chunks(batch_size.max(1)).enumerate() {
        let first = chunk_no * batch_size.max(1);
        let mut rows = Vec::with_capacity(chunk.len());
        let mut ids = Vec::with_capacity(chunk.len() * context);
        let mut mask = Vec::with_capacity(chunk.len() * context);
        for (k, t) in chunk.iter().enumerate() {
            let encoded = match &encoder.tokenizer {
                Some(tok) => tok.encode(&t.text),
                None => Err("no tokenizer".to_string()),
            };
            match encoded {
                Ok((i, m)) => {
                    rows.push((first + k, 0));
                    ids.extend(i);
                    mask.extend(m);
                }
                Err(reason) => failures.push(RowFailure {
                    index: first + k,
                    variant: None,
                    stage: "tokenize",
                    reason,
                }),
            }
        }
        if !rows.is_empty() {
            let n = rows.len();
            let embeddings = encoder.embed_tokens(&ids, &mask, n)?;
            sink(EncodedBatch {
                rows,
                embeddings,
                dim: encoder.dim,
            })?;
        }
        advance(chunk.len() as u64);
    }
    Ok(failures)
}

fn no_tower(encoder: &Encoder, tower: &str) -> EncodeError {
    EncodeError::Inference {
        model: encoder.files.name.clone(),
        message: format!("this model has no {tower} tower"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(index: usize, variant: Option<usize>) -> RowFailure {
        RowFailure {
            index,
            variant,
            stage: if variant.is_some() {
                "augment"
            } else {
                "decode"
            },
            reason: "test".into(),
        }
    }

    #[test]
    fn gather_squeezes_out_failed_items_and_variants_in_order() {
        // Three items of two variants, tensors of two values; each tensor's values say whose
        // they are (10 × item + variant). Item 0's variant 1 and the whole of item 1 failed.
        let plane = 2;
        let pixels: Vec<f32> = (0..3)
            .flat_map(|k| (0..2).flat_map(move |v| [(10 * k + v) as f32; 2]))
            .collect();
        let outcomes = vec![
            Ok(vec![failure(40, Some(1))]),
            Err(failure(41, None)),
            Ok(Vec::new()),
        ];
        let batch = gather(outcomes, pixels, 40, 2, 2, plane);
        assert_eq!(batch.rows, vec![(40, 0), (42, 0), (42, 1)]);
        assert_eq!(
            &batch.pixels[..3 * plane],
            &[0.0, 0.0, 20.0, 20.0, 21.0, 21.0]
        );
        assert_eq!(batch.items_done, 3);
        let failed: Vec<_> = batch
            .failures
            .iter()
            .map(|f| (f.index, f.variant))
            .collect();
        assert_eq!(failed, vec![(40, Some(1)), (41, None)]);
    }

    /// The embedded texture-clip over a folder of `n` small JPEGs, the one at `broken` not an
    /// image: enough for several batches of 8.
    fn fixture(n: usize, broken: usize) -> (tempfile::TempDir, Encoder, Dataset) {
        use crate::config::{DatasetConfig, DatasetFormat, ModelConfig};
        let dir = tempfile::tempdir().unwrap();
        let class = dir.path().join("tiles");
        std::fs::create_dir(&class).unwrap();
        for i in 0..n {
            let path = class.join(format!("{i:03}.jpg"));
            if i == broken {
                std::fs::write(&path, b"not an image").unwrap();
                continue;
            }
            let img = image::RgbImage::from_fn(40, 30, |x, y| {
                image::Rgb([(x * 6) as u8, (y * 8) as u8, (i * 5) as u8])
            });
            img.save(&path).unwrap();
        }
        let model = ModelConfig {
            name: Some("texture-clip".into()),
            path: concat!(env!("CARGO_MANIFEST_DIR"), "/models/texture-clip").into(),
            ..Default::default()
        };
        let files = super::super::locate(&model, 0).unwrap();
        let settings = super::super::SessionSettings {
            device: super::super::DeviceRequest::Cpu,
            intra_threads: 2,
        };
        let encoder = Encoder::load(&files, settings, true, &|_| {}).unwrap();
        let dataset = crate::dataset::open(
            &DatasetConfig::new(DatasetFormat::Folder, dir.path().display().to_string()),
            0,
        )
        .unwrap();
        (dir, encoder, dataset)
    }

    #[test]
    fn batches_come_out_in_order_and_a_failing_sink_stops_the_producer() {
        let (_dir, mut encoder, dataset) = fixture(45, 11);
        let items = dataset.read_part(0..usize::MAX).unwrap().items;
        let variants = augment::variants(&[]).unwrap();
        let pool = decode_pool(2).unwrap();
        let job = ImageJob {
            dataset: &dataset,
            items: &items,
            variants: &variants,
            seed: 0,
            max_pixels: crate::dataset::DEFAULT_MAX_PIXELS,
            mode: super::super::preprocess::Mode::Exact,
            batch_size: 8,
            queue_depth: 1,
            pool: &pool,
        };
        let run = |encoder: &mut Encoder| {
            let mut rows = Vec::new();
            let mut vectors = Vec::new();
            let failures = encode_images::<EncodeError>(
                encoder,
                &job,
                &mut |b| {
                    rows.extend(b.rows);
                    vectors.extend(b.embeddings);
                    Ok(())
                },
                &|_| {},
            )
            .unwrap();
            (rows, vectors, failures)
        };
        let (rows, vectors, failures) = run(&mut encoder);
        let expected: Vec<_> = (0..45).filter(|&i| i != 11).map(|i| (i, 0)).collect();
        assert_eq!(rows, expected);
        assert_eq!(failures.len(), 1);
        assert_eq!((failures[0].index, failures[0].stage), (11, "decode"));
        // The same bytes again.
        assert_eq!(run(&mut encoder).1, vectors);

        // A sink that fails on the third batch: the error comes back (the producer stops),
        // and nothing after it reached the sink.
        let mut batches = 0;
        let result = encode_images::<EncodeError>(
            &mut encoder,
            &job,
            &mut |_| {
                batches += 1;
                if batches == 3 {
                    Err(EncodeError::Runtime("disk full".into()))
                } else {
                    Ok(())
                }
            },
            &|_| {},
        );
        assert!(matches!(result, Err(EncodeError::Runtime(m)) if m == "disk full"));
        assert_eq!(batches, 3);
    }

    #[test]
    fn gather_uses_only_the_jobs_variants_of_each_slot() {
        // No variants in the job: one slot per item, no rows.
        let batch = gather(
            vec![Ok(Vec::new()), Ok(Vec::new())],
            vec![1.0; 4],
            0,
            0,
            1,
            2,
        );
        assert!(batch.rows.is_empty());
        assert!(batch.failures.is_empty());
        assert_eq!(batch.items_done, 2);
    }
}
