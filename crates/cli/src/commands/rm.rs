//! `minibar rm`: delete a model from the local library, unless it is loaded.

use minibar_hub::format::bytes;
use minibar_hub::library::{self, LibraryPaths};

/// Arguments of `minibar rm`.
#[derive(clap::Args)]
pub struct Args {
    /// The model's name as `minibar list` shows it (`org/name` or a store folder name).
    pub name: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `minibar rm`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let removal = library::remove_model(&LibraryPaths::from_env(), &args.name)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&removal)?);
    } else {
        println!(
            "removed {} ({} freed); the library now uses {}",
            removal.name,
            bytes(removal.freed_bytes),
            bytes(removal.total_bytes)
        );
    }
    Ok(())
}
