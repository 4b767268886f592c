//! `kpbench shape import DUMP --out SHAPE` and `kpbench shape show FILE`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::failure::Failure;
use crate::exitcode;
use crate::scenario::shape::{self, import::KUBECTL, summary::summary, ShapeError};

#[derive(Debug, Args)]
pub struct ShapeArgs {
    #[command(subcommand)]
    pub command: ShapeCommand,
}

#[derive(Debug, Subcommand)]
pub enum ShapeCommand {
    /// Turn what `kubectl get services,endpointslices -A -o json` prints into an
    /// anonymised shape file: structure only, no names, addresses or labels.
    Import(ImportArgs),
    /// Print a shape file's summary: types, ports and protocols, endpoint counts,
    /// affinity and policies.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The dump: one v1 List (or several concatenated) of Services and EndpointSlices.
    pub dump: PathBuf,
    /// Where to write the shape file (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// The node whose endpoints count as local (default: the node with the most
    /// endpoints).
    #[arg(long)]
    pub node: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A shape file written by `kpbench shape import`.
    pub file: PathBuf,
}

fn failure(e: ShapeError) -> Failure {
    match e {
        ShapeError::Write { .. } => Failure::from(anyhow::Error::new(e)),
        e => Failure::usage(e),
    }
}

pub fn main(a: ShapeArgs) -> Result<i32, Failure> {
    match a.command {
        ShapeCommand::Import(a) => {
            let shape = shape::import_file(&a.dump, &a.out, a.node.as_deref()).map_err(failure)?;
            eprintln!(
                "wrote {} ({} services in {} groups; from `{KUBECTL}`)",
                a.out.display(),
                shape.services(),
                shape.groups.len()
            );
            println!("{}", summary(&shape));
        }
        ShapeCommand::Show(a) => {
            let shape = shape::load(&a.file).map_err(failure)?;
            println!("{}", summary(&shape));
        }
    }
    Ok(exitcode::OK)
}
