//! Procedural, DTD-like texture images with captions.
//!
//! Every image is drawn from its own [`ChaCha8Rng`], seeded from `(seed, class, index)`, so the
//! bytes of an item never depend on how rayon schedules the work, nor on how many items are asked
//! for. Colours come from a small named palette so that captions can name them; each pattern has a
//! foreground colour drawn "on" a background colour, a scale (small, medium, large), a rotation and
//! a phase.
//!
//! A pattern is a function from a point in pattern units (one period = 1) to a foreground coverage
//! in `[0, 1]` and a shading factor; the image is that function sampled 2×2 per pixel, mixed
//! between the two colours, and lit by a gentle gradient.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The texture classes, named after classes of the Describable Textures Dataset (DTD).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TextureClass {
    Banded,
    Blotchy,
    Bubbly,
    Chequered,
    Cracked,
    Crosshatched,
    Dotted,
    Grid,
    Honeycombed,
    Marbled,
    PolkaDotted,
    Scaly,
    Spiralled,
    Sprinkled,
    Striped,
    Swirly,
    Veined,
    Waffled,
    Woven,
    Zigzagged,
}

impl TextureClass {
    /// All classes, in label order.
    pub const ALL: [TextureClass; 20] = [
        TextureClass::Banded,
        TextureClass::Blotchy,
        TextureClass::Bubbly,
        TextureClass::Chequered,
        TextureClass::Cracked,
        TextureClass::Crosshatched,
        TextureClass::Dotted,
        TextureClass::Grid,
        TextureClass::Honeycombed,
        TextureClass::Marbled,
        TextureClass::PolkaDotted,
        TextureClass::Scaly,
        TextureClass::Spiralled,
        TextureClass::Sprinkled,
        TextureClass::Striped,
        TextureClass::Swirly,
        TextureClass::Veined,
        TextureClass::Waffled,
        TextureClass::Woven,
        TextureClass::Zigzagged,
    ];

    /// The DTD class name, used as label, folder name and in captions.
    pub fn name(self) -> &'static str {
        match self {
            TextureClass::Banded => "banded",
            TextureClass::Blotchy => "blotchy",
            TextureClass::Bubbly => "bubbly",
            TextureClass::Chequered => "chequered",
            TextureClass::Cracked => "cracked",
            TextureClass::Crosshatched => "crosshatched",
            TextureClass::Dotted => "dotted",
            TextureClass::Grid => "grid",
            TextureClass::Honeycombed => "honeycombed",
            TextureClass::Marbled => "marbled",
            TextureClass::PolkaDotted => "polka-dotted",
            TextureClass::Scaly => "scaly",
            TextureClass::Spiralled => "spiralled",
            TextureClass::Sprinkled => "sprinkled",
            TextureClass::Striped => "striped",
            TextureClass::Swirly => "swirly",
            TextureClass::Veined => "veined",
            TextureClass::Waffled => "waffled",
            TextureClass::Woven => "woven",
            TextureClass::Zigzagged => "zigzagged",
        }
    }

    /// Period of the pattern at the medium scale, in units of the image height.
    fn base_period(self) -> f32 {
        match self {
            TextureClass::Banded => 0.38,
            TextureClass::Blotchy => 0.40,
            TextureClass::Bubbly => 0.22,
            TextureClass::Chequered => 0.18,
            TextureClass::Cracked => 0.24,
            TextureClass::Crosshatched => 0.13,
            TextureClass::Dotted => 0.15,
            TextureClass::Grid => 0.19,
            TextureClass::Honeycombed => 0.18,
            TextureClass::Marbled => 0.32,
            TextureClass::PolkaDotted => 0.18,
            TextureClass::Scaly => 0.16,
            TextureClass::Spiralled => 0.11,
            TextureClass::Sprinkled => 0.17,
            TextureClass::Striped => 0.12,
            TextureClass::Swirly => 0.17,
            TextureClass::Veined => 0.60,
            TextureClass::Waffled => 0.19,
            TextureClass::Woven => 0.22,
            TextureClass::Zigzagged => 0.2,
        }
    }
}

/// The named colour palette (sRGB, 0..=255).
pub const PALETTE: [(&str, [f32; 3]); 11] = [
    ("red", [200.0, 30.0, 35.0]),
    ("orange", [240.0, 130.0, 20.0]),
    ("yellow", [245.0, 215.0, 40.0]),
    ("green", [40.0, 150.0, 60.0]),
    ("blue", [30.0, 80.0, 200.0]),
    ("purple", [120.0, 50.0, 160.0]),
    ("pink", [240.0, 140.0, 185.0]),
    ("brown", [120.0, 75.0, 35.0]),
    ("black", [20.0, 20.0, 22.0]),
    ("white", [245.0, 245.0, 240.0]),
    ("gray", [128.0, 128.0, 128.0]),
];

/// The three scales a caption can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Small,
    Medium,
    Large,
}

impl Scale {
    /// All scales.
    pub const ALL: [Scale; 3] = [Scale::Small, Scale::Medium, Scale::Large];

    /// The word used in captions.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Small => "small",
            Scale::Medium => "medium",
            Scale::Large => "large",
        }
    }

    fn factor(self) -> f32 {
        match self {
            Scale::Small => 0.75,
            Scale::Medium => 1.0,
            Scale::Large => 1.45,
        }
    }
}

/// Caption templates: `{s}` scale, `{f}` foreground colour, `{b}` background colour, `{c}` class.
/// The foreground colour is always named first, so word order carries meaning.
pub const CAPTION_TEMPLATES: [&str; 6] = [
    "a {s} {f} and {b} {c} pattern",
    "a {s} {f} {c} pattern on a {b} background",
    "a photo of a {s} {c} texture, {f} on {b}",
    "{s} {f} and {b} {c} texture",
    "a {c} texture in {f} and {b}, {s} scale",
    "a close-up of a {s} {f} {c} surface on {b}",
];

/// What one generated item is: everything its caption and metadata say.
#[derive(Clone, Debug, PartialEq)]
pub struct TextureSpec {
    pub class: TextureClass,
    pub index: u32,
    pub fg: &'static str,
    pub bg: &'static str,
    pub scale: Scale,
    /// Rotation of the pattern in degrees, `[0, 180)`.
    pub rotation_deg: f32,
    pub caption: String,
    params: Params,
}

impl TextureSpec {
    /// Stable id: `<class>_<index:05>`.
    pub fn id(&self) -> String {
        format!("{}_{:05}", self.class.name(), self.index)
    }

    /// Whether the background is dark (Rec. 601 luma below mid-grey): a boolean attribute for
    /// attribute-probing studies, as CelebA's are.
    pub fn dark_background(&self) -> bool {
        let [r, g, b] = self.params.bg;
        0.299 * r + 0.587 * g + 0.114 * b < 128.0
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Params {
    fg: [f32; 3],
    bg: [f32; 3],
    period: f32,
    cos: f32,
    sin: f32,
    phase: [f32; 2],
    hash_seed: u32,
    /// Class-specific shape parameters, drawn uniformly in `[0, 1)`.
    k: [f32; 3],
    centre: [f32; 2],
    light: [f32; 2],
}

/// SplitMix64 finaliser, used to derive per-item seeds.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of item `(class, index)` of a dataset generated with `seed`.
pub fn item_seed(seed: u64, class: usize, index: u32) -> u64 {
    splitmix(splitmix(splitmix(seed) ^ class as u64) ^ u64::from(index))
}

fn colour_distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Draws the spec of item `(class, index)`.
pub fn spec(seed: u64, class_idx: usize, index: u32) -> TextureSpec {
    let class = TextureClass::ALL[class_idx % TextureClass::ALL.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(item_seed(seed, class_idx, index));
    let (fi, bi) = loop {
        let f = rng.random_range(0..PALETTE.len());
        let b = rng.random_range(0..PALETTE.len());
        if f != b && colour_distance(PALETTE[f].1, PALETTE[b].1) > 85.0 {
            break (f, b);
        }
    };
    let mut jitter =
        |c: [f32; 3]| c.map(|v| (v + rng.random_range(-10.0f32..10.0)).clamp(0.0, 255.0));
    let fg = jitter(PALETTE[fi].1);
    let bg = jitter(PALETTE[bi].1);
    let scale = Scale::ALL[rng.random_range(0..Scale::ALL.len())];
    let period = class.base_period() * scale.factor() * rng.random_range(0.88f32..1.12);
    let rotation_deg = rng.random_range(0.0f32..180.0);
    let theta = rotation_deg.to_radians();
    let phase = [rng.random::<f32>(), rng.random::<f32>()];
    let hash_seed = rng.random::<u32>();
    let k = [
        rng.random::<f32>(),
        rng.random::<f32>(),
        rng.random::<f32>(),
    ];
    let centre = [
        rng.random_range(-0.2f32..0.2),
        rng.random_range(-0.2f32..0.2),
    ];
    let light = [
        rng.random_range(-0.15f32..0.15),
        rng.random_range(-0.15f32..0.15),
    ];
    let template = CAPTION_TEMPLATES[rng.random_range(0..CAPTION_TEMPLATES.len())];
    let caption = template
        .replace("{s}", scale.name())
        .replace("{f}", PALETTE[fi].0)
        .replace("{b}", PALETTE[bi].0)
        .replace("{c}", class.name());
    TextureSpec {
        class,
        index,
        fg: PALETTE[fi].0,
        bg: PALETTE[bi].0,
        scale,
        rotation_deg,
        caption,
        params: Params {
            fg,
            bg,
            period,
            cos: theta.cos(),
            sin: theta.sin(),
            phase,
            hash_seed,
            k,
            centre,
            light,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Noise and hashing helpers (integer hashing, so results are identical on every run).

fn hash3(x: i32, y: i32, seed: u32) -> u32 {
    let mut h = (x as u32).wrapping_mul(0x8DA6_B343)
        ^ (y as u32).wrapping_mul(0xD816_3841)
        ^ seed.wrapping_mul(0xCB1A_B31F);
    h ^= h >> 16;
    h = h.wrapping_mul(0x7FEB_352D);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846C_A68B);
    h ^= h >> 16;
    h
}

/// A uniform value in `[0, 1)` attached to a lattice cell; `k` selects an independent stream.
fn cell_rand(x: i32, y: i32, seed: u32, k: u32) -> f32 {
    (hash3(x, y, seed ^ k.wrapping_mul(0x9E37_79B9)) >> 8) as f32 / (1u32 << 24) as f32
}

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    smooth(((x - e0) / (e1 - e0)).clamp(0.0, 1.0))
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

fn value_noise(x: f32, y: f32, seed: u32) -> f32 {
    let (xf, yf) = (x.floor(), y.floor());
    let (ix, iy) = (xf as i32, yf as i32);
    let (u, v) = (smooth(x - xf), smooth(y - yf));
    let r = |dx: i32, dy: i32| cell_rand(ix + dx, iy + dy, seed, 7);
    lerp(lerp(r(0, 0), r(1, 0), u), lerp(r(0, 1), r(1, 1), u), v)
}

/// Fractal value noise in `[0, 1]`.
fn fbm(x: f32, y: f32, seed: u32, octaves: u32) -> f32 {
    let (mut sum, mut amp, mut norm, mut f) = (0.0, 1.0, 0.0, 1.0);
    for o in 0..octaves {
        // Rotate each octave a little to hide the lattice.
        let (rx, ry) = (x * f * 0.8 - y * f * 0.6, x * f * 0.6 + y * f * 0.8);
        sum += amp
            * value_noise(
                rx + 17.3 * o as f32,
                ry - 9.1 * o as f32,
                seed.wrapping_add(o),
            );
        norm += amp;
        amp *= 0.5;
        f *= 2.03;
    }
    sum / norm
}

fn fract(x: f32) -> f32 {
    x - x.floor()
}

/// Distance from `x` to the nearest integer.
fn int_dist(x: f32) -> f32 {
    let f = fract(x);
    f.min(1.0 - f)
}

/// Distance from `(px, py)` to the segment from `a` to `b`.
fn segment_distance(px: f32, py: f32, a: [f32; 2], b: [f32; 2]) -> f32 {
    let (vx, vy) = (b[0] - a[0], b[1] - a[1]);
    let (wx, wy) = (px - a[0], py - a[1]);
    let t = ((wx * vx + wy * vy) / (vx * vx + vy * vy)).clamp(0.0, 1.0);
    ((wx - t * vx).powi(2) + (wy - t * vy).powi(2)).sqrt()
}

/// Distance to the nearest Voronoi edge, from the two nearest of the given sites.
fn voronoi_edge(px: f32, py: f32, sites: impl Iterator<Item = [f32; 2]>) -> f32 {
    let mut best = [(f32::MAX, [0.0f32; 2]); 2];
    for s in sites {
        let d = (px - s[0]).powi(2) + (py - s[1]).powi(2);
        if d < best[0].0 {
            best[1] = best[0];
            best[0] = (d, s);
        } else if d < best[1].0 {
            best[1] = (d, s);
        }
    }
    let (d1, p1) = best[0];
    let (d2, p2) = best[1];
    let sep = ((p2[0] - p1[0]).powi(2) + (p2[1] - p1[1]).powi(2))
        .sqrt()
        .max(1e-6);
    (d2 - d1) / (2.0 * sep)
}

/// The 3×3 neighbourhood of the cell containing `(x, y)`.
fn neighbourhood(x: f32, y: f32) -> impl Iterator<Item = (i32, i32)> {
    let (cx, cy) = (x.floor() as i32, y.floor() as i32);
    (-1..=1).flat_map(move |dy| (-1..=1).map(move |dx| (cx + dx, cy + dy)))
}

// ---------------------------------------------------------------------------------------------
// The patterns.

/// Foreground coverage and a shading factor at pattern coordinates `(u, v)`.
/// `(x, y)` are the unrotated image coordinates in units of the image height, centred.
fn pattern(class: TextureClass, p: &Params, u: f32, v: f32, x: f32, y: f32) -> (f32, f32) {
    let s = p.hash_seed;
    let [k0, k1, k2] = p.k;
    let (ph0, ph1) = (p.phase[0], p.phase[1]);
    match class {
        TextureClass::Striped => {
            let duty = 0.3 + 0.25 * k0;
            (f32::from(fract(u + ph0) < duty), 1.0)
        }
        TextureClass::Banded => {
            let w = (std::f32::consts::TAU * (u + ph0)).sin()
                + 0.6 * (std::f32::consts::TAU * (1.7 * u + ph1)).sin();
            (smoothstep(-0.25, 0.25, w - 0.4 * (k0 - 0.5)), 1.0)
        }
        TextureClass::Zigzagged => {
            let width = 1.2 + 0.8 * k0;
            let amp = 0.3 + 0.35 * k1;
            let tri = 2.0 * int_dist(u / width + ph1) * 2.0 - 1.0;
            (f32::from(fract(v + amp * tri + ph0) < 0.5), 1.0)
        }
        TextureClass::Chequered => {
            let c = (u + ph0).floor() as i64 + (v + ph1).floor() as i64;
            (f32::from(c.rem_euclid(2) == 0), 1.0)
        }
        TextureClass::Grid => {
            let t = 0.05 + 0.04 * k0;
            (f32::from(int_dist(u + ph0).min(int_dist(v + ph1)) < t), 1.0)
        }
        TextureClass::Crosshatched => {
            let alpha = (22.0 + 14.0 * k0).to_radians();
            let (ca, sa) = (alpha.cos(), alpha.sin());
            let t = 0.12 + 0.08 * k1;
            let wob = 0.12 * (fbm(u * 0.7, v * 0.7, s, 2) - 0.5);
            let l1 = int_dist(u * sa + v * ca + ph0 + wob) < t;
            let l2 = int_dist(u * sa - v * ca + ph1 - wob) < t;
            (f32::from(l1 || l2), 1.0)
        }
        TextureClass::Waffled => {
            let (fx, fy) = (fract(u + ph0), fract(v + ph1));
            let ridge = 0.12 + 0.06 * k0;
            let bevel = 0.1;
            let edge = fx.min(1.0 - fx).min(fy).min(1.0 - fy);
            if edge < ridge {
                (1.0, 1.05)
            } else if edge < ridge + bevel {
                // Sloped walls of the pit: light from the top left.
                let shade = if fx.min(fy) < (1.0 - fx).min(1.0 - fy) {
                    0.6
                } else {
                    1.15
                };
                (0.0, shade)
            } else {
                (0.0, 0.9)
            }
        }
        TextureClass::Honeycombed => {
            let h = 3.0f32.sqrt() / 2.0;
            let (qx, qy) = (u + ph0, v / h + ph1);
            let (cx, cy) = (qx.floor() as i32, qy.floor() as i32);
            let sites = (-1..=2).flat_map(move |dy| {
                (-1..=2).map(move |dx| {
                    let (i, j) = (cx + dx, cy + dy);
                    [i as f32 + 0.5 * (j.rem_euclid(2)) as f32, j as f32 * h]
                })
            });
            let d = voronoi_edge(qx, qy * h, sites);
            let t = 0.05 + 0.05 * k0;
            (smoothstep(t + 0.02, t - 0.02, d), 1.0)
        }
        TextureClass::Dotted => {
            let (qx, qy) = (u + ph0, v + ph1);
            let r = 0.17 + 0.06 * k0;
            let mut cov: f32 = 0.0;
            for (i, j) in neighbourhood(qx, qy) {
                if cell_rand(i, j, s, 1) > 0.8 {
                    continue;
                }
                let cx = i as f32 + 0.25 + 0.5 * cell_rand(i, j, s, 2);
                let cy = j as f32 + 0.25 + 0.5 * cell_rand(i, j, s, 3);
                let d = ((qx - cx).powi(2) + (qy - cy).powi(2)).sqrt();
                cov = cov.max(f32::from(d < r * (0.8 + 0.4 * cell_rand(i, j, s, 4))));
            }
            (cov, 1.0)
        }
        TextureClass::PolkaDotted => {
            let (qx, qy) = (u + ph0, v + ph1);
            let row = qy.floor();
            let shift = if (row as i64).rem_euclid(2) == 1 {
                0.5
            } else {
                0.0
            };
            let (fx, fy) = (fract(qx + shift) - 0.5, fract(qy) - 0.5);
            let r = 0.24 + 0.08 * k0;
            (f32::from(fx * fx + fy * fy < r * r), 1.0)
        }
        TextureClass::Spiralled => {
            let (dx, dy) = (x - p.centre[0], y - p.centre[1]);
            let r = (dx * dx + dy * dy).sqrt() / p.period;
            let arms = 1.0 + (k0 * 3.0).floor();
            let turn = dy.atan2(dx) / std::f32::consts::TAU;
            (f32::from(fract(r + arms * turn + ph0) < 0.5), 1.0)
        }
        TextureClass::Marbled => {
            let n = fbm(u * 0.6, v * 0.6, s, 5);
            let w = (std::f32::consts::TAU * (u + 1.4 * n + ph0)).sin();
            let vein = (1.0 - w.abs()).powf(4.0 + 4.0 * k0);
            let mottle = 0.9 + 0.2 * fbm(u * 3.0, v * 3.0, s ^ 0x55, 3);
            (vein.min(1.0), mottle)
        }
        TextureClass::Veined => {
            let n = fbm(u * 1.5, v * 1.5, s, 4);
            let ridge = 1.0 - (2.0 * n - 1.0).abs();
            let n2 = fbm(u * 4.0, v * 4.0, s ^ 0xA5A5, 3);
            let ridge2 = 1.0 - (2.0 * n2 - 1.0).abs();
            let a = smoothstep(0.93, 0.975, ridge).max(0.8 * smoothstep(0.955, 0.985, ridge2));
            (a, 1.0)
        }
        TextureClass::Blotchy => {
            let n = fbm(u * 1.6, v * 1.6, s, 4);
            let th = 0.46 + 0.08 * k0;
            (smoothstep(th - 0.015, th + 0.015, n), 1.0)
        }
        TextureClass::Cracked => {
            let wx = u + 0.25 * (fbm(u * 2.0, v * 2.0, s ^ 3, 2) - 0.5);
            let wy = v + 0.25 * (fbm(u * 2.0, v * 2.0, s ^ 4, 2) - 0.5);
            let sites = neighbourhood(wx, wy).map(|(i, j)| {
                [
                    i as f32 + 0.1 + 0.8 * cell_rand(i, j, s, 1),
                    j as f32 + 0.1 + 0.8 * cell_rand(i, j, s, 2),
                ]
            });
            let d = voronoi_edge(wx, wy, sites);
            let t = 0.025 + 0.025 * k0;
            (smoothstep(t + 0.015, t - 0.015, d), 1.0)
        }
        TextureClass::Scaly => {
            let (qx, qy) = (u + ph0, (v + ph1) * 2.0);
            let radius = 0.62;
            let t = 0.06 + 0.04 * k0;
            // Later rows are drawn on top; the pixel shows the last scale covering it.
            let j0 = qy.floor() as i32;
            let mut hit: Option<f32> = None;
            for j in (j0 - 1)..=(j0 + 2) {
                let shift = if j.rem_euclid(2) == 1 { 0.5 } else { 0.0 };
                let cy = j as f32 * 0.5;
                let cx = (qx - shift).round() + shift;
                let d = ((qx - cx).powi(2) + (qy * 0.5 - cy).powi(2)).sqrt();
                if d < radius {
                    hit = Some(d);
                }
            }
            match hit {
                Some(d) => {
                    let outline = f32::from(d > radius - t);
                    (outline, 0.75 + 0.3 * (1.0 - d / radius))
                }
                None => (1.0, 1.0),
            }
        }
        TextureClass::Sprinkled => {
            let (qx, qy) = (u + ph0, v + ph1);
            let half = 0.22 + 0.08 * k0;
            let t = 0.05 + 0.025 * k1;
            let mut cov: f32 = 0.0;
            for (i, j) in neighbourhood(qx, qy) {
                if cell_rand(i, j, s, 1) > 0.85 {
                    continue;
                }
                let cx = i as f32 + 0.3 + 0.4 * cell_rand(i, j, s, 2);
                let cy = j as f32 + 0.3 + 0.4 * cell_rand(i, j, s, 3);
                let ang = std::f32::consts::PI * cell_rand(i, j, s, 4);
                let (dx, dy) = (half * ang.cos(), half * ang.sin());
                let d = segment_distance(qx, qy, [cx - dx, cy - dy], [cx + dx, cy + dy]);
                cov = cov.max(f32::from(d < t));
            }
            (cov, 1.0)
        }
        TextureClass::Bubbly => {
            let (qx, qy) = (u + ph0, v + ph1);
            let t = 0.045 + 0.03 * k0;
            let mut cov: f32 = 0.0;
            let mut shade: f32 = 1.0;
            for (i, j) in neighbourhood(qx, qy) {
                let cx = i as f32 + 0.3 + 0.4 * cell_rand(i, j, s, 2);
                let cy = j as f32 + 0.3 + 0.4 * cell_rand(i, j, s, 3);
                let r = 0.2 + 0.28 * cell_rand(i, j, s, 4);
                let d = ((qx - cx).powi(2) + (qy - cy).powi(2)).sqrt();
                if (d - r).abs() < t {
                    cov = 1.0;
                } else if d < r {
                    // A highlight towards the top left of each bubble.
                    let hl = ((qx - cx + 0.4 * r).powi(2) + (qy - cy + 0.4 * r).powi(2)).sqrt();
                    shade = shade.max(1.0 + 0.25 * smoothstep(0.35 * r, 0.0, hl));
                }
            }
            (cov, shade)
        }
        TextureClass::Woven => {
            let (qx, qy) = (u + ph0, v + ph1);
            let (i, j) = (qx.floor() as i64, qy.floor() as i64);
            let (fx, fy) = (fract(qx), fract(qy));
            let strands = 2.0 + (k0 * 2.0).floor();
            let pi = std::f32::consts::PI;
            if (i + j).rem_euclid(2) == 0 {
                let t = fract(fy * strands);
                (
                    1.0,
                    (0.55 + 0.45 * (pi * t).sin()) * (0.8 + 0.2 * (pi * fx).sin()),
                )
            } else {
                let t = fract(fx * strands);
                (
                    0.0,
                    (0.55 + 0.45 * (pi * t).sin()) * (0.8 + 0.2 * (pi * fy).sin()),
                )
            }
        }
        TextureClass::Swirly => {
            let wx = 2.2 * (fbm(u * 0.35, v * 0.35, s, 3) - 0.5);
            let wy = 2.2 * (fbm(u * 0.35 + 5.2, v * 0.35 + 1.3, s ^ 9, 3) - 0.5);
            let (a, b) = (u + 2.0 * wx, v + 2.0 * wy);
            let w = (std::f32::consts::TAU * (a + 0.3 * b * k2 + ph0)).sin();
            (smoothstep(-0.15, 0.15, w), 1.0)
        }
    }
}

/// Renders an image of `width × height` pixels as packed RGB8.
pub fn render(spec: &TextureSpec, width: u32, height: u32) -> Vec<u8> {
    const SS: u32 = 2;
    let p = &spec.params;
    let h = height as f32;
    let (w2, h2) = (width as f32 / 2.0, height as f32 / 2.0);
    let mut out = Vec::with_capacity((width * height * 3) as usize);
    for py in 0..height {
        for px in 0..width {
            let (mut cov, mut shade) = (0.0f32, 0.0f32);
            for sy in 0..SS {
                for sx in 0..SS {
                    let fx = px as f32 + (sx as f32 + 0.5) / SS as f32;
                    let fy = py as f32 + (sy as f32 + 0.5) / SS as f32;
                    let x = (fx - w2) / h;
                    let y = (fy - h2) / h;
                    let u = (x * p.cos + y * p.sin) / p.period;
                    let v = (-x * p.sin + y * p.cos) / p.period;
                    let (a, sh) = pattern(spec.class, p, u, v, x, y);
                    cov += a;
                    shade += sh;
                }
            }
            let n = (SS * SS) as f32;
            let (cov, shade) = (cov / n, shade / n);
            let (x, y) = ((px as f32 + 0.5 - w2) / h, (py as f32 + 0.5 - h2) / h);
            let light = 1.0 + p.light[0] * x + p.light[1] * y;
            for c in 0..3 {
                let value = lerp(p.bg[c], p.fg[c], cov) * shade * light;
                out.push(value.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_deterministic_and_distinct() {
        let a = spec(7, 3, 11);
        let b = spec(7, 3, 11);
        assert_eq!(a, b);
        assert_ne!(spec(7, 3, 12).params, a.params);
        assert_ne!(spec(8, 3, 11).params, a.params);
        assert_eq!(a.class, TextureClass::Chequered);
        assert_eq!(a.id(), "chequered_00011");
    }

    #[test]
    fn captions_name_class_colours_and_scale() {
        for c in 0..TextureClass::ALL.len() {
            for i in 0..20 {
                let s = spec(1, c, i);
                assert_ne!(s.fg, s.bg);
                for word in [s.class.name(), s.fg, s.bg, s.scale.name()] {
                    assert!(s.caption.contains(word), "{} lacks {word}", s.caption);
                }
                // The foreground colour always comes first.
                assert!(s.caption.find(s.fg) < s.caption.find(s.bg), "{}", s.caption);
            }
        }
    }

    /// The pixels of the training data of models/texture-clip (seed 1000) must not drift: a change
    /// here means the model card's "regenerate with ..." no longer reproduces its data.
    #[test]
    fn renders_match_golden_hash() {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for c in 0..TextureClass::ALL.len() {
            let s = spec(1000, c, 0);
            h.update(s.caption.as_bytes());
            h.update(render(&s, 40, 32));
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN);
    }
    const GOLDEN: &str = "5a442eadf2bb515716b0c9caf91a5bd1729e95dc1620efef39ee2b4626e664dc";

    #[test]
    fn every_class_renders_both_colours() {
        for c in 0..TextureClass::ALL.len() {
            let s = spec(3, c, 0);
            let px = render(&s, 60, 48);
            assert_eq!(px.len(), 60 * 48 * 3);
            // Not a flat image: the pattern shows some contrast in some channel.
            let mut var = 0.0f32;
            for ch in 0..3 {
                let v: Vec<f32> = px
                    .iter()
                    .skip(ch)
                    .step_by(3)
                    .map(|&b| f32::from(b))
                    .collect();
                let mean = v.iter().sum::<f32>() / v.len() as f32;
                var += v.iter().map(|l| (l - mean).powi(2)).sum::<f32>() / v.len() as f32;
            }
            assert!(var > 20.0, "{} is nearly flat (var {var})", s.class.name());
        }
    }
}
