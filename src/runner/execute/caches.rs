//! A pipeline's caches on the runner's engine: restored before its first stage, saved after
//! it succeeds, evicted least recently used first beyond `[runner] cache_max_size`.
//!
//! Every entry lives in one volume per engine and installation (`gantry-caches-…`), as
//! `REPO/SCOPE/KEY/entries/ID/` (`paths/N/` for each path, with `key`, `scope`, `created`
//! and a `done` marker written last) beside `REPO/SCOPE/KEY/current`, a file naming the
//! entry restores read, replaced by a rename once a save is whole: a reader sees the old
//! entry or the new one, never half of one, however many runs save the key at once. The
//! copying is done by short helper containers of the pipeline's first image, so a remote
//! engine's disk is used where the stages run and nothing crosses the network.
//!
//! Scopes keep branches apart: a run restores from its own scope, then its base's (the
//! default branch, or a pull request's base), and saves only into its own.

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::{Executor, Observer, PipelineJob};
use crate::config::RepoSettings;
use crate::domain::{CacheOutcome, GitRef, StageState, describe};
use crate::pipeline::cache;
use crate::runner::engine::{
    ContainerExit, ContainerSpec, DockerError, OutputStream, WORKSPACE_DIR,
};
use crate::store::CacheReport;
use crate::webhook::{Event, EventKind};

/// The start of the name of the volume that holds an installation's cache entries on an
/// engine. It carries no run's label, so the reaper leaves it; eviction bounds it.
pub const CACHE_VOLUME_PREFIX: &str = "gantry-caches";
/// The label of that volume, in place of a run's: the reaper leaves it.
pub const CACHE_LABEL: &str = "gantry.caches";
/// Where helpers see it.
const CACHES_DIR: &str = "/gantry-caches";
/// Where helpers see the volumes of cached absolute paths.
const PATHS_DIR: &str = "/gantry-cache-paths";
/// What a helper prints for Gantry to read.
const REPORT: &str = "gantry-cache:";

/// Where a run's caches live and which scopes it reads.
#[derive(Debug, Clone)]
pub struct CacheSetup {
    /// The volume of the entries (`gantry-caches-INSTALLATION`).
    pub volume: String,
    /// The repo (`github/acme/web`): each repo's caches are apart.
    pub repo: String,
    /// The run's own scope (`branch/main`, `pull/7`, `tag/v1`): where it saves.
    pub save: String,
    /// Where it restores from, in order: its own scope first.
    pub restore: Vec<String>,
    /// `[runner] cache_max_size`.
    pub max_bytes: u64,
}

impl CacheSetup {
    /// The scopes of a run for `event` of `repo`: a push saves into its branch's scope
    /// and falls back to the default branch's; a pull request saves into its own and falls
    /// back to its base branch's, then the default branch's; a tag saves into its own.
    pub fn for_event(
        volume: String,
        repo: &RepoSettings,
        event: &Event,
        max_bytes: u64,
    ) -> Option<Self> {
        let default = repo.default_branch_or(
            event
                .repo
                .as_ref()
                .and_then(|reported| reported.default_branch.as_deref()),
        );
        let branch = |name: &str| format!("branch/{name}");
        let (save, mut restore) = match &event.kind {
            EventKind::Push(push) => match &push.git_ref {
                GitRef::Branch(name) => (branch(name), vec![branch(name)]),
                GitRef::Tag(name) => (format!("tag/{name}"), vec![format!("tag/{name}")]),
            },
            EventKind::PullRequest(pr) => {
                let own = format!("pull/{}", pr.number);
                (own.clone(), vec![own, branch(&pr.base_ref)])
            }
            _ => return None,
        };
        restore.push(branch(default));
        restore.dedup();
        Some(Self {
            volume,
            repo: format!("{}/{}", repo.forge, repo.name.as_str().to_lowercase()),
            save,
            restore,
            max_bytes,
        })
    }
}

/// A folder name for any text: the first 16 hex digits of its SHA-256.
fn dir_name(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// Caches restored for one pipeline, waiting for the pipeline's end.
pub(super) struct Restored {
    /// Volumes of absolute paths, mounted in each `run` stage: (volume, path).
    pub mounts: Vec<(String, String)>,
    /// One per cache: its report so far, and where its paths are in a helper.
    entries: Vec<(CacheReport, Vec<String>)>,
    image: Option<String>,
}

const RESTORE: &str = r#"
entry_of() {
  [ -f "$1/current" ] || return 1
  e="$1/entries/$(cat "$1/current")"
  [ -f "$e/done" ] || return 1
  echo "$e"
}
found=""; how=""
for scope in $SCOPES; do
  if e=$(entry_of "$ROOT/$scope/$KEY_DIR"); then found="$e"; how=hit; printf '%s' "$NOW" > "$ROOT/$scope/$KEY_DIR/used"; break; fi
done
i=0
while [ -z "$found" ] && [ "$i" -lt "$PREFIX_COUNT" ]; do
  eval "prefix=\$PREFIX_$i"
  for scope in $SCOPES; do
    best=""; best_at=0; best_dir=""
    for d in "$ROOT/$scope"/*; do
      e=$(entry_of "$d") || continue
      k=$(cat "$e/key")
      case "$k" in
        "$prefix"*) at=$(cat "$e/created"); if [ "$at" -gt "$best_at" ]; then best="$e"; best_at="$at"; best_dir="$d"; fi ;;
      esac
    done
    if [ -n "$best" ]; then found="$best"; how=restored; printf '%s' "$NOW" > "$best_dir/used"; break; fi
  done
  i=$((i+1))
done
if [ -z "$found" ]; then echo "gantry-cache: miss"; exit 0; fi
j=0
while [ "$j" -lt "$TARGET_COUNT" ]; do
  eval "target=\$TARGET_$j"
  if [ -d "$found/paths/$j" ]; then mkdir -p "$target"; cp -a "$found/paths/$j/." "$target/"; fi
  j=$((j+1))
done
echo "gantry-cache: key $(cat "$found/key")"
echo "gantry-cache: scope $(cat "$found/scope")"
echo "gantry-cache: $how $(du -sk "$found/paths" | cut -f1)"
"#;

const SAVE: &str = r#"
dir="$ROOT/$SCOPE_DIR/$KEY_DIR"
id="$NOW-$NONCE"
e="$dir/entries/$id"
mkdir -p "$e/paths"
j=0
while [ "$j" -lt "$TARGET_COUNT" ]; do
  eval "target=\$TARGET_$j"
  if [ -d "$target" ]; then mkdir -p "$e/paths/$j"; cp -a "$target/." "$e/paths/$j/"; fi
  j=$((j+1))
done
printf '%s' "$KEY" > "$e/key"
printf '%s' "$SCOPE" > "$e/scope"
printf '%s' "$NOW" > "$e/created"
: > "$e/done"
printf '%s' "$id" > "$dir/current.$NONCE"
mv -f "$dir/current.$NONCE" "$dir/current"
printf '%s' "$NOW" > "$dir/used"
current=$(cat "$dir/current")
for old in "$dir/entries"/*; do
  name=${old##*/}
  if [ "$name" != "$id" ] && [ "$name" != "$current" ]; then
    find "$old" -maxdepth 0 -mmin +60 -exec rm -rf {} \;
  fi
done
echo "gantry-cache: saved $(du -sk "$e/paths" | cut -f1)"
"#;

/// Each key folder of every repo: its size in KiB, when it was last used (ms), its path.
const LIST: &str = r#"
for d in "$CACHES"/*/*/*; do
  [ -d "$d/entries" ] || continue
  used=$(cat "$d/used" 2>/dev/null || echo 0)
  echo "gantry-cache: $(du -sk "$d" | cut -f1) $used $d"
done
"#;

impl Executor {
    /// Restores each cache of the pipeline (reported as it goes) into the workspace and
    /// into volumes for its absolute paths. A cache that cannot be restored is a miss: the
    /// stages run all the same.
    pub(super) async fn restore_caches(
        &self,
        job: &PipelineJob,
        volume: &str,
        labels: &[(String, String)],
        observer: &Arc<dyn Observer>,
    ) -> Restored {
        let mut restored = Restored {
            mounts: Vec::new(),
            entries: Vec::new(),
            image: helper_image(job),
        };
        let (Some(setup), Some(image)) = (&job.cache, restored.image.clone()) else {
            return restored;
        };
        if job.plan.caches.is_empty() {
            return restored;
        }
        let own_label = [(CACHE_LABEL.to_owned(), setup.volume.clone())];
        if let Err(err) = self.engine.create_volume(&setup.volume, &own_label).await {
            tracing::warn!(error = %describe(&err), "the cache volume could not be created");
            return restored;
        }
        for (index, spec) in job.plan.caches.iter().enumerate() {
            let started = Instant::now();
            let key = cache::resolve(&spec.key, &job.checkout).unwrap_or_else(|_| spec.key.clone());
            let prefixes: Vec<String> = spec
                .restore_keys
                .iter()
                .map(|k| cache::resolve(k, &job.checkout).unwrap_or_else(|_| k.clone()))
                .collect();
            let mut targets = Vec::with_capacity(spec.paths.len());
            for (position, path) in spec.paths.iter().enumerate() {
                // An absolute path into the checkout is a path of the checkout.
                let path = match path.strip_prefix(&format!("{WORKSPACE_DIR}/")) {
                    Some(inside) => inside,
                    None => path,
                };
                if path.starts_with('/') {
                    let path_volume = format!("{volume}-cache-{index}-{position}");
                    if let Err(err) = self.engine.create_volume(&path_volume, labels).await {
                        tracing::warn!(error = %describe(&err), "a cache path volume could not be created");
                        continue;
                    }
                    restored.mounts.push((path_volume.clone(), path.to_owned()));
                    targets.push(format!("{PATHS_DIR}/{}", restored.mounts.len() - 1));
                } else {
                    targets.push(format!("{WORKSPACE_DIR}/{path}"));
                }
            }
            let mut env = vec![
                (
                    "ROOT".to_owned(),
                    format!("{CACHES_DIR}/{}", dir_name(&setup.repo)),
                ),
                (
                    "SCOPES".to_owned(),
                    setup
                        .restore
                        .iter()
                        .map(|scope| dir_name(scope))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                ("KEY_DIR".to_owned(), dir_name(&key)),
                (
                    "NOW".to_owned(),
                    chrono::Utc::now().timestamp_millis().to_string(),
                ),
            ];
            indexed(&mut env, "PREFIX", &prefixes);
            indexed(&mut env, "TARGET", &targets);
            let answer = self
                .helper(
                    job,
                    &image,
                    volume,
                    labels,
                    &restored.mounts,
                    "restore",
                    index,
                    RESTORE,
                    env,
                )
                .await;
            let mut report = CacheReport {
                pipeline: job.plan.pipeline.clone(),
                key: key.clone(),
                outcome: CacheOutcome::Miss,
                source_key: None,
                source_scope: None,
                restored_bytes: None,
                restore_seconds: 0.0,
                saved: None,
                saved_bytes: None,
                save_seconds: None,
            };
            match answer {
                Ok(lines) => {
                    for line in &lines {
                        match line.split_once(' ') {
                            Some(("key", rest)) => report.source_key = Some(rest.to_owned()),
                            Some(("scope", rest)) => report.source_scope = Some(rest.to_owned()),
                            Some((how @ ("hit" | "restored"), size)) => {
                                report.outcome = if how == "hit" {
                                    CacheOutcome::Hit
                                } else {
                                    CacheOutcome::Restored
                                };
                                report.restored_bytes =
                                    size.trim().parse::<i64>().ok().map(|kib| kib * 1024);
                            }
                            _ => {}
                        }
                    }
                }
                Err(message) => {
                    tracing::warn!(cache = %key, error = %message, "restoring a cache failed");
                }
            }
            report.restore_seconds = started.elapsed().as_secs_f64();
            observer.cache_report(&report);
            restored.entries.push((report, targets));
        }
        restored
    }

    /// Saves each cache the pipeline restored under another key or missed, once the
    /// pipeline succeeded, into the run's own scope; then evicts beyond the size cap and
    /// removes the path volumes.
    pub(super) async fn save_caches(
        &self,
        job: &PipelineJob,
        volume: &str,
        labels: &[(String, String)],
        restored: Restored,
        state: StageState,
        observer: &Arc<dyn Observer>,
    ) {
        let Restored {
            mounts,
            entries,
            image,
        } = restored;
        let mut saved_any = false;
        if let (Some(setup), Some(image)) = (&job.cache, image) {
            for (index, (mut report, targets)) in entries.into_iter().enumerate() {
                let started = Instant::now();
                if !state.is_done_ok() {
                    report.saved = Some(format!("not saved: the pipeline ended {state}"));
                } else if report.outcome == CacheOutcome::Hit {
                    report.saved = Some("not saved: restored under its own key".into());
                } else {
                    let mut env = vec![
                        (
                            "ROOT".to_owned(),
                            format!("{CACHES_DIR}/{}", dir_name(&setup.repo)),
                        ),
                        ("SCOPE_DIR".to_owned(), dir_name(&setup.save)),
                        ("SCOPE".to_owned(), setup.save.clone()),
                        ("KEY_DIR".to_owned(), dir_name(&report.key)),
                        ("KEY".to_owned(), report.key.clone()),
                        (
                            "NOW".to_owned(),
                            chrono::Utc::now().timestamp_millis().to_string(),
                        ),
                        (
                            "NONCE".to_owned(),
                            uuid::Uuid::new_v4().simple().to_string(),
                        ),
                    ];
                    indexed(&mut env, "TARGET", &targets);
                    match self
                        .helper(
                            job, &image, volume, labels, &mounts, "save", index, SAVE, env,
                        )
                        .await
                    {
                        Ok(lines) => {
                            let size = lines.iter().find_map(|line| line.strip_prefix("saved "));
                            report.saved_bytes = size
                                .and_then(|kib| kib.trim().parse::<i64>().ok())
                                .map(|kib| kib * 1024);
                            report.saved = Some("saved".into());
                            saved_any = true;
                        }
                        Err(message) => report.saved = Some(format!("not saved: {message}")),
                    }
                    report.save_seconds = Some(started.elapsed().as_secs_f64());
                }
                observer.cache_report(&report);
            }
            if saved_any {
                self.evict(job, &image, volume, labels, setup.max_bytes)
                    .await;
            }
        }
        for (path_volume, _) in &mounts {
            self.engine.remove_volume(path_volume).await;
        }
    }

    /// Removes key folders, least recently used first, until all caches on this engine
    /// fit in `max_bytes`.
    async fn evict(
        &self,
        job: &PipelineJob,
        image: &str,
        volume: &str,
        labels: &[(String, String)],
        max_bytes: u64,
    ) {
        let env = vec![("CACHES".to_owned(), CACHES_DIR.to_owned())];
        let listed = match self
            .helper(job, image, volume, labels, &[], "list", 0, LIST, env)
            .await
        {
            Ok(lines) => lines,
            Err(message) => {
                tracing::warn!(error = %message, "listing caches failed");
                return;
            }
        };
        let mut folders: Vec<(u64, i64, String)> = listed
            .iter()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ' ');
                let kib = parts.next()?.parse::<u64>().ok()?;
                let used = parts.next()?.parse::<i64>().ok()?;
                Some((kib * 1024, used, parts.next()?.to_owned()))
            })
            .collect();
        let mut total: u64 = folders.iter().map(|(bytes, ..)| bytes).sum();
        if total <= max_bytes {
            return;
        }
        folders.sort_by_key(|(_, used, _)| *used);
        let mut victims = Vec::new();
        for (bytes, _, path) in folders {
            if total <= max_bytes {
                break;
            }
            total -= bytes;
            victims.push(path);
        }
        tracing::info!(
            evicted = victims.len(),
            "evicting least recently used caches"
        );
        let mut env = Vec::new();
        indexed(&mut env, "VICTIM", &victims);
        let script = r#"
i=0
while [ "$i" -lt "$VICTIM_COUNT" ]; do eval "victim=\$VICTIM_$i"; rm -rf "$victim"; i=$((i+1)); done
echo "gantry-cache: evicted $VICTIM_COUNT"
"#;
        if let Err(message) = self
            .helper(job, image, volume, labels, &[], "evict", 0, script, env)
            .await
        {
            tracing::warn!(error = %message, "evicting caches failed");
        }
    }

    /// Runs `script` in a helper container with the workspace, the cache volume and the
    /// path volumes; returns what it reported (its `gantry-cache:` lines, prefix removed).
    #[allow(clippy::too_many_arguments)]
    async fn helper(
        &self,
        job: &PipelineJob,
        image: &str,
        volume: &str,
        labels: &[(String, String)],
        mounts: &[(String, String)],
        what: &str,
        index: usize,
        script: &str,
        env: Vec<(String, String)>,
    ) -> Result<Vec<String>, String> {
        let Some(setup) = &job.cache else {
            return Err("the run has no cache volume".into());
        };
        let mut all_mounts = vec![(setup.volume.clone(), CACHES_DIR.to_owned())];
        all_mounts.extend(
            mounts
                .iter()
                .enumerate()
                .map(|(position, (path_volume, _))| {
                    (path_volume.clone(), format!("{PATHS_DIR}/{position}"))
                }),
        );
        let spec = ContainerSpec {
            name: format!("{volume}-cache-{what}-{index}"),
            image: image.to_owned(),
            script: script.to_owned(),
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            labels: labels.to_vec(),
            volume: volume.to_owned(),
            timeout: self.settings.stage_timeout,
            memory_bytes: None,
            nano_cpus: None,
            trusted: false,
            network: None,
            mounts: all_mounts,
        };
        let mut output = Vec::new();
        let exit = self
            .engine
            .run_container(&spec, &job.cancel, |_: OutputStream, bytes: &[u8]| {
                if output.len() < 64 * 1024 {
                    output.extend_from_slice(bytes);
                }
            })
            .await
            .map_err(|err: DockerError| describe(&err))?;
        let text = String::from_utf8_lossy(&output);
        match exit {
            ContainerExit::Exited(0) => Ok(text
                .lines()
                .filter_map(|line| line.strip_prefix(REPORT).map(|rest| rest.trim().to_owned()))
                .collect()),
            other => Err(format!(
                "the {what} helper ended {other:?}: {}",
                text.lines().last().unwrap_or_default()
            )),
        }
    }
}

/// `NAME_COUNT` and `NAME_0`… for a list a helper's shell reads.
fn indexed(env: &mut Vec<(String, String)>, name: &str, values: &[String]) {
    env.push((format!("{name}_COUNT"), values.len().to_string()));
    for (index, value) in values.iter().enumerate() {
        env.push((format!("{name}_{index}"), value.clone()));
    }
}

/// The image helpers run in: the first image of a `run` stage that runs (already pulled).
fn helper_image(job: &PipelineJob) -> Option<String> {
    job.plan
        .stages
        .iter()
        .find_map(|stage| match (&stage.skipped, &stage.action) {
            (None, crate::pipeline::StageAction::Run { image, .. }) => Some(image.clone()),
            _ => None,
        })
}
