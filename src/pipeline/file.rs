//! The pipeline file as written: serde types that keep each value's location, the YAML
//! reader's limits, and parse errors turned into messages a person can act on.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_saphyr::{Budget, DuplicateKeyPolicy, Options, Spanned};

use super::BumpPin;
use super::Diagnostic;

/// Largest pipeline file read. Real files are a few KiB; a 500-stage file is about 50 KiB.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Deepest nesting accepted. The format itself is at most six levels deep.
const MAX_DEPTH: usize = 64;
/// Aliases (`*ref`) accepted in one file: enough for reuse, too few for an alias bomb.
const MAX_ALIASES: usize = 256;
/// Parser events in one file: bounds the work an expanding file can cause.
const MAX_EVENTS: usize = 500_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    pub name: Option<Spanned<String>>,
    pub on: Option<Spanned<TriggersFile>>,
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<Scalar>>,
    /// Labels a runner must have to take the run.
    pub runs_on: Option<Spanned<Vec<Spanned<String>>>>,
    /// Containers the stages reach by name (a database for the tests).
    pub services: Option<Spanned<Vec<Spanned<ServiceFile>>>>,
    /// Folders restored before the first stage and saved after the pipeline succeeds.
    pub cache: Option<Spanned<Vec<Spanned<CacheFile>>>>,
    pub stages: Spanned<Vec<Spanned<StageFile>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    /// `${hash:FILE…}` hashes files of the checkout; `${VAR}`s are the run's variables.
    pub key: Spanned<String>,
    /// Prefixes of keys to fall back to, in order, when the key has no entry.
    #[serde(default)]
    pub restore_keys: OneOrMany,
    pub paths: OneOrMany,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    pub name: Spanned<String>,
    pub image: Spanned<String>,
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<Scalar>>,
    /// Replaces the image's `CMD`.
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    pub ready: Option<Spanned<ReadyFile>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadyFile {
    /// A command run in the service (with `sh -c`) that exits 0 once it is ready.
    pub cmd: Option<Spanned<String>>,
    /// A TCP port the service listens on once it is ready.
    pub port: Option<Spanned<u16>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggersFile {
    #[serde(default, deserialize_with = "present")]
    pub push: Option<Spanned<Option<PushTriggerFile>>>,
    #[serde(default, deserialize_with = "present")]
    pub pull_request: Option<Spanned<Option<PullRequestTriggerFile>>>,
    #[serde(default, deserialize_with = "present")]
    pub manual: Option<Spanned<Option<ManualTriggerFile>>>,
    pub schedule: Option<Spanned<Vec<Spanned<ScheduleFile>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    pub cron: Spanned<String>,
    /// Default: the repo's default branch.
    pub branch: Option<Spanned<String>>,
}

/// `manual: {}` takes no key yet; it is a mapping so that keys can come.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualTriggerFile {}

/// Keeps a key written with no value (`push:`) apart from an absent key: serde would read
/// both as `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushTriggerFile {
    pub branches: Option<OneOrMany>,
    pub tags: Option<OneOrMany>,
    pub paths: Option<OneOrMany>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequestTriggerFile {
    pub branches: Option<OneOrMany>,
    pub paths: Option<OneOrMany>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageFile {
    pub name: Spanned<String>,
    pub image: Option<Spanned<String>>,
    pub run: Option<Spanned<String>>,
    pub build: Option<Spanned<BuildFile>>,
    pub validate: Option<Spanned<ValidateFile>>,
    pub bump: Option<Spanned<BumpFile>>,
    pub needs: Option<Vec<Spanned<String>>>,
    pub when: Option<Spanned<WhenFile>>,
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<Scalar>>,
    #[serde(default)]
    pub secrets: Vec<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub retries: Option<Spanned<u32>>,
    /// Axes whose combinations each become a stage of their own.
    pub matrix: Option<Spanned<MatrixFile>>,
    /// How many of a matrix's stages run at once.
    pub max_parallel: Option<Spanned<u32>>,
}

/// A stage's `matrix`: axes in the order written (the order of the expanded stages' names),
/// and combinations left out or added.
#[derive(Debug, Clone, Default)]
pub struct MatrixFile {
    pub axes: Vec<(String, Spanned<Vec<Spanned<Scalar>>>)>,
    /// Whole combinations added after the product (each names every axis).
    pub include: Vec<Spanned<BTreeMap<String, Spanned<Scalar>>>>,
    /// Partial combinations: every combination agreeing with one is left out.
    pub exclude: Vec<Spanned<BTreeMap<String, Spanned<Scalar>>>>,
}

impl<'de> Deserialize<'de> for MatrixFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MatrixVisitor;

        impl<'de> Visitor<'de> for MatrixVisitor {
            type Value = MatrixFile;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of axes to lists of values, with `include` and `exclude`")
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<MatrixFile, A::Error> {
                let mut matrix = MatrixFile::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "include" => matrix.include = map.next_value()?,
                        "exclude" => matrix.exclude = map.next_value()?,
                        _ => {
                            let values = map.next_value()?;
                            matrix.axes.push((key, values));
                        }
                    }
                }
                Ok(matrix)
            }
        }

        deserializer.deserialize_map(MatrixVisitor)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildFile {
    pub context: Option<Spanned<String>>,
    pub dockerfile: Option<Spanned<String>>,
    pub image: Spanned<String>,
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    #[serde(default)]
    pub args: BTreeMap<String, Spanned<Scalar>>,
    pub target: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<Scalar>>,
    pub push: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateFile {
    pub paths: OneOrMany,
    #[serde(default)]
    pub exclude: OneOrMany,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BumpFile {
    pub repo: Spanned<String>,
    pub branch: Option<Spanned<String>>,
    pub file: Spanned<String>,
    pub image: Option<Spanned<String>>,
    /// For Helm values: the key path of the tag, e.g. `image.tag` or `web.image.tag`.
    pub key: Option<Spanned<String>>,
    pub mode: Option<Spanned<BumpModeFile>>,
    pub pin: Option<Spanned<BumpPin>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BumpModeFile {
    Commit,
    PullRequest,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenFile {
    pub event: Option<OneOrMany>,
    pub branch: Option<OneOrMany>,
    pub tag: Option<OneOrMany>,
}

/// A list that may be written as one value: `branches: main` or `branches: [main, dev]`.
#[derive(Debug, Clone, Default)]
pub struct OneOrMany(pub Vec<Spanned<String>>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// One string, or a list whose items keep their own locations.
        enum Written {
            One(String),
            Many(Vec<Spanned<String>>),
        }

        struct WrittenVisitor;

        impl<'de> Visitor<'de> for WrittenVisitor {
            type Value = Written;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Written, E> {
                Ok(Written::One(value.to_owned()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Written, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    items.push(item);
                }
                Ok(Written::Many(items))
            }
        }

        impl<'de> Deserialize<'de> for Written {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(WrittenVisitor)
            }
        }

        let written = Spanned::<Written>::deserialize(deserializer)?;
        Ok(match written.value {
            Written::One(one) => {
                OneOrMany(vec![Spanned::new(one, written.referenced, written.defined)])
            }
            Written::Many(many) => OneOrMany(many),
        })
    }
}

/// A scalar read as text, so `PORT: 8080` and `DEBUG: true` work as env values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;

        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Scalar, E> {
                Ok(Scalar(value.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }
        }

        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// The reader's options for pipeline files.
fn yaml_options() -> Options {
    strict_yaml_options(MAX_DEPTH, MAX_ALIASES, MAX_EVENTS)
}

/// Options for reading YAML Gantry did not write: duplicate keys refused, and budgets that
/// stop deep nesting, alias bombs and huge documents early with an error instead of
/// memory and time.
pub(crate) fn strict_yaml_options(
    max_depth: usize,
    max_aliases: usize,
    max_events: usize,
) -> Options {
    let mut budget = Budget::default();
    budget.max_depth = max_depth;
    budget.max_aliases = max_aliases;
    budget.max_events = max_events;
    serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::Error,
        budget: Some(budget),
    }
}

/// Reads one pipeline file. Only the first syntax or shape error is found: a YAML reader
/// cannot go on meaningfully after one.
pub fn read(file: &str, text: &str) -> Result<PipelineFile, Diagnostic> {
    if text.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::new(
            file,
            1,
            1,
            format!(
                "file is {} bytes; pipeline files are limited to {MAX_FILE_BYTES}",
                text.len()
            ),
        ));
    }
    serde_saphyr::from_str_with_options(text, yaml_options())
        .map_err(|err| diagnostic_from_yaml_error(file, &err))
}

/// Turns a reader error into `file:line:col: message`, rewording the reader's terse
/// messages and suggesting the nearest key for an unknown one.
pub fn diagnostic_from_yaml_error(file: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = err
        .location()
        .map(|at| (at.line(), at.column()))
        .unwrap_or((1, 1));
    let plain = err.without_snippet().to_string();
    let message = match plain.rfind(" at line ") {
        Some(at) => &plain[..at],
        None => plain.as_str(),
    };
    Diagnostic::new(file, line, column, reword(message))
}

fn reword(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((key, expected)) = rest.split_once("`, expected one of ") {
            let known: Vec<&str> = expected.split(", ").map(|k| k.trim_matches('`')).collect();
            return match super::nearest(key, known.iter().copied()) {
                Some(near) => format!("unknown key `{key}`; did you mean `{near}`?"),
                None => format!("unknown key `{key}`; expected one of {}", known.join(", ")),
            };
        }
        if let Some((key, _)) = rest.split_once("`, there are no fields") {
            return format!("unknown key `{key}`: this mapping takes no keys");
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some((value, expected)) = rest.split_once("`, expected one of ") {
            return format!("unknown value `{value}`; expected one of {expected}");
        }
        if let Some((value, expected)) = rest.split_once("`, expected ") {
            return format!("unknown value `{value}`; expected {expected}");
        }
    }
    if let Some(key) = message.strip_prefix("missing field ") {
        return format!("missing key {key}");
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return format!("duplicate key `{key}`");
    }
    if let Some(breach) = message.strip_prefix("budget breached: ") {
        let limit = match breach.split([' ', '{']).next().unwrap_or_default() {
            "Aliases" => format!("more than {MAX_ALIASES} aliases (`*name`)"),
            "Depth" => format!("nested more than {MAX_DEPTH} levels deep"),
            "Events" => format!("more than {MAX_EVENTS} YAML nodes"),
            _ => format!("over a size limit ({breach})"),
        };
        return format!("refused: {limit}; such files are refused to bound memory and time");
    }
    match message {
        "invalid u32" => "expected a whole number of 0 or more".into(),
        "expected string scalar" => "expected a string".into(),
        other => other.to_owned(),
    }
}
