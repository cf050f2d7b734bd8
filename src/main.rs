use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gantry::config::Settings;
use gantry::domain::{Forge, Trigger};
use gantry::startup::{Application, Role};

/// jemalloc instead of glibc's allocator: a burst of thousands of connections (a slow-body
/// attack) leaves glibc's per-thread arenas pinned by the few objects that outlive it, so
/// resident memory stays tens of MiB above idle; jemalloc keeps small objects in size-class
/// slabs and its background thread hands freed pages back within about a second.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start; `_RJEM_MALLOC_CONF` in the environment overrides
/// them, and an option jemalloc does not know stops the process at once (`abort_conf`)
/// rather than being ignored with a line on stderr.
///
/// - `background_thread`, `dirty_decay_ms:1000`, `muzzy_decay_ms:0`: freed pages go back to
///   the kernel about a second after they were freed, from a thread of jemalloc's own.
/// - `narenas:1`, `tcache:false`: each arena and each thread's cache keeps partly used
///   slabs of its own, which a burst leaves behind in all of them; Gantry's few threads have
///   little contention to spread. The cost is about 6% of intake throughput.
/// - `slab_sizes`: actix-web gives each connection two 8 KiB buffers (a third one of 10 KiB
///   when it reads more) and each request 2 and 3 KiB objects. jemalloc's default slabs hold
///   one to four of these, and it never returns the bookkeeping of a slab it once made, so
///   thousands of connections held open at once left megabytes of it behind. Each entry's
///   last number is pages per slab: with 4 KiB pages, 16 to 32 objects, a tenth as many
///   slabs.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"abort_conf:true,background_thread:true,dirty_decay_ms:1000,\
muzzy_decay_ms:0,narenas:1,tcache:false,\
slab_sizes:2048-2048:16|3072-3072:24|8192-8192:32|10240-10240:40\0";

/// Forge webhooks in, pipeline runs in Docker, image tags handed to GitOps.
#[derive(Parser)]
#[command(name = "gantry", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: webhook intake, API, metrics.
    Serve {
        /// Config file; when it does not exist and was not named, embedded defaults apply.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// `intake`: webhooks and API, runs nothing; `runner`: works the queue only.
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Run a local checkout's pipelines now, in Docker.
    Run {
        /// The checkout; its pipelines are in `.gantry/`.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Run only this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// The event to run for.
        #[arg(long, value_enum, default_value_t = Trigger::Push)]
        event: Trigger,
        /// Branch (or tag, with `--event tag`); default: the checkout's branch.
        #[arg(long)]
        branch: Option<String>,
        /// Commit id; default: the checkout's HEAD.
        #[arg(long)]
        sha: Option<String>,
    },
    /// Check pipeline files; each error as `file:line:col: message`.
    Validate {
        /// Files to check; default: `.gantry/*.yml` and `.gantry/*.yaml` here.
        files: Vec<PathBuf>,
        /// Print the JSON Schema of the pipeline format instead.
        #[arg(long, conflicts_with = "files")]
        schema: bool,
    },
    /// Write an image into a config repo: edit, commit, push (or open a pull request).
    Bump {
        /// The config repo: a clone URL or a local path.
        #[arg(long)]
        repo: String,
        /// The file to edit, relative to the repo's root.
        #[arg(long)]
        file: String,
        /// The image's name, without tag or digest.
        #[arg(long)]
        image: String,
        /// The new tag.
        #[arg(long, required_unless_present = "digest")]
        tag: Option<String>,
        /// The new digest (`sha256:…`); with `--tag`, both are pinned (`tag@digest`).
        #[arg(long)]
        digest: Option<String>,
        /// The branch to commit to (or to open the pull request against).
        #[arg(long, default_value = "main")]
        branch: String,
        /// A Helm key path (`web.image.tag`) or Kustomize image `name` to edit.
        #[arg(long)]
        key: Option<String>,
        /// Open (or update) a pull request instead of pushing to the branch.
        #[arg(long)]
        pull_request: bool,
        /// The forge that hosts the repo, for `--pull-request` (default: `[gitops] forge`).
        #[arg(long, value_enum)]
        forge: Option<Forge>,
        /// Config file with `[gitops]` (author, credentials) and forge tokens.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
    /// Remove now what `[store] keep_*` let go, or with `--dry-run` list it.
    Prune {
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The config file read when `-c` is not given.
const DEFAULT_CONFIG_FILE: &str = "gantry.toml";

fn main() -> ExitCode {
    gantry::memory::use_one_c_arena();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, role } => serve(config, role),
        Command::Run {
            dir,
            pipeline,
            event,
            branch,
            sha,
        } => run_local(gantry::runner::local::LocalRun {
            dir,
            pipeline,
            trigger: event,
            branch,
            sha,
        }),
        Command::Bump {
            repo,
            file,
            image,
            tag,
            digest,
            branch,
            key,
            pull_request,
            forge,
            config,
        } => {
            let request = gantry::gitops::bump::BumpRequest {
                repo: gantry::gitops::bump::ConfigRepo {
                    url: local_path_or_url(&repo),
                    branch,
                },
                file,
                new: gantry::gitops::edit::NewImage {
                    image,
                    tag,
                    digest,
                    key,
                },
                mode: if pull_request {
                    gantry::pipeline::BumpMode::PullRequest
                } else {
                    gantry::pipeline::BumpMode::Commit
                },
                forge,
                source: None,
            };
            bump(config, request)
        }
        Command::Prune { config, dry_run } => prune(config, dry_run),
        Command::Validate { files, schema } => {
            if schema {
                println!("{:#}", gantry::pipeline::schema::json_schema());
                ExitCode::SUCCESS
            } else {
                validate(files)
            }
        }
    }
}

/// The folder `gantry validate` checks when given no files.
const DEFAULT_PIPELINE_DIR: &str = ".gantry";

fn validate(files: Vec<PathBuf>) -> ExitCode {
    let loaded = if files.is_empty() {
        match gantry::pipeline::load_dir(
            std::path::Path::new(DEFAULT_PIPELINE_DIR),
            DEFAULT_PIPELINE_DIR,
        ) {
            Ok(loaded) if loaded.is_empty() => {
                eprintln!("gantry: no *.yml or *.yaml files in {DEFAULT_PIPELINE_DIR}/");
                return ExitCode::FAILURE;
            }
            Ok(loaded) => loaded,
            Err(err) => {
                eprintln!("gantry: reading {DEFAULT_PIPELINE_DIR}/: {err}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        files
            .iter()
            .map(|path| {
                let file = path.display().to_string();
                gantry::pipeline::Loaded {
                    result: gantry::pipeline::load_file(path, &file),
                    file,
                }
            })
            .collect()
    };
    let mut errors = 0;
    for entry in &loaded {
        if let Err(diagnostics) = &entry.result {
            for diagnostic in diagnostics {
                println!("{diagnostic}");
                errors += 1;
            }
        }
    }
    let files = loaded.len();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    eprintln!(
        "{} checked, {}",
        plural(files, "file"),
        plural(errors, "error")
    );
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The async runtime every command but `validate` runs on.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|err| {
        eprintln!("gantry: starting the async runtime: {err}");
        ExitCode::FAILURE
    })
}

/// Loads the config: an explicit `-c` must exist; the default file is optional.
fn load_settings(config: Option<PathBuf>) -> Result<Settings, ExitCode> {
    let path = config.or_else(|| {
        let default = PathBuf::from(DEFAULT_CONFIG_FILE);
        default.exists().then_some(default)
    });
    Settings::load(path.as_deref()).map_err(|err| {
        eprintln!("gantry: {err}");
        ExitCode::from(2)
    })
}

fn run_local(request: gantry::runner::local::LocalRun) -> ExitCode {
    let settings = match load_settings(None) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    gantry::telemetry::init(&gantry::config::LogSettings {
        filter: "warn".into(),
        ..settings.log.clone()
    });
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(gantry::runner::local::run(
        request,
        settings.runner,
        settings.registries,
    )) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("gantry: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// A repo given as a folder becomes its absolute path, so git finds it from anywhere.
fn local_path_or_url(repo: &str) -> String {
    let path = std::path::Path::new(repo);
    if !repo.contains("://")
        && path.exists()
        && let Ok(absolute) = path.canonicalize()
    {
        return absolute.display().to_string();
    }
    repo.to_owned()
}

fn bump(config: Option<PathBuf>, mut request: gantry::gitops::bump::BumpRequest) -> ExitCode {
    let settings = match load_settings(config) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    request.forge = request.forge.or(settings.gitops.forge);
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let author = gantry::gitops::bump::Author::parse(&settings.gitops.author)?;
        let forges = gantry::forge::Forges::from_settings(&settings)?;
        let bumper = gantry::gitops::bump::Bumper::new(
            author,
            gantry::git::GitAuth::for_config_repos(&settings.gitops),
        )
        .with_forges(forges);
        anyhow::Ok(bumper.bump(request).await?)
    });
    match result {
        Ok(outcome) => {
            for line in outcome.bumped.change_lines() {
                println!("{line}");
            }
            println!("{}", outcome.bumped.summary());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("gantry: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn prune(config: Option<PathBuf>, dry_run: bool) -> ExitCode {
    use gantry::housekeeping;
    let settings = match load_settings(config) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let retention = housekeeping::retention(&settings.store);
    let result = runtime.block_on(async {
        let store = gantry::store::Store::connect(&settings.store.url).await?;
        if dry_run {
            let (runs, logs) = housekeeping::planned(&store, &retention).await?;
            for run in &runs {
                println!(
                    "run {} {} {} {}: would be removed",
                    run.id, run.repo, run.git_ref, run.created_at
                );
            }
            for run in &logs {
                println!(
                    "run {} {} {} {}: its log would be removed",
                    run.id, run.repo, run.git_ref, run.created_at
                );
            }
            println!(
                "{} runs and the logs of {} more would be removed",
                runs.len(),
                logs.len()
            );
        } else {
            let pruned = housekeeping::prune(&store, &retention, None).await?;
            println!(
                "removed {} runs and the logs of {} more",
                pruned.runs, pruned.logs
            );
        }
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gantry: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Option<PathBuf>, role: Role) -> ExitCode {
    let settings = match load_settings(config) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    gantry::telemetry::init(&settings.log);
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let app = Application::build(settings, role).await?;
        app.run().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("gantry: {err:#}");
            ExitCode::FAILURE
        }
    }
}
