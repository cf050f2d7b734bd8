//! Reading the checkout of a repo that may be hostile. A kustomization can name any path, and
//! a path inside the checkout can be a symbolic link to anywhere: to a secret of the runner's
//! machine (whose keys a finding would then quote), or to `/dev/zero`. So every path is
//! resolved to where it really leads and read only if that is a regular file inside the
//! checkout, and never past the size bound.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::pipeline::Diagnostic;

/// Largest manifest file checked; bigger ones are reported, not read.
pub const MAX_MANIFEST_BYTES: u64 = 8 * 1024 * 1024;

/// Where a path of the checkout leads.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Place {
    Missing,
    /// Out of the checkout, through a symbolic link.
    Outside,
    File,
    Dir,
    /// A device, a socket, a pipe.
    Special,
}

pub(super) struct Checkout {
    root: PathBuf,
    real_root: PathBuf,
}

impl Checkout {
    pub fn new(root: &Path) -> Self {
        Checkout {
            root: root.to_owned(),
            real_root: root.canonicalize().unwrap_or_else(|_| root.to_owned()),
        }
    }

    pub fn locate(&self, relative: &str) -> Place {
        let Ok(real) = self.root.join(relative).canonicalize() else {
            return Place::Missing;
        };
        if !real.starts_with(&self.real_root) {
            return Place::Outside;
        }
        match std::fs::metadata(&real) {
            Ok(meta) if meta.is_file() => Place::File,
            Ok(meta) if meta.is_dir() => Place::Dir,
            Ok(_) => Place::Special,
            Err(_) => Place::Missing,
        }
    }

    /// Reads a file that must be YAML: a regular file inside the checkout, within the size
    /// bound, UTF-8, parsing with no duplicate key at any depth. Any failure is the file's
    /// finding.
    pub fn read_yaml(&self, relative: &str) -> Result<String, Diagnostic> {
        let at_start = |message: String| Diagnostic::new(relative, 1, 1, message);
        match self.locate(relative) {
            Place::File => {}
            Place::Missing => return Err(at_start("cannot read file: it is not there".into())),
            Place::Outside => {
                return Err(at_start(
                    "not read: a symbolic link leads out of the checkout".into(),
                ));
            }
            Place::Dir | Place::Special => {
                return Err(at_start("not read: not a regular file".into()));
            }
        }
        let path = self.root.join(relative);
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&path)
            .and_then(|file| file.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes));
        if let Err(err) = read {
            return Err(at_start(format!("cannot read file: {err}")));
        }
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            let size = std::fs::metadata(&path).map_or(bytes.len() as u64, |m| m.len());
            return Err(at_start(format!(
                "file is {size} bytes; manifests are checked up to {MAX_MANIFEST_BYTES}"
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| at_start("file is not UTF-8".into()))?;
        super::parse::<serde_json::Value>(&text)
            .map_err(|err| crate::pipeline::diagnostic_from_yaml_error(relative, &err))?;
        Ok(text)
    }
}
