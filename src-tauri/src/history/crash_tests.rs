//! The crash test: a helper process streams replies into a history database through the same
//! [`History`] and [`ReplyWriter`] as the app, and is SIGKILLed at seeded random points, 100
//! times over one database. After each kill the database is opened as the app would at its
//! next start, and the test checks: `PRAGMA integrity_check` (and FTS5's own check) pass, no
//! committed message is missing or changed, and the streamed text that did not survive spans
//! at most 250 ms of streaming.
//!
//! The helper is this same test binary, re-run on the ignored test [`crash_helper`]. It logs
//! what it has committed and each piece it has streamed (with the time the piece arrived) to a
//! side file, synced per line, so the log is the truth the database is judged against.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{History, NewMessage, ReplyWriter};
use crate::types::{MessageStatus, Role};

/// Tells the helper process where to work.
const HELPER_DIR_ENV: &str = "MINIBAR_CRASH_HELPER_DIR";
/// The helper's run number (its log file and its seed).
const HELPER_RUN_ENV: &str = "MINIBAR_CRASH_HELPER_RUN";
/// Kills per test run.
const KILLS: u32 = 100;
/// The most streamed text a kill may lose, in milliseconds of streaming (issue #12).
const MAX_LOST: Duration = Duration::from_millis(250);
/// Time between pieces in the helper: a fast model's token rate.
const PIECE_EVERY: Duration = Duration::from_millis(5);

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The text of piece `i` of a reply; the checker rebuilds replies from it.
fn piece(i: usize) -> String {
    format!("w{i} ")
}

/// One line appended to the side log and synced before the helper goes on.
fn log(file: &mut std::fs::File, line: &str) {
    writeln!(file, "{line}").unwrap();
    file.sync_data().unwrap();
}

/// The helper's entry point, run only by [`kills_lose_no_committed_message_and_little_text`].
#[test]
#[ignore = "the helper process of the crash test; it runs there"]
fn crash_helper() {
    let dir = std::path::PathBuf::from(std::env::var_os(HELPER_DIR_ENV).expect("helper dir"));
    let run: u64 = std::env::var(HELPER_RUN_ENV).unwrap().parse().unwrap();
    let mut rng = fastrand::Rng::with_seed(run);
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("log-{run}")))
        .unwrap();
    let h = std::sync::Arc::new(History::open(&dir.join("history.sqlite3")).unwrap());
    let session = h.create_session(None).unwrap().id;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut turn = 0;
    // Until killed (bounded, should the test die first).
    while Instant::now() < deadline {
        let question = format!("question {run}.{turn}");
        let user = h
            .add_message(
                &session,
                NewMessage {
                    role: Role::User,
                    content: question.clone(),
                    model: None,
                    status: MessageStatus::Done,
                },
            )
            .unwrap();
        log(&mut out, &format!("user {} {question}", user.id));
        let reply = h
            .add_message(
                &session,
                NewMessage {
                    role: Role::Assistant,
                    content: String::new(),
                    model: Some("m".into()),
                    status: MessageStatus::Streaming,
                },
            )
            .unwrap();
        log(&mut out, &format!("reply {}", reply.id));
        let mut w = ReplyWriter::new(h.clone(), &reply.id);
        let pieces = rng.usize(10..60);
        for i in 0..pieces {
            let arrived = now_us();
            w.push(&piece(i)).unwrap();
            log(&mut out, &format!("piece {} {i} {arrived}", reply.id));
            std::thread::sleep(PIECE_EVERY);
        }
        w.finish(MessageStatus::Done, None, None).unwrap();
        log(&mut out, &format!("done {} {pieces}", reply.id));
        turn += 1;
    }
}

/// What the logs say was committed, over every run so far.
#[derive(Default)]
struct Committed {
    /// Replies finished before a kill.
    finished: usize,
    /// Replies a kill cut off.
    cut: usize,
    /// User messages and their text.
    users: HashMap<String, String>,
    /// Replies and, once they ended, their text and status; None while one streams.
    replies: HashMap<String, Option<(String, MessageStatus)>>,
}

/// The figures of one kill.
struct Kill {
    /// Committed messages missing or wrong after it.
    lost_messages: usize,
    /// Streaming time covered by the text it lost.
    lost_text: Duration,
}

/// Reads a run's log, adds what it committed, and checks the database against everything
/// committed so far.
fn check(dir: &Path, run: u64, committed: &mut Committed) -> Kill {
    let text = std::fs::read_to_string(dir.join(format!("log-{run}"))).unwrap_or_default();
    // The reply streaming when the kill came, with its pieces' arrival times.
    let mut streaming: Option<(String, Vec<u64>)> = None;
    // A line cut by the kill is not complete: it ends without a newline and is ignored.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    for line in complete.lines() {
        let f: Vec<&str> = line.splitn(3, ' ').collect();
        match f[0] {
            "user" => {
                committed.users.insert(f[1].into(), f[2].into());
            }
            "reply" => {
                committed.replies.insert(f[1].into(), None);
                streaming = Some((f[1].into(), Vec::new()));
            }
            "piece" => {
                let rest: Vec<&str> = f[2].split(' ').collect();
                let s = streaming.as_mut().expect("a piece follows its reply");
                assert_eq!(s.0, f[1]);
                assert_eq!(rest[0].parse::<usize>().unwrap(), s.1.len());
                s.1.push(rest[1].parse().unwrap());
            }
            "done" => {
                let n: usize = f[2].parse().unwrap();
                committed.finished += 1;
                let full: String = (0..n).map(piece).collect();
                committed
                    .replies
                    .insert(f[1].into(), Some((full, MessageStatus::Done)));
                streaming = None;
            }
            other => panic!("unknown log line {other}"),
        }
    }

    let path = dir.join("history.sqlite3");
    // The start's damage check must not mistake a killed writer's files for damage.
    assert_eq!(
        crate::recover::set_aside_if_damaged(&path, "history").unwrap(),
        None,
        "kill {run} left a database the app would set aside"
    );
    // As the app's next start: streaming replies become stopped (and searchable).
    let h = History::open(&path).expect("the history opens after a kill");
    let conn = h.conn();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "integrity_check after kill {run}");
    conn.execute(
        "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .unwrap_or_else(|e| panic!("FTS index inconsistent after kill {run}: {e}"));
    drop(conn);

    let mut lost_messages = 0;
    for (id, content) in &committed.users {
        match h.message(id) {
            Ok((_, m)) if &m.content == content && m.status == MessageStatus::Done => {}
            _ => lost_messages += 1,
        }
    }
    let mut lost_text = Duration::ZERO;
    for (id, ended) in committed.replies.iter_mut() {
        let Ok((_, m)) = h.message(id) else {
            lost_messages += 1;
            continue;
        };
        match ended {
            Some((content, status)) => {
                if &m.content != content || m.status != *status {
                    lost_messages += 1;
                }
            }
            None => {
                // Stored text must be the first k pieces (k may be one past the log: a kill
                // between a commit and its log line).
                let logged = match &streaming {
                    Some((sid, times)) if sid == id => times.as_slice(),
                    _ => &[],
                };
                let mut prefix = String::new();
                let mut k = 0;
                while prefix.len() < m.content.len() {
                    prefix.push_str(&piece(k));
                    k += 1;
                }
                assert_eq!(prefix, m.content, "reply {id} holds text it never streamed");
                assert!(k <= logged.len() + 1);
                if k < logged.len() {
                    let span = logged[logged.len() - 1] - logged[k];
                    lost_text = lost_text.max(Duration::from_micros(span));
                }
                // Cut off: from now on a stopped reply with this text, as the app shows it.
                assert_ne!(m.status, MessageStatus::Streaming);
                *ended = Some((m.content, m.status));
                committed.cut += 1;
            }
        }
    }
    Kill {
        lost_messages,
        lost_text,
    }
}

#[test]
fn kills_lose_no_committed_message_and_little_text() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = fastrand::Rng::with_seed(12);
    let mut committed = Committed::default();
    let (mut lost_messages, mut max_lost) = (0, Duration::ZERO);
    let started = Instant::now();
    for run in 0..KILLS as u64 {
        let mut child = Command::new(&exe)
            .args([
                "history::crash_tests::crash_helper",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(HELPER_DIR_ENV, dir.path())
            .env(HELPER_RUN_ENV, run.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // From the spawn, so some kills land while the helper opens the database.
        std::thread::sleep(Duration::from_millis(rng.u64(0..400)));
        // SIGKILL on Unix.
        child.kill().unwrap();
        child.wait().unwrap();
        let kill = check(dir.path(), run, &mut committed);
        lost_messages += kill.lost_messages;
        max_lost = max_lost.max(kill.lost_text);
    }
    let replies = committed.replies.len();
    let (finished, cut) = (committed.finished, committed.cut);
    println!(
        "history crash test: {KILLS} kills, {} committed messages ({} user, {replies} replies, \
         {finished} finished, {cut} cut off), {lost_messages} lost, max streamed text lost {:.0} ms \
         (limit {} ms), {:.1} s",
        committed.users.len() + replies,
        committed.users.len(),
        max_lost.as_secs_f64() * 1e3,
        MAX_LOST.as_millis(),
        started.elapsed().as_secs_f64()
    );
    assert!(finished > 0, "no reply finished: the kills came too early");
    assert_eq!(lost_messages, 0);
    assert!(max_lost <= MAX_LOST, "lost {max_lost:?} of streamed text");
}
