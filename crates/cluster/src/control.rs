//! The control endpoint of a cluster that stays up: a Unix socket on rank 0's machine where
//! `minibar cluster chat` and `generate` hand rank 0 a job and read its tokens as they come.
//!
//! Why a Unix socket: only processes on this machine can reach it, and its default folder is
//! this user's alone (mode 0700, checked), so nothing on the network can submit a job; the
//! ranks' own ports carry activations only.
//!
//! Protocol, one request per connection: the client writes one JSON line ([`Request`]); rank 0
//! answers with JSON lines of [`Event`]: `token`s, then `done` with the report, or `error`.
//! A `status` request is answered with one [`Status`] line instead (the app's Settings ask
//! it; a client that connects during a job waits its turn, so ask with a timeout).
//! Anything more the client writes (or its leaving) stops the job after the current token;
//! the report then says `cancelled`. Rank 0 takes one job at a time; a client that connects
//! meanwhile waits its turn.

use std::{
    fs,
    io::{BufRead, BufReader, ErrorKind, Read, Write},
    os::unix::{
        fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt},
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use minibar_engine::sample::SamplingParams;
use serde::{Deserialize, Serialize};

use crate::{
    error::{ClusterError, Result},
    rank::{Event, NodePlan, Prompt, Report},
};

/// A request is a prompt and settings, far below this; a longer line is refused unread.
const MAX_REQUEST: u64 = 16 << 20;
/// How long rank 0 waits for a connected client to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One job for a running cluster: what to continue and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Ask {
    /// What to continue.
    pub prompt: Prompt,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Sampling settings (applied by the last rank).
    pub sampling: SamplingParams,
    /// Keep going past end-of-sequence (benchmarks, tests).
    pub ignore_eos: bool,
    /// Stop when one of these appears in the text (left out of it).
    pub stop: Vec<String>,
}

impl Default for Ask {
    fn default() -> Self {
        Ask {
            prompt: Prompt::Tokens(Vec::new()),
            max_tokens: 128,
            sampling: SamplingParams::default(),
            ignore_eos: false,
            stop: Vec::new(),
        }
    }
}

/// What a client asks rank 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Run a job and stream its tokens.
    Generate(Ask),
    /// What the cluster holds and how it is split, answered with one [`Status`] line.
    Status,
    /// Stop every rank (`minibar cluster down`).
    Shutdown,
}

/// A running cluster's answer to [`Request::Status`]: the model every rank holds, and the
/// plan the ranks agreed at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The model file or folder, as rank 0 opened it.
    pub model: PathBuf,
    /// Every node, rank 0 first: its address, memory and layers.
    pub nodes: Vec<NodePlan>,
    /// minibar-fit's verdict on the split ("fits across 2 nodes: ...").
    pub verdict: String,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> ClusterError {
    move |source| ClusterError::Io { what, source }
}

/// Where `minibar cluster up` listens unless told otherwise: `cluster.sock` in this user's
/// runtime folder (`$XDG_RUNTIME_DIR/minibar`, else `minibar-<uid>` in the temporary folder,
/// which on macOS is already per user). The folder is created private, and refused if it is
/// not this user's alone.
pub fn default_socket() -> Result<PathBuf> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() => d.join("minibar"),
        // SAFETY: getuid cannot fail.
        _ => std::env::temp_dir().join(format!("minibar-{}", unsafe { libc::getuid() })),
    };
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(format!("creating {}", dir.display()))(e)),
    }
    let meta = fs::symlink_metadata(&dir).map_err(io(format!("checking {}", dir.display())))?;
    // SAFETY: getuid cannot fail.
    let mine = meta.uid() == unsafe { libc::getuid() };
    if !meta.is_dir() || !mine || meta.mode() & 0o077 != 0 {
        return Err(ClusterError::Control(format!(
            "{} must be a folder of this user's only (mode 0700) to hold the cluster's control socket; remove it or give --socket",
            dir.display()
        )));
    }
    Ok(dir.join("cluster.sock"))
}

/// Rank 0's side: the listening socket, removed when dropped.
pub struct Endpoint {
    listener: UnixListener,
    path: PathBuf,
}

/// Fails if a cluster already answers at `path` (a stale socket file is not an answer).
pub fn check_free(path: &Path) -> Result<()> {
    if UnixStream::connect(path).is_ok() {
        return Err(ClusterError::Control(format!(
            "a cluster is already up at {} (`minibar cluster down` stops it)",
            path.display()
        )));
    }
    Ok(())
}

impl Endpoint {
    /// Listens at `path`, readable and writable by this user only; a stale socket file (left
    /// by a rank that was killed) is replaced, a live one refused.
    pub fn bind(path: &Path) -> Result<Endpoint> {
        check_free(path)?;
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = fs::remove_file(path);
        }
        let listener =
            UnixListener::bind(path).map_err(io(format!("listening at {}", path.display())))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(io(format!("making {} private", path.display())))?;
        Ok(Endpoint {
            listener,
            path: path.to_owned(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listening socket, for polling.
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// Accepts the next client and reads its request (a malformed one is answered with an
    /// error event here, and `None` returned).
    pub fn next_request(&self) -> Result<Option<(UnixStream, Request)>> {
        let (mut stream, _) = self
            .listener
            .accept()
            .map_err(io(format!("accepting a client at {}", self.path.display())))?;
        let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
        let mut line = String::new();
        let read = BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line);
        let request = match read {
            Ok(_) => serde_json::from_str::<Request>(&line)
                .map_err(|e| format!("not a cluster request: {e}")),
            Err(e) => Err(format!("reading the request: {e}")),
        };
        match request {
            Ok(r) => Ok(Some((stream, r))),
            Err(message) => {
                send(&mut stream, &Event::Error { rank: 0, message });
                Ok(None)
            }
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether the client asked to stop (wrote more than its request) or left; never waits.
pub fn asked_to_stop(stream: &UnixStream) -> bool {
    let mut buf = [0u8; 64];
    // SAFETY: recv(2) into a local buffer of that length, on a socket this rank owns;
    // MSG_DONTWAIT makes it return at once.
    let n = unsafe {
        libc::recv(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    // Bytes: a stop; 0: the client closed; -1: nothing to read (or a broken socket, which
    // the next write reports).
    n >= 0
}

/// Writes one event line to a client; false if the client is gone.
pub fn send(stream: &mut UnixStream, event: &Event) -> bool {
    send_line(stream, event)
}

/// Answers a [`Request::Status`]; false if the client is gone.
pub fn send_status(stream: &mut UnixStream, status: &Status) -> bool {
    send_line(stream, status)
}

fn send_line(stream: &mut UnixStream, value: &impl Serialize) -> bool {
    let Ok(mut line) = serde_json::to_vec(value) else {
        return false;
    };
    line.push(b'\n');
    stream.write_all(&line).is_ok()
}

/// A client of a running cluster.
#[derive(Debug, Clone)]
pub struct Client {
    /// Rank 0's control socket.
    pub socket: PathBuf,
}

impl Client {
    /// A client of the cluster at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    /// Connects, waiting at most `wait` for the cluster to come up.
    fn connect(&self, wait: Duration) -> Result<UnixStream> {
        let deadline = Instant::now() + wait;
        loop {
            match UnixStream::connect(&self.socket) {
                Ok(s) => return Ok(s),
                Err(e)
                    if Instant::now() < deadline
                        && matches!(
                            e.kind(),
                            ErrorKind::NotFound | ErrorKind::ConnectionRefused
                        ) =>
                {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e)
                    if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) =>
                {
                    return Err(ClusterError::Control(format!(
                        "no cluster is up at {} (start one with `minibar cluster up`)",
                        self.socket.display()
                    )))
                }
                Err(e) => return Err(io(format!("connecting to {}", self.socket.display()))(e)),
            }
        }
    }

    /// Waits at most `wait` for the cluster to take connections.
    pub fn wait_up(&self, wait: Duration) -> Result<()> {
        self.connect(wait).map(drop)
    }

    fn request(&self, request: &Request) -> Result<BufReader<UnixStream>> {
        let mut stream = self.connect(Duration::ZERO)?;
        let mut line = serde_json::to_vec(request)
            .map_err(|e| ClusterError::Job(format!("encoding the request: {e}")))?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .map_err(io(format!("sending the job to {}", self.socket.display())))?;
        Ok(BufReader::new(stream))
    }

    /// Runs `ask` on the cluster, passing each streamed event (tokens) to `on_event`, which
    /// returns false to stop the job early (Ctrl-C); ends with rank 0's report (`cancelled`
    /// then, with the tokens so far), or the error that ended the job, naming the node.
    pub fn generate(&self, ask: &Ask, mut on_event: impl FnMut(&Event) -> bool) -> Result<Report> {
        let mut reader = self.request(&Request::Generate(ask.clone()))?;
        let mut stopping = false;
        let mut line = String::new();
        loop {
            line.clear();
            if reader
                .read_line(&mut line)
                .map_err(io("reading the cluster's reply".into()))?
                == 0
            {
                break;
            }
            let event: Event = serde_json::from_str(&line).map_err(|e| {
                ClusterError::Node(format!("rank 0 sent a line this build cannot read: {e}"))
            })?;
            match event {
                Event::Done(report) => return Ok(report),
                Event::Error { message, .. } => return Err(ClusterError::Node(message)),
                e => {
                    if !on_event(&e) && !stopping {
                        stopping = true;
                        let _ = reader.get_mut().write_all(b"stop\n");
                    }
                }
            }
        }
        Err(ClusterError::Node(format!(
            "rank 0 (the cluster at {}) ended the connection mid-job: it stopped",
            self.socket.display()
        )))
    }

    /// What the cluster holds and how it is split; waits at most `wait` for rank 0 to answer
    /// (it answers between jobs, so a long job makes this time out: the error says so).
    pub fn status(&self, wait: Duration) -> Result<Status> {
        let mut reader = self.request(&Request::Status)?;
        let _ = reader
            .get_ref()
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(ClusterError::Control(format!(
                    "the cluster at {} did not answer within {:.0} s: it is busy with a job",
                    self.socket.display(),
                    wait.as_secs_f64()
                )))
            }
            Err(e) => return Err(io("reading the cluster's status".into())(e)),
            Ok(_) => {}
        }
        if let Ok(status) = serde_json::from_str::<Status>(&line) {
            return Ok(status);
        }
        match serde_json::from_str::<Event>(&line) {
            Ok(Event::Error { message, .. }) => Err(ClusterError::Node(message)),
            _ => Err(ClusterError::Node(format!(
                "rank 0 (the cluster at {}) gave no status: is it another Minibar build?",
                self.socket.display()
            ))),
        }
    }

    /// Stops every rank of the cluster, and waits until rank 0 has passed the word on.
    pub fn shutdown(&self) -> Result<()> {
        let reader = self.request(&Request::Shutdown)?;
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if let Ok(Event::Error { message, .. }) = serde_json::from_str(&line) {
                return Err(ClusterError::Node(message));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_request_is_answered_with_an_error_and_a_live_socket_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let endpoint = Endpoint::bind(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let client = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut s = UnixStream::connect(&path).unwrap();
                s.write_all(b"{\"launch\": 1}\n").unwrap();
                let mut reply = String::new();
                BufReader::new(s).read_line(&mut reply).unwrap();
                reply
            }
        });
        assert!(endpoint.next_request().unwrap().is_none());
        let reply = client.join().unwrap();
        assert!(reply.contains("not a cluster request"), "{reply}");
        // (Its probe waits, unread, in the backlog: the test asks nothing more of it.)
        let e = Endpoint::bind(&path).err().unwrap().to_string();
        assert!(e.contains("already up"), "{e}");
        drop(endpoint);
        // A stale file (a killed rank 0's: the file outlives its listener) is replaced.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        drop(Endpoint::bind(&path).unwrap());
        assert!(!path.exists());
        let e = Client::new(dir.path().join("none.sock"))
            .wait_up(Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no cluster is up"), "{e}");
    }
}
