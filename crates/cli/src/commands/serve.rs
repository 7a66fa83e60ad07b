//! `minibar serve`: the OpenAI- and Ollama-compatible local server (minibar-serve), over a
//! model it loads or, with `--cluster`, over the model of a cluster that is up.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
};

use minibar_serve::{Limits, ServeConfig, DEFAULT_KEEP_ALIVE};

use super::model_arg;

/// Arguments of `minibar serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on; anything but loopback needs an API key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port (Ollama's default; 0 picks a free one).
    #[arg(long, default_value_t = 11434)]
    pub port: u16,
    /// The default model: a path or a name in the store (default: the embedded default
    /// model); requests may name any other model of the library.
    #[arg(long, short)]
    pub model: Option<String>,
    /// Sequences decoded together at most.
    #[arg(long, default_value_t = 16)]
    pub max_seqs: usize,
    /// Requests waiting for a slot at most; more are answered 429.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Seconds a model stays loaded without requests (a request loads it again); an idle
    /// model is also unloaded when memory pressure turns critical.
    #[arg(long, default_value_t = DEFAULT_KEEP_ALIVE.as_secs())]
    pub keep_alive: u64,
    /// Context window in tokens (default: the model's, at most 8192).
    #[arg(long)]
    pub context: Option<usize>,
    /// Key clients must send as `Authorization: Bearer <key>` off loopback (default:
    /// $MINIBAR_API_KEY, so the key need not show in the process list; else one generated on
    /// first use and kept in the OS keychain).
    #[arg(long)]
    pub api_key: Option<String>,
    /// A web origin allowed to call the server from a browser (`http://localhost:3000`, or `*`
    /// for any); repeat for several (default: $MINIBAR_ORIGINS, comma-separated; else none, so
    /// web pages cannot call it).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Serve the model of the cluster that is up (`minibar cluster up`) at this control
    /// socket (default: the one `cluster up` uses), one request at a time.
    #[arg(long, value_name = "SOCKET", num_args = 0..=1,
          conflicts_with_all = ["model", "context", "max_seqs", "keep_alive"])]
    pub cluster: Option<Option<PathBuf>>,
}

/// The allowed web origins: the flags, else $MINIBAR_ORIGINS.
fn cors_origins(args: &Args) -> Vec<String> {
    if !args.cors_origins.is_empty() {
        return args.cors_origins.clone();
    }
    std::env::var("MINIBAR_ORIGINS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The key off loopback: the one given, else the kept one (generated the first time), whose
/// home and value are printed for the user to hand to clients.
fn api_key(args: &Args) -> anyhow::Result<Option<String>> {
    let given = args
        .api_key
        .clone()
        .or_else(|| std::env::var("MINIBAR_API_KEY").ok())
        .filter(|k| !k.trim().is_empty());
    if given.is_some() || args.host.is_loopback() {
        return Ok(given);
    }
    let kept = minibar_serve::api_key::load_or_create()?;
    let verb = if kept.created { "generated" } else { "kept" };
    eprintln!(
        "API key ({verb}, in {}): {}\nclients send it as `Authorization: Bearer <key>`",
        kept.home, kept.key
    );
    Ok(Some(kept.key))
}

/// Runs `minibar serve` until Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cluster = match &args.cluster {
        None => None,
        Some(Some(socket)) => Some(socket.clone()),
        Some(None) => Some(minibar_cluster::control::default_socket()?),
    };
    // The cluster says which model it holds.
    let path = match cluster {
        Some(_) => PathBuf::new(),
        None => model_arg::resolve(args.model.as_deref())?,
    };
    let name =
        minibar_serve::model_name(&path).unwrap_or_else(|| model_arg::DEFAULT_MODEL.to_owned());
    let api_key = api_key(&args)?;
    let limits = Limits {
        max_seqs: args.max_seqs.max(1),
        queue: args.queue,
    };
    let config = ServeConfig {
        addr: SocketAddr::new(args.host, args.port),
        context: args.context,
        api_key,
        cors_origins: cors_origins(&args),
        keep_alive: std::time::Duration::from_secs(args.keep_alive),
        ..ServeConfig::local(path, name, limits)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(minibar_serve::run(config, cluster.as_deref()))?;
    Ok(())
}
