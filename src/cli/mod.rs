//! The `storage-broker` command line. Each command's failure is one line on stderr and a
//! non-zero exit.

mod audit;
mod credentials;
mod dev;
mod fetch;
mod service;
mod sign;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
    /// Get short-lived credentials for a bucket prefix and print them for a tool (AWS
    /// credential_process, environment, token JSON), or serve them on a local token endpoint.
    Credentials(credentials::CredentialsArgs),
    /// Work with policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The audit's housekeeping: partitions ahead, exports of closed days, retention.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
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

/// The parser: [`Cli`], except that a missing subcommand is an error naming the subcommands
/// rather than the whole help text.
fn command() -> clap::Command {
    let mut command = Cli::command().arg_required_else_help(false);
    let nested: Vec<String> = command
        .get_subcommands()
        .filter(|c| c.is_arg_required_else_help_set())
        .map(|c| c.get_name().to_owned())
        .collect();
    for name in nested {
        command = command.mut_subcommand(name, |c| c.arg_required_else_help(false));
    }
    command
}

/// A clap error in one line: the problem and its details (the missing flags, the subcommands,
/// the possible values, a tip), without the usage and "For more information" lines.
fn one_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let mut lines = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let headline = lines
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ");
    let (listed, notes): (Vec<&str>, Vec<&str>) = lines
        .map(|l| l.trim_start_matches('[').trim_end_matches(']'))
        .partition(|l| !l.contains(": "));
    let mut message = match headline.strip_suffix(':') {
        Some(head) if !listed.is_empty() => format!("{head}: {}", listed.join(", ")),
        _ if !listed.is_empty() => format!("{headline} {}", listed.join(", ")),
        _ => headline.trim_end_matches(':').to_owned(),
    };
    if !notes.is_empty() {
        message = format!("{message} ({})", notes.join("; "));
    }
    message
}

/// The async runtime a command runs its work on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    crate::signer::start_batch_pool();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Parses the process's arguments and runs the command.
pub fn main() -> ExitCode {
    let parsed = command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("storage-broker: {}", one_line(&err));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve => service::serve(),
        Command::Migrate => service::migrate(),
        Command::Dev(args) => dev::dev(args),
        Command::FetchManifest(args) => fetch::fetch_manifest(args),
        Command::Credentials(args) => credentials::credentials(args),
        Command::Policy(PolicyCommand::Check { dir }) => service::policy_check(&dir),
        Command::Audit(command) => audit::audit(command),
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
