//! The `vmscrub` command: argument parsing and one function per verb. Everything
//! else lives in the library so it can be tested without a process.

use clap::{Parser, Subcommand};

use vmscrub::exit;

/// Offline disk-image sanitizer: opens raw, qcow2 and VMDK images without booting
/// them, finds secrets and per-instance state, and writes a cleaned copy plus an
/// encrypted recovery archive of everything removed. The input is never modified.
#[derive(Parser, Debug)]
#[command(name = "vmscrub", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(about = vmscrub::inspect::ABOUT, long_about = vmscrub::inspect::LONG_ABOUT)]
    Inspect(vmscrub::inspect::InspectArgs),
    #[command(about = vmscrub::convert::ABOUT, long_about = vmscrub::convert::LONG_ABOUT)]
    Convert(vmscrub::convert::ConvertArgs),
}

fn main() {
    let cli = Cli::parse();
    let result: anyhow::Result<i32> = match cli.command {
        Command::Inspect(args) => vmscrub::inspect::run(&args),
        Command::Convert(args) => vmscrub::convert::run(&args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("vmscrub: error: {e:#}");
            std::process::exit(exit::ERROR);
        }
    }
}
