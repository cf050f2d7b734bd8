use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gantry::config::Settings;
use gantry::startup::{Application, Role};

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
        #[arg(long, value_enum, default_value = "all")]
        role: RoleArg,
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
        #[arg(long, value_enum, default_value = "push")]
        event: EventArg,
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
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    All,
    Intake,
    Runner,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum EventArg {
    Push,
    PullRequest,
    Tag,
}

/// The config file read when `-c` is not given.
const DEFAULT_CONFIG_FILE: &str = "gantry.toml";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, role } => serve(
            config,
            match role {
                RoleArg::All => Role::All,
                RoleArg::Intake => Role::Intake,
                RoleArg::Runner => Role::Runner,
            },
        ),
        Command::Run {
            dir,
            pipeline,
            event,
            branch,
            sha,
        } => run_local(gantry::runner::local::LocalRun {
            dir,
            pipeline,
            trigger: match event {
                EventArg::Push => gantry::pipeline::Trigger::Push,
                EventArg::PullRequest => gantry::pipeline::Trigger::PullRequest,
                EventArg::Tag => gantry::pipeline::Trigger::Tag,
            },
            branch,
            sha,
        }),
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gantry: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
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

fn serve(config: Option<PathBuf>, role: Role) -> ExitCode {
    let settings = match load_settings(config) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    gantry::telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gantry: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
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
