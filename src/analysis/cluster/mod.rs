//! Clustering of embeddings and the metrics that compare a clustering with the labels.
//!
//! - [`kmeans`]: k-means++ seeding, seeded restarts, Lloyd iterations (scikit-learn's
//!   algorithm step for step);
//! - [`ward`] / [`ward_tree`]: exact agglomerative clustering with Ward's criterion
//!   (nearest-neighbour chain, Lance–Williams updates; up to [`WARD_MAX_SAMPLES`]);
//! - [`dbscan`]: density-based clustering with scikit-learn's labelling;
//! - [`autoencoder`]: k-means on the codes of a stacked denoising autoencoder, and [`dec`],
//!   Deep Embedded Clustering (Xie, Girshick & Farhadi, ICML 2016) refined from it;
//! - metrics equal to scikit-learn's to 1e-9: [`adjusted_rand_score`],
//!   [`normalized_mutual_info_score`], [`adjusted_mutual_info_score`],
//!   [`fowlkes_mallows_score`], [`homogeneity_completeness_v_measure`],
//!   [`silhouette_score`] (euclidean and cosine).
//!
//! "k comes from the labels" is the caller's choice: pass the number of distinct labels.

mod autoencoder;
mod dbscan;
mod dec;
mod kmeans;
mod metrics;
mod mlp;
mod silhouette;
mod ward;

pub use super::linalg::Distance;
pub use autoencoder::{
    autoencoder, AutoencoderClustering, AutoencoderOptions, AutoencoderTrace,
    AUTOENCODER_MAX_PARAMETERS,
};
pub use dbscan::{dbscan, Dbscan, DbscanOptions};
pub use dec::{
    dec, kl_divergence, soft_assignment, target_distribution, Dec, DecOptions, DecTrace, DecUpdate,
};
pub use kmeans::{kmeans, kmeans_plus_plus, lloyd, KMeans, KMeansOptions};
pub use metrics::{
    adjusted_mutual_info_score, adjusted_rand_score, cluster_scores, contingency, entropy,
    fowlkes_mallows_score, homogeneity_completeness_v_measure, mutual_info_score,
    normalized_mutual_info_score, ClusterScores, Contingency,
};
pub use mlp::Optimizer;
pub use silhouette::{silhouette_samples, silhouette_score};
pub use ward::{ward, ward_tree, Dendrogram, Merge, WARD_MAX_SAMPLES};
