//! Batches through the model with decoding overlapping inference.
//!
//! A producer thread fetches bytes (I/O) and has a rayon pool decode, resize, crop, perturb and
//! normalise each item; finished batches wait in a bounded channel (`queue_depth`), so memory
//! stays at a few batches whatever the dataset size, and the model never waits on a decode
//! unless decoding is truly the bottleneck. Order is kept: rows come out in item order, then
//! variant order, however the threads were scheduled.

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

/// The tensor of each variant of one item (empty where that variant failed), and its failures.
type ItemTensors = (Vec<Vec<f32>>, Vec<RowFailure>);

struct Prepared {
    rows: Vec<(usize, usize)>,
    pixels: Vec<f32>,
    failures: Vec<RowFailure>,
    items_done: usize,
}

/// Embeds every (item, variant) of `job`, handing each batch to `sink` in order, and returns
/// the rows that failed. `advance` is told how many items each batch finished.
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
    let (tx, rx) = sync_channel::<Prepared>(job.queue_depth.max(1));
    let mut failures = Vec::new();

    std::thread::scope(|scope| -> Result<(), E> {
        let producer = scope.spawn(move || {
            for (chunk_no, chunk) in job.items.chunks(items_per_batch).enumerate() {
                let first = chunk_no * items_per_batch;
                let bytes = job.dataset.fetch(chunk);
                let prepared: Vec<Result<ItemTensors, RowFailure>> = job.pool.install(|| {
                    chunk
                        .par_iter()
                        .zip(bytes)
                        .enumerate()
                        .map(|(k, (item, bytes))| {
                            // A decoder that panics on hostile bytes fails that item, not
                            // the rest of the part.
                            let index = first + k;
                            crate::util::catch_panic(|| {
                                prepare_item(item, bytes, index, job, &preprocess, plane)
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
                let mut batch = Prepared {
                    rows: Vec::with_capacity(chunk.len() * variants),
                    pixels: Vec::with_capacity(chunk.len() * variants * plane),
                    failures: Vec::new(),
                    items_done: chunk.len(),
                };
                for (k, result) in prepared.into_iter().enumerate() {
                    match result {
                        Ok((tensors, variant_failures)) => {
                            batch.failures.extend(variant_failures);
                            for (v, t) in tensors.into_iter().enumerate() {
                                if t.is_empty() {
                                    continue; // this variant failed; recorded below
                                }
                                batch.rows.push((first + k, v));
                                batch.pixels.extend_from_slice(&t);
                            }
                        }
                        Err(f) => batch.failures.push(f),
                    }
                }
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
                let embeddings = match encoder.embed_pixels(&batch.pixels, n) {
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

/// Decodes one item and builds the tensor of each variant. A variant whose noise fails gets an
/// empty tensor and a failure record (the other variants go on); a decode failure fails the
/// whole item.
fn prepare_item(
    item: &Item,
    bytes: Result<Vec<u8>, String>,
    index: usize,
    job: &ImageJob<'_>,
    preprocess: &super::Preprocess,
    plane: usize,
) -> Result<ItemTensors, RowFailure> {
    let fail = |stage: &'static str, reason: String| RowFailure {
        index,
        variant: None,
        stage,
        reason,
    };
    let bytes = bytes.map_err(|r| fail("read", r))?;
    let crop = preprocess
        .load(&bytes, job.max_pixels, job.mode)
        .map_err(|f| fail(f.stage, f.reason))?;
    drop(bytes);
    if crop.width * crop.height * 3 != plane {
        return Err(fail(
            "preprocess",
            format!(
                "preprocessed to {}x{} but the model takes {} values per image",
                crop.width, crop.height, plane
            ),
        ));
    }
    // Float pixels only for the variants that perturb them.
    let base = job
        .variants
        .iter()
        .any(|v| v.noise.is_some())
        .then(|| preprocess.pixels_of(&crop));
    let mut out = Vec::with_capacity(job.variants.len());
    let mut variant_failures = Vec::new();
    for (v, variant) in job.variants.iter().enumerate() {
        let mut tensor = vec![0.0f32; plane];
        match (&variant.noise, &base) {
            (None, _) | (_, None) => preprocess.normalize_rgbx_into(&crop, &mut tensor),
            (Some(noise), Some(base)) => {
                let mut rng = augment::rng_for(job.seed, &item.id, variant);
                let mut pixels = base.clone();
                if let Err(reason) = noise.apply_pixels(&mut pixels, &mut rng) {
                    variant_failures.push(RowFailure {
                        index,
                        variant: Some(v),
                        stage: "augment",
                        reason,
                    });
                    out.push(Vec::new());
                    continue;
                }
                preprocess.normalize_into(&pixels, &mut tensor);
                noise.apply_normalized(&mut tensor, &mut rng);
            }
        }
        out.push(tensor);
    }
    Ok((out, variant_failures))
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
