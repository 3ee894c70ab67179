//! The `storage-broker` command line. Each command's failure is one line on stderr and a
//! non-zero exit.

mod dev;
mod fetch;
mod service;
mod sign;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// storage-broker: authorization broker for Google Cloud Storage signed URLs.
#[derive(Debug, Parser)]
#[command(name = "storage-broker", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service (configuration from the environment; see the README).
    Serve,
    /// Run the whole stack locally: a throwaway PostgreSQL, a dev key and a dev token issuer.
    Dev(dev::DevArgs),
    /// Apply the database migrations to DATABASE_URL and exit.
    Migrate,
    /// Fetch signed download URLs for a prefix or a list of objects into an NDJSON manifest.
    FetchManifest(fetch::FetchManifestArgs),
    /// Work with policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Sign a GCS V4 URL offline and print it.
    SignUrl(sign::SignUrlArgs),
    /// Sign a GCS V4 POST policy for an HTML form upload and print {"url", "fields"} as JSON.
    SignPostPolicy(sign::SignPostPolicyArgs),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policies directory (roles.toml, classes.toml) and exit.
    Check {
        /// The directory.
        dir: std::path::PathBuf,
    },
}

/// Parses the process's arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("storage-broker: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve => service::serve(),
        Command::Migrate => service::migrate(),
        Command::Dev(args) => dev::dev(args),
        Command::FetchManifest(args) => fetch::fetch_manifest(args),
        Command::Policy(PolicyCommand::Check { dir }) => service::policy_check(&dir),
        Command::SignUrl(args) => sign::sign_url(args),
        Command::SignPostPolicy(args) => sign::sign_post_policy(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("storage-broker: {}", message.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
