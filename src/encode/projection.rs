//! A linear map from a tower's pooled output to the dimension the other tower shares, as the
//! baselines of retrieval papers add to unrelated encoders (BERT 768 → ResNet-50's 1000).
//! Either a `.npy` matrix `W` of shape `[D_in, D_out]`, applied as `x · W` (NumPy's
//! `x @ W`; a `torch.nn.Linear` stores `W.T`), or an ONNX graph taking `[N, D_in]` to
//! `[N, D_out]` (a bias, a non-linearity, anything exportable).

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::TensorRef;

use super::runtime::{self, SessionSettings};
use super::EncodeError;

/// A loaded projection.
pub enum Projection {
    Matrix {
        path: PathBuf,
        /// Row-major `d_in × d_out`.
        weights: Vec<f32>,
        d_in: usize,
        d_out: usize,
    },
    Graph {
        path: PathBuf,
        session: Box<Session>,
        input: String,
        output: String,
    },
}

impl Projection {
    /// Reads a `.npy` matrix or opens an `.onnx` graph.
    pub fn load(path: &Path, settings: SessionSettings) -> Result<Projection, EncodeError> {
        let bad = |message: String| EncodeError::Model {
            path: path.to_path_buf(),
            message,
        };
        let is_onnx = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
        if !is_onnx {
            let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let (shape, weights) = read_npy_f32(&bytes).map_err(bad)?;
            let [d_in, d_out] = shape[..] else {
                return Err(bad(format!(
                    "a projection is a 2-D matrix [D_in, D_out]; this one has shape {shape:?}"
                )));
            };
            if d_in == 0 || d_out == 0 {
                return Err(bad(format!("empty projection matrix {shape:?}")));
            }
            if !weights.iter().all(|v| v.is_finite()) {
                return Err(bad(
                    "the projection matrix has NaN or infinite values".into()
                ));
            }
            return Ok(Projection::Matrix {
                path: path.to_path_buf(),
                weights,
                d_in,
                d_out,
            });
        }
        let (session, _) = runtime::open_session(path, settings, &|_| {})?;
        let (inputs, outputs) = (session.inputs(), session.outputs());
        if inputs.len() != 1 || outputs.len() != 1 {
            return Err(bad(format!(
                "a projection graph takes one input and gives one output; this one has {} and {}",
                inputs.len(),
                outputs.len()
            )));
        }
        let (input, output) = (inputs[0].name().to_string(), outputs[0].name().to_string());
        Ok(Projection::Graph {
            path: path.to_path_buf(),
            session: Box::new(session),
            input,
            output,
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            Projection::Matrix { path, .. } | Projection::Graph { path, .. } => path,
        }
    }

    /// Maps `n` rows of `dim` values; returns the rows and their new dimension.
    pub fn apply(&mut self, x: &[f32], n: usize, dim: usize) -> Result<(Vec<f32>, usize), String> {
        match self {
            Projection::Matrix {
                weights,
                d_in,
                d_out,
                ..
            } => {
                if dim != *d_in {
                    return Err(format!(
                        "the projection expects {d_in} inputs but the tower gives {dim}"
                    ));
                }
                let mut out = vec![0.0f32; n * *d_out];
                let mut acc = vec![0.0f64; *d_out];
                for (row, o) in x.chunks_exact(dim).zip(out.chunks_exact_mut(*d_out)) {
                    acc.iter_mut().for_each(|a| *a = 0.0);
                    for (xi, w) in row.iter().zip(weights.chunks_exact(*d_out)) {
                        let xi = *xi as f64;
                        for (a, wij) in acc.iter_mut().zip(w) {
                            *a += xi * *wij as f64;
                        }
                    }
                    for (o, a) in o.iter_mut().zip(&acc) {
                        *o = *a as f32;
                    }
                }
                Ok((out, *d_out))
            }
            Projection::Graph {
                session,
                input,
                output,
                ..
            } => {
                let t = TensorRef::from_array_view(([n, dim], x)).map_err(|e| e.to_string())?;
                let outs = session
                    .run(ort::inputs![input.as_str() => t])
                    .map_err(|e| e.to_string())?;
                let (shape, data) = outs[output.as_str()]
                    .try_extract_tensor::<f32>()
                    .map_err(|e| format!("output `{output}`: {e}"))?;
                match shape[..] {
                    [rows, d] if rows as usize == n && d > 0 => Ok((data.to_vec(), d as usize)),
                    _ => Err(format!(
                        "the projection graph gave shape {:?}; expected [{n}, D]",
                        &shape[..]
                    )),
                }
            }
        }
    }
}

/// A little-endian `float32` or `float64` C-order `.npy` (format 1.x–3.x): shape and values.
/// Checks the declared shape against the bytes present before allocating anything.
pub fn read_npy_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!(".npy format version {v} is not supported")),
    };
    let header = bytes
        .get(start..start.saturating_add(header_len))
        .ok_or("the .npy header is cut short")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").ok_or("the .npy header has no descr")?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        let end = descr.find(',').unwrap_or(descr.len());
        return Err(format!(
            "dtype {} is not supported; save the matrix as float32 or float64",
            &descr[..end]
        ));
    };
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err("Fortran-order .npy is not supported; save with np.ascontiguousarray".into());
    }
    let shape_text = field("shape").ok_or("the .npy header has no shape")?;
    let close = shape_text.find(')').ok_or("the .npy shape is malformed")?;
    let shape: Vec<usize> = shape_text[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("the .npy shape {} is malformed", &shape_text[..=close]))?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the .npy shape overflows")?;
    let data = &bytes[start + header_len..];
    if Some(data.len()) != count.checked_mul(width) {
        return Err(format!(
            "the .npy header declares {count} values of {width} bytes but the file holds {} bytes",
            data.len()
        ));
    }
    let values = if width == 4 {
        data.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
            .collect()
    };
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn matrix_projection_is_x_times_w() {
        let w: Vec<u8> = [1.0f32, 0.0, 2.0, 0.5, 1.0, -1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bytes = npy("<f4", "(2, 3)", &w);
        let (shape, weights) = read_npy_f32(&bytes).unwrap();
        assert_eq!(shape, vec![2, 3]);
        let mut p = Projection::Matrix {
            path: PathBuf::new(),
            weights,
            d_in: 2,
            d_out: 3,
        };
        let (y, d) = p.apply(&[1.0, 2.0, 0.0, 1.0], 2, 2).unwrap();
        assert_eq!(d, 3);
        assert_eq!(y, vec![2.0, 2.0, 0.0, 0.5, 1.0, -1.0]);
        assert!(p.apply(&[1.0, 2.0, 3.0], 1, 3).is_err());
    }

    #[test]
    fn malformed_npy_is_refused_before_allocating() {
        let f64s: Vec<u8> = [1.5f64, 2.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            read_npy_f32(&npy("<f8", "(2,)", &f64s)).unwrap(),
            (vec![2], vec![1.5, 2.5])
        );
        assert!(read_npy_f32(&npy("<f4", "(100000, 100000)", &[]))
            .unwrap_err()
            .contains("declares"));
        assert!(read_npy_f32(&npy("<f4", "(3,)", &[0; 8])).is_err());
        assert!(read_npy_f32(&npy("<i8", "(1,)", &[0; 8]))
            .unwrap_err()
            .contains("not supported"));
        assert!(read_npy_f32(b"hello").is_err());
        assert!(read_npy_f32(&npy("<f4", "(99999999999999999999999,)", &[])).is_err());
    }
}
