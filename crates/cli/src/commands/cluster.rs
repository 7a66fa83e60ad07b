//! `minibar cluster`: one model across several processes or machines, layers split among
//! them (pipeline parallelism over MLX's ring backend; see minibar-cluster). `up` keeps the
//! ranks formed, and `chat`, `generate --up` and `down` talk to it through rank 0's control
//! socket.

use std::{ffi::OsString, io::Write, path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use minibar_cluster::{
    control, keep_up, Ask, Client, Event, Finished, Job, Launcher, NodePlan, Prompt, Report, Upkeep,
};
use minibar_engine::{CancelToken, Message};

use super::{model_arg, repl, sampling::SamplingArgs};

/// Arguments of `minibar cluster`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Reply to one prompt with the model split over several ranks on this machine.
    Generate(GenerateArgs),
    /// Start the ranks, check they hold the same model, and show the nodes and layer split.
    Status(StatusArgs),
    /// Run one rank: what `generate` starts for each; on several Macs, start one per Mac
    /// with the same --hostfile and each its own --rank.
    Rank(RankArgs),
    /// Form a cluster that stays up, loading the model once, and serve job after job
    /// (`chat`, `generate --up`) until `down`; after a fault it forms again.
    Up(UpArgs),
    /// Chat with the model of a cluster that is up: the same template and sampling as
    /// `minibar chat`.
    Chat(ChatArgs),
    /// Stop the cluster that is up.
    Down(DownArgs),
}

/// Flags every way of starting ranks shares.
#[derive(clap::Args)]
struct Common {
    /// Model path or name in the store (default: the embedded default model).
    #[arg(long, short)]
    model: Option<String>,
    /// Ranks to start on this machine's loopback.
    #[arg(long, default_value_t = 2)]
    ranks: usize,
    /// Seconds a rank waits for another before it gives up and names it.
    #[arg(long, default_value_t = 20.0)]
    stall_timeout: f64,
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// What to ask.
    #[arg(long, short)]
    prompt: String,
    /// Ask the cluster that is up (`minibar cluster up`) instead of starting ranks.
    #[arg(long, conflicts_with_all = ["model", "ranks"])]
    up: bool,
    /// The running cluster's control socket (implies --up; default: the one `up` uses).
    #[arg(long, conflicts_with_all = ["model", "ranks"])]
    socket: Option<PathBuf>,
    /// A system prompt.
    #[arg(long)]
    system: Option<String>,
    /// Continue the prompt as raw text, without the chat template.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Print the reply, the plan and the figures as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct UpArgs {
    #[command(flatten)]
    common: Common,
    /// Join the cluster of this hostfile as --rank (one node of several Macs; start `up` on
    /// each), instead of starting --ranks on this machine.
    #[arg(long, requires = "rank", conflicts_with = "ranks")]
    hostfile: Option<PathBuf>,
    /// This node's rank in --hostfile.
    #[arg(long, requires = "hostfile")]
    rank: Option<usize>,
    /// Find the cluster's NODES nodes on the LAN by mDNS (`_minibar._tcp`, Bonjour) instead
    /// of a hostfile: start `up --discover NODES` on each.
    #[arg(long, value_name = "NODES", conflicts_with_all = ["hostfile", "ranks"])]
    discover: Option<usize>,
    /// The cluster's name on the LAN (with --discover): nodes of other clusters are ignored.
    #[arg(long, default_value = "minibar")]
    cluster: String,
    /// This node is rank 0, where `cluster chat` submits jobs (with --discover; otherwise
    /// the node with the lowest address is).
    #[arg(long, requires = "discover")]
    lead: bool,
    /// The address this node's rank listens on (with --discover; default: its LAN address).
    #[arg(long, requires = "discover")]
    ip: Option<std::net::IpAddr>,
    /// The mDNS port (with --discover; another than 5353 keeps a trial off the system's
    /// responder).
    #[arg(long, default_value_t = minibar_cluster::discover::MDNS_PORT)]
    mdns_port: u16,
    /// Where rank 0 takes jobs (default: cluster.sock in this user's runtime folder).
    #[arg(long)]
    socket: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ChatArgs {
    /// The cluster's control socket (default: the one `up` uses).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// A system prompt.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

#[derive(clap::Args)]
struct DownArgs {
    /// The cluster's control socket (default: the one `up` uses).
    #[arg(long)]
    socket: Option<PathBuf>,
}

#[derive(clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    common: Common,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct RankArgs {
    /// The job as JSON (how `generate` and `status` start their ranks).
    #[arg(long, conflicts_with_all = ["hostfile", "rank", "model", "prompt"])]
    job: Option<String>,
    /// The ranks' addresses in MLX's format: `[["ip:port"], ["ip:port"], ...]`, rank 0 first.
    #[arg(long)]
    hostfile: Option<PathBuf>,
    /// This node's rank.
    #[arg(long)]
    rank: Option<usize>,
    /// Model path or name in the store (the same model on every node).
    #[arg(long, short)]
    model: Option<String>,
    /// What to ask (rank 0 only).
    #[arg(long, short)]
    prompt: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Seconds a rank waits for another before it gives up and names it.
    #[arg(long, default_value_t = 20.0)]
    stall_timeout: f64,
}

/// Runs `minibar cluster`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Sub::Generate(a) => generate(a),
        Sub::Status(a) => status(a),
        Sub::Rank(a) => rank(a),
        Sub::Up(a) => up(a),
        Sub::Chat(a) => chat(a),
        Sub::Down(a) => down(a),
    }
}

fn client(socket: Option<PathBuf>) -> anyhow::Result<Client> {
    Ok(Client::new(match socket {
        Some(s) => s,
        None => control::default_socket()?,
    }))
}

/// The engine's sampling flags as a running cluster's job.
fn ask(prompt: Prompt, sampling: &SamplingArgs) -> Ask {
    let params = sampling.params();
    Ask {
        prompt,
        max_tokens: params.max_tokens,
        sampling: params.sampling,
        ignore_eos: false,
        stop: params.stop,
    }
}

/// Runs `ask` on the cluster at `client`, streaming the reply to standard output (unless
/// `quiet`), all of it: the text's tail that only the whole reply decodes too. Ctrl-C stops
/// the reply (a second one exits).
fn ask_streaming(client: &Client, ask: &Ask, quiet: bool) -> anyhow::Result<Report> {
    let cancel = CancelToken::new();
    super::interrupt::cancel_on_ctrl_c(&cancel);
    let mut out = std::io::stdout();
    let mut shown = String::new();
    let report = client.generate(ask, |e| {
        if let (Event::Token { text, .. }, false) = (e, quiet) {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            shown.push_str(text);
        }
        !cancel.is_cancelled()
    })?;
    if !quiet {
        if let Some(tail) = report.text.strip_prefix(shown.as_str()) {
            print!("{tail}");
        }
    }
    Ok(report)
}

fn up(a: UpArgs) -> anyhow::Result<()> {
    let socket = match a.socket {
        Some(s) => s,
        None => control::default_socket()?,
    };
    let job = Job {
        control: Some(socket),
        ..base_job(&a.common)?
    };
    // The survivors of a fault end by themselves within the stall bound, rank 0 telling its
    // client first; only then are they killed.
    let launcher = Launcher {
        grace: Duration::from_secs_f64(a.common.stall_timeout.max(1.0) + 5.0),
        ..launcher()?
    };
    let discovery = match a.discover {
        Some(nodes) => {
            let ip = match a.ip {
                Some(ip) => ip,
                None => minibar_cluster::discover::lan_ip()?,
            };
            // A port free now, for this node's rank (as `mlx.launch` picks them).
            let port = std::net::TcpListener::bind((ip, 0))
                .and_then(|l| l.local_addr())
                .with_context(|| format!("finding a free port on {ip}"))?
                .port();
            Some(minibar_cluster::discover::Discovery {
                cluster: a.cluster.clone(),
                nodes,
                lead: a.lead,
                me: std::net::SocketAddr::new(ip, port),
                timeout: Duration::from_secs_f64(job.startup_timeout),
                mdns_port: a.mdns_port,
            })
        }
        None => None,
    };
    let start = || match (&a.hostfile, a.rank, &discovery) {
        (Some(hostfile), Some(rank), _) => launcher.join(&job, hostfile, rank),
        (_, _, Some(d)) => {
            eprintln!(
                "looking for the {} nodes of cluster `{}` on the LAN...",
                d.nodes, d.cluster
            );
            launcher.discover(&job, d)
        }
        _ => launcher.start(&vec![job.clone(); a.common.ranks]),
    };
    keep_up(start, |u| {
        match u {
        Upkeep::Started(pids) => eprintln!("starting {} rank process(es)...", pids.len()),
        Upkeep::Event(0, Event::Plan { nodes, verdict }) => {
            print_plan(nodes);
            println!("{verdict}");
        }
        Upkeep::Event(0, Event::Up {
            socket: Some(socket),
        }) => println!(
            "cluster up: `minibar cluster chat` talks to it (jobs at {}), `minibar cluster down` stops it",
            socket.display()
        ),
        Upkeep::Event(rank, Event::Up { .. }) => {
            println!("rank {rank} up: serving rank 0's jobs")
        }
        Upkeep::Event(rank, Event::Error { message, .. }) => {
            eprintln!("[rank {rank}] {message}")
        }
        Upkeep::Event(..) => {}
        Upkeep::Reforming(e) => eprintln!("cluster fault: {e}\nforming the cluster again..."),
    }
    })?;
    println!("cluster down");
    Ok(())
}

fn down(a: DownArgs) -> anyhow::Result<()> {
    client(a.socket)?.shutdown()?;
    println!("cluster down");
    Ok(())
}

const CHAT_HELP: &str =
    "Type a message and press Enter. /reset starts over, /exit (or Ctrl-D) quits.";

fn chat(a: ChatArgs) -> anyhow::Result<()> {
    let client = client(a.socket)?;
    client.wait_up(Duration::ZERO)?;
    eprintln!("cluster at {} ready. {CHAT_HELP}", client.socket.display());
    let mut remote = Remote {
        client: &client,
        sampling: &a.sampling,
    };
    repl::converse(a.system.as_deref(), CHAT_HELP, &mut remote)
}

/// The conversation's replies from a cluster that is up.
struct Remote<'c> {
    client: &'c Client,
    sampling: &'c SamplingArgs,
}

impl repl::Replier for Remote<'_> {
    fn reply(&mut self, messages: &[Message]) -> anyhow::Result<(String, String)> {
        let job = ask(Prompt::Messages(messages.to_vec()), self.sampling);
        let report = ask_streaming(self.client, &job, false)?;
        let figures = format!(
            "{} tokens, first token {:.2} s, {:.1} tok/s across the cluster",
            report.tokens.len(),
            report.ttft_s,
            report.decode_tps
        );
        Ok((report.text, figures))
    }
}

fn launcher() -> anyhow::Result<Launcher> {
    Ok(Launcher {
        program: std::env::current_exe().context("finding the minibar executable")?,
        args: vec![OsString::from("cluster"), OsString::from("rank")],
        grace: Duration::ZERO,
    })
}

fn base_job(common: &Common) -> anyhow::Result<Job> {
    if common.ranks < 2 {
        bail!("a cluster needs at least 2 ranks (for one, use `minibar generate`)");
    }
    Ok(Job {
        model: model_arg::resolve(common.model.as_deref())?,
        stall_timeout: common.stall_timeout,
        ..Job::default()
    })
}

fn sampled_job(mut job: Job, sampling: &SamplingArgs) -> anyhow::Result<Job> {
    let params = sampling.params();
    job.sampling = params.sampling;
    job.max_tokens = params.max_tokens;
    job.stop = params.stop;
    Ok(job)
}

fn print_plan(plan: &[NodePlan]) {
    println!(
        "{:<6} {:<28} {:>10} {:>10} {:>8}",
        "rank", "node", "memory", "weights", "layers"
    );
    for n in plan {
        println!(
            "{:<6} {:<28} {:>7.1} GB {:>7.2} GB {:>3}..{}",
            n.rank,
            n.node,
            n.budget as f64 / 1e9,
            n.held as f64 / 1e9,
            n.layers[0],
            n.layers[1]
        );
    }
}

fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    let prompt = if a.raw {
        Prompt::Raw(a.prompt)
    } else {
        Prompt::Chat {
            system: a.system,
            user: a.prompt,
        }
    };
    if a.up || a.socket.is_some() {
        let report = ask_streaming(&client(a.socket)?, &ask(prompt, &a.sampling), a.json)?;
        if a.json {
            let v = serde_json::json!({ "report": report });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!();
            eprintln!(
                "{} prompt tokens, first token {:.2} s, {:.1} tok/s across the cluster",
                report.prompt_tokens, report.ttft_s, report.decode_tps
            );
        }
        return Ok(());
    }
    let job = sampled_job(
        Job {
            prompt,
            ..base_job(&a.common)?
        },
        &a.sampling,
    )?;
    let json = a.json;
    let mut out = std::io::stdout();
    let done: Finished = launcher()?
        .start(&vec![job; a.common.ranks])?
        .wait(|rank, e| {
            if let (0, Event::Token { text, .. }, false) = (rank, e, json) {
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
        })?;
    let report = done.report.context("rank 0 ended without a report")?;
    if json {
        let v = serde_json::json!({ "plan": done.plan, "report": report });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!();
    let split: Vec<String> = done
        .plan
        .iter()
        .map(|n| format!("{}..{}", n.layers[0], n.layers[1]))
        .collect();
    eprintln!(
        "{} ranks (layers {}): {} prompt tokens, first token {:.2} s, {:.1} tok/s, {:.0} bytes/token sent, {:.2} ms/token in communication",
        done.plan.len(),
        split.join(", "),
        report.prompt_tokens,
        report.ttft_s,
        report.decode_tps,
        report.bytes_per_token,
        report.comm_ms_per_token
    );
    Ok(())
}

fn status(a: StatusArgs) -> anyhow::Result<()> {
    let job = Job {
        check_only: true,
        ..base_job(&a.common)?
    };
    let done = launcher()?
        .start(&vec![job; a.common.ranks])?
        .wait(|_, _| {})?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&done.plan)?);
    } else {
        print_plan(&done.plan);
        println!("{}", done.verdict);
        println!("every rank holds the same model; ready to generate");
    }
    Ok(())
}

fn rank(a: RankArgs) -> anyhow::Result<()> {
    let job: Job = match &a.job {
        Some(json) => serde_json::from_str(json).context("--job is not a valid job")?,
        None => {
            let (Some(hostfile), Some(rank)) = (&a.hostfile, a.rank) else {
                bail!("give --hostfile and --rank (or --job)");
            };
            // MLX reads its place from the environment, before any thread starts.
            std::env::set_var("MLX_HOSTFILE", hostfile);
            std::env::set_var("MLX_RANK", rank.to_string());
            let prompt = match (&a.prompt, rank) {
                (Some(p), _) => Prompt::Chat {
                    system: None,
                    user: p.clone(),
                },
                (None, 0) => bail!("rank 0 needs --prompt"),
                (None, _) => Prompt::Tokens(Vec::new()),
            };
            sampled_job(
                Job {
                    model: model_arg::resolve(a.model.as_deref())?,
                    prompt,
                    stall_timeout: a.stall_timeout,
                    ..Job::default()
                },
                &a.sampling,
            )?
        }
    };
    // Events go to standard output as JSON lines (a launcher reads them; by hand, rank 0's
    // `token` lines are the reply); an error is one of them, and the exit status says so.
    minibar_cluster::rank::run_and_report(&job)?;
    Ok(())
}
