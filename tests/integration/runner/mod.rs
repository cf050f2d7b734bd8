//! The runner on a real Docker engine, with the local busybox image `.ci/run` builds
//! (`GANTRY_TEST_IMAGE`).

mod build;
mod cli;
mod executor;

/// The image every test stage runs in.
pub fn image() -> String {
    std::env::var("GANTRY_TEST_IMAGE").expect(
        "GANTRY_TEST_IMAGE must name a local busybox image (scripts/test-services.sh builds it)",
    )
}

/// Writes `.gantry/<name>.yml` files into a fresh checkout folder.
pub fn checkout(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".gantry")).unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text.replace("IMAGE", &image())).unwrap();
    }
    dir
}
