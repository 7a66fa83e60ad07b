//! Starting a job's ranks as processes on this machine, as `mlx.launch` does on loopback: a
//! free port per rank, a hostfile, `MLX_HOSTFILE` and `MLX_RANK` in each process's
//! environment (or one rank of a hostfile given by hand, on each node). The launcher reads
//! every rank's events and watches every process; when one dies, it names it, and after
//! `grace` ends the others that have not ended on their own. [`keep_up`] starts them again
//! after a fault, so that a cluster that stays up re-forms.

use std::{
    ffi::OsString,
    io::{BufRead, BufReader},
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use crate::{
    error::{ClusterError, Result},
    hostfile::Hostfile,
    rank::{Event, Job, NodePlan, Report},
};

/// Set in a started rank's environment: its standard input is a pipe from the launcher, which
/// closes when the launcher ends, however it ends; a rank that stays up then ends too, instead
/// of serving on, orphaned.
pub const LIFELINE: &str = "MINIBAR_CLUSTER_LIFELINE";

/// How to start a rank: a program and the arguments before `--job <json>`.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The program (the `minibar` CLI, or minibar-cluster's `minibar-rank`).
    pub program: PathBuf,
    /// Arguments before `--job` (e.g. `cluster rank`).
    pub args: Vec<OsString>,
    /// How long the other ranks get to end on their own once one has failed (their watchdogs
    /// end them within the job's stall timeout) before they are killed.
    pub grace: Duration,
}

/// The ranks of a job, running.
pub struct Running {
    /// Each process and its rank.
    children: Vec<(usize, Option<Child>)>,
    hosts: Hostfile,
    events: mpsc::Receiver<(usize, String)>,
    grace: Duration,
    _hostfile: Option<tempfile::NamedTempFile>,
    /// Keeps answering for this node on the LAN while its rank runs.
    _found: Option<crate::discover::Found>,
}

/// What a job that ended well produced.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Rank 0's plan: nodes, budgets and layers.
    pub plan: Vec<NodePlan>,
    /// minibar-fit's verdict on the split ("fits across N nodes: ...").
    pub verdict: String,
    /// Rank 0's report (absent for a check-only job).
    pub report: Option<Report>,
}

impl Launcher {
    /// Starts one process per job (`jobs[r]` for rank `r`) on this machine's loopback (a
    /// single job runs alone, as one process with the whole model).
    pub fn start(&self, jobs: &[Job]) -> Result<Running> {
        let hosts = Hostfile::loopback(jobs.len()).map_err(|e| ClusterError::Io {
            what: "finding free loopback ports".into(),
            source: e,
        })?;
        let file = hostfile_file()?;
        hosts.write(file.path())?;
        let (tx, events) = mpsc::channel();
        let path = file.path().to_owned();
        let mut running = Running {
            children: Vec::new(),
            hosts,
            events,
            grace: self.grace,
            _hostfile: Some(file),
            _found: None,
        };
        // One rank is one process with the whole model: no group to join.
        let hostfile = (jobs.len() > 1).then_some(path.as_path());
        for (rank, job) in jobs.iter().enumerate() {
            self.spawn(&mut running, &tx, job, rank, hostfile)?;
        }
        Ok(running)
    }

    /// Starts this node's rank `rank` of the cluster in `hostfile` (the other nodes start
    /// theirs).
    pub fn join(&self, job: &Job, hostfile: &std::path::Path, rank: usize) -> Result<Running> {
        let hosts = Hostfile::read(hostfile)?;
        if rank >= hosts.len() {
            return Err(ClusterError::Job(format!(
                "rank {rank} is not in {} ({} ranks)",
                hostfile.display(),
                hosts.len()
            )));
        }
        let (tx, events) = mpsc::channel();
        let mut running = Running {
            children: Vec::new(),
            hosts,
            events,
            grace: self.grace,
            _hostfile: None,
            _found: None,
        };
        self.spawn(&mut running, &tx, job, rank, Some(hostfile))?;
        Ok(running)
    }

    /// Finds the cluster's nodes on the LAN by mDNS (see [`crate::discover`]) and starts
    /// this node's rank of it.
    pub fn discover(&self, job: &Job, discovery: &crate::discover::Discovery) -> Result<Running> {
        let found = crate::discover::discover(discovery)?;
        let file = hostfile_file()?;
        found.hosts.write(file.path())?;
        let mut running = self.join(job, file.path(), found.rank)?;
        running._hostfile = Some(file);
        running._found = Some(found);
        Ok(running)
    }

    fn spawn(
        &self,
        running: &mut Running,
        tx: &mpsc::Sender<(usize, String)>,
        job: &Job,
        rank: usize,
        hostfile: Option<&std::path::Path>,
    ) -> Result<()> {
        {
            let json = serde_json::to_string(job)
                .map_err(|e| ClusterError::Job(format!("encoding the job: {e}")))?;
            let mut command = Command::new(&self.program);
            command.args(&self.args).arg("--job").arg(json);
            match hostfile {
                Some(path) => command
                    .env("MLX_HOSTFILE", path)
                    .env("MLX_RANK", rank.to_string()),
                None => command.env_remove("MLX_HOSTFILE").env_remove("MLX_RANK"),
            };
            let mut child = command
                .env(LIFELINE, "stdin")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| ClusterError::Io {
                    what: format!("starting {} for rank {rank}", self.program.display()),
                    source: e,
                })?;
            let out = child.stdout.take().expect("stdout is piped");
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((rank, line)).is_err() {
                        break;
                    }
                }
            });
            running.children.push((rank, Some(child)));
        }
        Ok(())
    }
}

fn hostfile_file() -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix("minibar-hosts-")
        .suffix(".json")
        .tempfile()
        .map_err(|e| ClusterError::Io {
            what: "creating the hostfile".into(),
            source: e,
        })
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (_, Some(9)) => "was killed (signal 9, SIGKILL)".into(),
        (_, Some(s)) => format!("was killed by signal {s}"),
        (Some(3), _) => "gave up waiting".into(),
        (Some(c), _) => format!("exited with status {c}"),
        _ => "ended".into(),
    }
}

impl Running {
    /// The ranks' process ids, rank 0 first.
    pub fn pids(&self) -> Vec<u32> {
        self.children
            .iter()
            .filter_map(|(_, c)| c.as_ref())
            .map(Child::id)
            .collect()
    }

    /// The hostfile the ranks were given.
    pub fn hosts(&self) -> &Hostfile {
        &self.hosts
    }

    /// Waits for the job, passing each event (with its rank) to `on_event` as it arrives.
    /// Ends with rank 0's plan and report, or an error that names the rank that failed first
    /// and what each rank reported.
    pub fn wait(mut self, mut on_event: impl FnMut(usize, &Event)) -> Result<Finished> {
        let mut finished = Finished::default();
        let mut errors: Vec<(usize, String)> = Vec::new();
        let mut failures: Vec<(usize, String)> = Vec::new();
        let mut first_failure: Option<Instant> = None;
        loop {
            while let Ok((rank, line)) = self.events.recv_timeout(Duration::from_millis(20)) {
                let Ok(event) = serde_json::from_str::<Event>(&line) else {
                    eprintln!("[rank {rank}] {line}");
                    continue;
                };
                match &event {
                    Event::Plan { nodes, verdict } if rank == 0 => {
                        finished.plan = nodes.clone();
                        finished.verdict = verdict.clone();
                    }
                    Event::Done(r) if rank == 0 => finished.report = Some(r.clone()),
                    Event::Error { message, .. } => errors.push((rank, message.clone())),
                    _ => {}
                }
                on_event(rank, &event);
            }
            let mut alive = 0;
            for (rank, slot) in self.children.iter_mut() {
                let rank = *rank;
                let Some(child) = slot else { continue };
                match child.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() {
                            failures.push((rank, describe(status)));
                            first_failure.get_or_insert_with(Instant::now);
                        }
                        *slot = None;
                    }
                    Ok(None) => alive += 1,
                    Err(_) => {
                        *slot = None;
                    }
                }
            }
            if alive == 0 {
                break;
            }
            if first_failure.is_some_and(|t| t.elapsed() >= self.grace) {
                self.kill_all();
            }
        }
        // Events written just before a process ended.
        while let Ok((rank, line)) = self.events.recv_timeout(Duration::from_millis(50)) {
            if let Ok(event) = serde_json::from_str::<Event>(&line) {
                if let Event::Error { message, .. } = &event {
                    errors.push((rank, message.clone()));
                }
                if let Event::Done(r) = &event {
                    finished.report = Some(r.clone());
                }
                on_event(rank, &event);
            }
        }
        if failures.is_empty() && errors.is_empty() {
            return Ok(finished);
        }
        let mut parts = Vec::new();
        for (rank, how) in &failures {
            let said = errors
                .iter()
                .filter(|(r, _)| r == rank)
                .map(|(_, m)| format!(": {m}"))
                .collect::<String>();
            parts.push(format!("{} {how}{said}", self.hosts.name(*rank)));
        }
        for (rank, m) in &errors {
            if !failures.iter().any(|(r, _)| r == rank) {
                parts.push(format!("{}: {m}", self.hosts.name(*rank)));
            }
        }
        Err(ClusterError::Node(parts.join("; then ")))
    }

    fn kill_all(&mut self) {
        for (_, child) in self.children.iter_mut() {
            if let Some(child) = child {
                let _ = child.kill();
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for (_, child) in self.children.iter_mut() {
            if let Some(child) = child {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// What [`keep_up`] reports as it goes.
#[derive(Debug)]
pub enum Upkeep<'a> {
    /// The ranks were started; their process ids.
    Started(Vec<u32>),
    /// An event of a rank's.
    Event(usize, &'a Event),
    /// The cluster was up and failed; it is being formed again.
    Reforming(&'a ClusterError),
}

/// Keeps a cluster formed: `start` starts the ranks (each with a job that stays up); when a
/// fault ends them after the cluster was up, they are started again, and the error reported
/// through `on`. Ends when the ranks end well (`minibar cluster down`), or with the error if
/// the cluster never came up (another model, no memory: starting again would not help).
pub fn keep_up(
    mut start: impl FnMut() -> Result<Running>,
    mut on: impl FnMut(Upkeep<'_>),
) -> Result<()> {
    loop {
        let running = start()?;
        on(Upkeep::Started(running.pids()));
        let mut was_up = false;
        let result = running.wait(|rank, e| {
            was_up |= matches!(e, Event::Up { .. });
            on(Upkeep::Event(rank, e));
        });
        match result {
            Ok(_) => return Ok(()),
            Err(e) if was_up => on(Upkeep::Reforming(&e)),
            Err(e) => return Err(e),
        }
    }
}
