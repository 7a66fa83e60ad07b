//! One rank of a cluster job, for minibar-cluster's tests and benchmark (the `minibar` CLI's
//! `cluster rank` does the same): `minibar-rank --job <json>`, with `MLX_HOSTFILE` and
//! `MLX_RANK` set by the launcher.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let job = match args.as_slice() {
        [flag, json] if flag == "--job" => serde_json::from_str::<minibar_cluster::Job>(json),
        _ => {
            eprintln!("usage: minibar-rank --job <json>");
            return ExitCode::from(2);
        }
    };
    let job = match job {
        Ok(j) => j,
        Err(e) => {
            eprintln!("minibar-rank: invalid job: {e}");
            return ExitCode::from(2);
        }
    };
    match minibar_cluster::rank::run_and_report(&job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
