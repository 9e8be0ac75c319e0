//! The `portcullis` command: run, check and demo the gateway.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

mod demo;
mod usage_cli;

/// The demo configuration, embedded so `portcullis demo` works from any directory.
const DEMO_YAML: &str = include_str!("../../../examples/demo.yaml");

mod admin_cli;

#[derive(Parser)]
#[command(name = "portcullis", version, about = "An API security gateway", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a configuration file.
    Run {
        /// The YAML configuration file.
        #[arg(short, long, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
        /// Log format on stderr (the access log has its own target).
        #[arg(long, value_enum, default_value_t = LogFormat::Json)]
        log_format: LogFormat,
    },
    /// Validate a configuration file and everything it references; print every error.
    Check {
        /// The YAML configuration file.
        #[arg(short, long, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
    },
    /// Start the sample CRM API and the gateway in front of it, with the embedded demo config.
    Demo {
        /// Gateway listener address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin listener address.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
        /// Log format on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Where the demo keeps its database, secrets and the file of issued keys (recreated on
        /// every run).
        #[arg(long, default_value = ".portcullis-demo")]
        data_dir: PathBuf,
    },
    /// Print the JSON Schema of the configuration file (for editors).
    ConfigSchema,
    /// Report requests served per consumer and route over a month or a day (from the store).
    Usage {
        /// The YAML configuration file (its `identity.store` holds the usage).
        #[arg(short, long, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
        /// `YYYY-MM` or `YYYY-MM-DD`.
        #[arg(long)]
        period: String,
        /// Only this consumer (id).
        #[arg(long)]
        consumer: Option<String>,
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = usage_cli::UsageFormat::Csv)]
        format: usage_cli::UsageFormat,
    },
    /// Run only the sample CRM API (the demo's upstream; used by benchmarks).
    SampleApi {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Append every request received (method, path, query, headers without credentials,
        /// body in base64) to this file as JSON lines. For tests and fuzzing only.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
    },
    #[command(flatten)]
    Admin(admin_cli::AdminCommand),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Admin(cmd) => admin_cli::main(cmd),
        // An invalid config is a usage error (exit 2), for `run` as for `check`.
        Command::Run { config, .. } if portcullis_config::load(&config).is_err() => check(&config),
        Command::ConfigSchema => {
            println!("{:#}", portcullis_config::json_schema());
            ExitCode::SUCCESS
        }
        command => match runtime().and_then(|rt| rt.block_on(async_main(command))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // The gateway runs its own worker threads, one event loop each; this loop only carries the
    // admin listener, config watching, signals and (for `demo`) the sample API.
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn check(path: &Path) -> ExitCode {
    match portcullis_config::load(path) {
        Ok(config) => {
            for w in &config.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "ok: {} is valid ({} listener(s), {} upstream(s), {} route(s), {} warning(s))",
                path.display(),
                config.listeners.len(),
                config.upstreams.len(),
                config.routes.len(),
                config.warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("error: {} is not valid", path.display());
            eprint!("{errors}");
            ExitCode::from(2)
        }
    }
}

async fn async_main(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Admin(_) => Ok(()),
        Command::Run { config, log_format } => {
            init_logging(log_format);
            let cfg = portcullis_config::load(&config)
                .map_err(|e| anyhow::anyhow!("{} is not valid\n{e}", config.display()))?;
            for w in &cfg.warnings {
                tracing::warn!(warning = %w, "risky configuration");
            }
            let admin_bind = cfg.admin_bind;
            let opts = portcullis_proxy::GatewayOptions { config_path: Some(config.clone()), ..Default::default() };
            let gateway = portcullis_proxy::Gateway::start(cfg, opts).await?;
            let admin = portcullis_admin::AdminServer::start(admin_bind, gateway.handle())
                .await
                .with_context(|| format!("cannot bind the admin listener on {admin_bind}"))?;
            let _watch = gateway.handle().watch_config().context("cannot watch the configuration for changes")?;
            tracing::info!(admin = %admin.addr(), "admin listener started");
            gateway.wait_for_shutdown_signal().await;
            tracing::info!("shutting down");
            gateway.shutdown(Duration::from_secs(10)).await;
            Ok(())
        }
        Command::Demo { listen, admin, log_format, data_dir } => demo::demo(listen, admin, data_dir, log_format).await,
        Command::SampleApi { listen, record } => {
            init_logging(LogFormat::Text);
            let listener =
                tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot bind {listen}"))?;
            eprintln!("sample API listening on http://{}", listener.local_addr()?);
            match record {
                Some(path) => {
                    let recorder = portcullis_sample::Recorder::create(&path)
                        .with_context(|| format!("cannot create the recording {}", path.display()))?;
                    eprintln!("recording every request to {}", path.display());
                    portcullis_sample::serve_recording(listener, recorder).await?;
                }
                None => portcullis_sample::serve(listener).await?,
            }
            Ok(())
        }
        Command::Usage { config, period, consumer, route, format } => {
            usage_cli::usage(&config, period, consumer, route, format).await
        }
        Command::Check { .. } | Command::ConfigSchema => Ok(()),
    }
}
