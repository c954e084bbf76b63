//! Compiles src/encode/jpeg/scan.c, the bridge from clipflow's JPEG entropy decoder to the
//! libjpeg-turbo internals it plugs into, against the headers of the libjpeg-turbo that
//! mozjpeg-sys builds (which it publishes as `DEP_JPEG_INCLUDE`).

fn main() {
    let shim = "src/encode/jpeg/scan.c";
    println!("cargo:rerun-if-changed={shim}");
    println!("cargo:rerun-if-env-changed=DEP_JPEG_INCLUDE");
    let include = std::env::var_os("DEP_JPEG_INCLUDE")
        .expect("mozjpeg-sys publishes its include directories as DEP_JPEG_INCLUDE");
    let mut build = cc::Build::new();
    build.file(shim).warnings(true);
    for dir in std::env::split_paths(&include) {
        build.include(dir);
    }
    build.compile("clipflow_jpeg_scan");
}
