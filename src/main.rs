use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gantry::config::Settings;
use gantry::startup::Application;

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
    },
}

/// The config file read when `-c` is not given.
const DEFAULT_CONFIG_FILE: &str = "gantry.toml";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
    }
}

fn serve(config: Option<PathBuf>) -> ExitCode {
    // An explicit `-c` must exist; the default file is optional.
    let path = config.or_else(|| {
        let default = PathBuf::from(DEFAULT_CONFIG_FILE);
        default.exists().then_some(default)
    });
    let settings = match Settings::load(path.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("gantry: {err}");
            return ExitCode::from(2);
        }
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
        let app = Application::build(settings).await?;
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
