//! The pcef-sim command line.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use diameter_codec::ValidateOptions;
use pcef_sim::decode::{Format, render_with};
use std::io::Read;
use std::path::PathBuf;

/// The EPC test client of the Diameter policy and charging stack.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode Diameter messages and print them with dictionary names.
    ///
    /// The input is hex text (whitespace, 0x prefixes and # comments are ignored) or raw
    /// bytes; several messages may follow each other. Each message is also validated
    /// against the dictionaries and the Result-Code a server would answer is shown; a
    /// message accepted with deviations (grammar inside Grouped AVPs, M bits) lists them.
    ///
    /// Example: pcef-sim decode diameter-codec/tests/vectors/gy_ccr_u.hex
    Decode {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Validate at the strict level: every deviation (grammar at every depth, M bits)
        /// rejects, as a server configured strict would answer.
        #[arg(long)]
        strict: bool,
        /// File to read; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode {
            format,
            strict,
            file,
        } => {
            let mut input = Vec::new();
            match file.as_deref() {
                None => std::io::stdin()
                    .read_to_end(&mut input)
                    .context("reading standard input")?,
                Some(p) if p.as_os_str() == "-" => std::io::stdin()
                    .read_to_end(&mut input)
                    .context("reading standard input")?,
                Some(p) => {
                    input = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                    input.len()
                }
            };
            let format = match format {
                OutputFormat::Text => Format::Text,
                OutputFormat::Json => Format::Json,
            };
            let opts = if strict {
                ValidateOptions::strict()
            } else {
                ValidateOptions::default()
            };
            print!("{}", render_with(&input, format, opts));
        }
    }
    Ok(())
}
