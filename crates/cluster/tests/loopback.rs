//! Ranks as processes on this machine's loopback, on the default model: a pipeline of 2 and
//! 3 ranks gives one process's greedy tokens; a rank killed mid-generation is named and the
//! others end on their own within the bound; a rank with other weights is refused. A cluster
//! that stays up answers job after job (prompts, a chat) as one process does, and re-forms
//! after a rank is killed.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use minibar_cluster::{keep_up, Ask, Client, Event, Job, Launcher, Prompt, Upkeep};
use minibar_engine::{
    generate::{Conversation, GenerateOptions},
    models::Transformer,
    CancelToken, ChatParams, LoadOptions, Message, Session,
};
use minibar_text::{GgufMetadata, TextModel};

/// One test at a time: each starts several processes that load the model and share the cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn launcher(grace: Duration) -> Launcher {
    Launcher {
        program: PathBuf::from(env!("CARGO_BIN_EXE_minibar-rank")),
        args: Vec::new(),
        grace,
    }
}

/// A prompt longer than one prefill chunk, so that prefill crosses the pipeline twice.
fn prompt(model: &Path) -> Vec<u32> {
    let text = TextModel::from_gguf(&GgufMetadata::open(model).unwrap()).unwrap();
    let sentence = "The quick brown fox jumps over the lazy dog near the river bank. ";
    let ids = text.encode(&sentence.repeat(24), true).unwrap();
    assert!(
        ids.len() > minibar_engine::generate::PREFILL_CHUNK,
        "{}",
        ids.len()
    );
    ids
}

fn one_process(model: &Path, ids: &[u32], max_tokens: usize) -> Vec<u32> {
    let loaded = minibar_engine::load(model, &LoadOptions::default()).unwrap();
    greedy(&loaded.model, ids, max_tokens)
}

/// One process's greedy tokens, from a fresh cache, end-of-sequence ignored.
fn greedy(model: &Transformer, ids: &[u32], max_tokens: usize) -> Vec<u32> {
    let mut conversation = Conversation::new(model, 8192);
    let opts = GenerateOptions {
        sampling: Default::default(),
        max_tokens,
        eos: Vec::new(),
        ignore_eos: true,
    };
    let mut tokens = Vec::new();
    conversation
        .generate(model, ids, &opts, &CancelToken::new(), |id| {
            tokens.push(id);
            true
        })
        .unwrap();
    tokens
}

fn job(model: &Path, ids: Vec<u32>, max_tokens: usize) -> Job {
    Job {
        model: model.to_owned(),
        prompt: Prompt::Tokens(ids),
        max_tokens,
        ignore_eos: true,
        stall_timeout: 10.0,
        startup_timeout: 120.0,
        ..Job::default()
    }
}

#[test]
fn two_and_three_ranks_give_one_process_tokens() {
    let Some(model) = minibar_testkit::default_gguf() else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ids = prompt(&model);
    let expected = one_process(&model, &ids, 12);
    for ranks in [2, 3] {
        let jobs = vec![job(&model, ids.clone(), 12); ranks];
        let mut streamed = Vec::new();
        let done = launcher(Duration::ZERO)
            .start(&jobs)
            .unwrap()
            .wait(|rank, e| {
                if let (0, Event::Token { id, .. }) = (rank, e) {
                    streamed.push(*id);
                }
            })
            .unwrap();
        let report = done.report.expect("rank 0 reports");
        assert_eq!(report.tokens, expected, "{ranks} ranks");
        assert_eq!(streamed, expected, "{ranks} ranks, as streamed");
        assert_eq!(report.prompt_tokens, ids.len());
        // Every rank holds layers, contiguously, and together all of them.
        let plan = done.plan;
        assert_eq!(plan.len(), ranks);
        assert_eq!(plan[0].layers[0], 0);
        assert!(plan.windows(2).all(|w| w[0].layers[1] == w[1].layers[0]));
        assert!(plan.iter().all(|n| n.layers[1] > n.layers[0]));
        assert_eq!(report.ranks.len(), ranks);
        assert!(report.bytes_per_token > 0.0, "{report:?}");
    }
}

#[test]
fn a_killed_rank_is_named_and_the_others_end_within_the_bound() {
    let Some(model) = minibar_testkit::default_gguf() else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let stall = 3.0;
    let jobs = vec![
        Job {
            stall_timeout: stall,
            ..job(&model, vec![1, 2, 3, 4], 2000)
        };
        3
    ];
    // Long enough that the launcher never has to kill a survivor: they end by themselves.
    let grace = Duration::from_secs(30);
    let running = launcher(grace).start(&jobs).unwrap();
    let victim = running.pids()[1] as i32;
    let name = running.hosts().name(1);
    let mut tokens = 0;
    let mut killed_at = None;
    let err = running
        .wait(|rank, e| {
            if let (0, Event::Token { .. }) = (rank, e) {
                tokens += 1;
                if tokens == 3 {
                    // SAFETY: kill(2) on the child this test started.
                    unsafe { libc::kill(victim, libc::SIGKILL) };
                    killed_at = Some(Instant::now());
                }
            }
        })
        .unwrap_err()
        .to_string();
    let killed_at = killed_at.expect("generation started before the kill");
    let took = killed_at.elapsed();
    eprintln!("rank 1 killed; the launcher returned after {took:?}: {err}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {err}");
    assert!(err.starts_with(&format!("{name} was killed")), "{err}");
    assert!(err.contains("SIGKILL"), "{err}");
    // The rank after the dead one names it, and rank 0 ends too.
    assert!(
        err.contains(&format!("{name} closed its connection")),
        "{err}"
    );
    assert!(err.contains("; then rank 0 (127.0.0.1:"), "{err}");
    // Every process has ended (its memory freed); a cluster formed again serves.
    let done = launcher(Duration::ZERO)
        .start(&vec![job(&model, vec![1, 2, 3, 4], 4); 2])
        .unwrap()
        .wait(|_, _| {})
        .unwrap();
    assert_eq!(done.report.unwrap().tokens.len(), 4);
}

#[test]
fn a_rank_with_other_weights_is_refused_with_the_reason() {
    let Some(model) = minibar_testkit::default_gguf() else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The same model but for its last tensor's final bytes: another fine-tune would differ
    // everywhere (any byte would do: the fingerprint hashes them all).
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.gguf");
    let mut bytes = std::fs::read(&model).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - 1024..] {
        *b ^= 0x11;
    }
    std::fs::write(&other, &bytes).unwrap();
    let check = Job {
        check_only: true,
        ..job(&model, vec![1], 1)
    };
    let jobs = vec![
        check.clone(),
        Job {
            model: other,
            ..check
        },
    ];
    let err = launcher(Duration::from_secs(5))
        .start(&jobs)
        .unwrap()
        .wait(|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("rank 1 (127.0.0.1:"), "{err}");
    assert!(err.contains("model files differ"), "{err}");
}

#[test]
fn every_architecture_splits_into_three_ranks_with_one_process_tokens() {
    let Some(python) = minibar_testkit::reference_python() else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The engine tests' tiny random-weight models (3 layers each: one per rank), built by
    // mlx-lm once and cached.
    let tiny = minibar_testkit::script_fixture("tiny-models", "tiny_models.py", |dir| {
        minibar_testkit::run_python(
            &python,
            &[minibar_testkit::script("tiny_models.py").as_path(), dir],
        );
    });
    let ids: Vec<u32> = vec![1, 17, 42, 99, 5, 23, 64, 8];
    for arch in ["llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3"] {
        let model = tiny.join(arch);
        let expected = one_process(&model, &ids, 8);
        let done = launcher(Duration::ZERO)
            .start(&vec![job(&model, ids.clone(), 8); 3])
            .unwrap()
            .wait(|_, _| {})
            .unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert_eq!(done.report.unwrap().tokens, expected, "{arch}");
    }
}

/// Keeps a 2-rank cluster up on `socket` in a thread; the ranks' process ids arrive on the
/// receiver each time they are started.
fn stay_up(
    model: &Path,
    socket: &Path,
    stall: f64,
) -> (
    std::thread::JoinHandle<minibar_cluster::Result<()>>,
    std::sync::mpsc::Receiver<Vec<u32>>,
) {
    let jobs = vec![
        Job {
            control: Some(socket.to_owned()),
            stall_timeout: stall,
            ..job(model, Vec::new(), 0)
        };
        2
    ];
    let (tx, rx) = std::sync::mpsc::channel();
    // The survivors end by themselves (rank 0 tells the client first), well within this.
    let launcher = launcher(Duration::from_secs(30));
    let up = std::thread::spawn(move || {
        keep_up(
            || launcher.start(&jobs),
            |u| {
                if let Upkeep::Started(pids) = u {
                    let _ = tx.send(pids);
                }
            },
        )
    });
    (up, rx)
}

#[test]
fn a_cluster_that_stays_up_answers_prompts_and_a_chat_as_one_process() {
    let Some(model) = minibar_testkit::default_gguf() else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cluster.sock");
    let (up, _pids) = stay_up(&model, &socket, 10.0);
    let client = Client::new(&socket);
    client.wait_up(Duration::from_secs(120)).unwrap();
    let mut session = Session::open(&model, &LoadOptions::default(), None).unwrap();

    // Two prompts, one after the other on the same ranks: each job starts from empty caches.
    for ids in [prompt(&model), vec![1, 17, 42, 99]] {
        let expected = greedy(&session.model.model, &ids, 8);
        let mut streamed = Vec::new();
        let ask = Ask {
            prompt: Prompt::Tokens(ids.clone()),
            max_tokens: 8,
            ignore_eos: true,
            ..Ask::default()
        };
        let report = client
            .generate(&ask, |e| {
                if let Event::Token { id, .. } = e {
                    streamed.push(*id);
                }
                true
            })
            .unwrap();
        assert_eq!(report.tokens, expected, "{} prompt tokens", ids.len());
        assert_eq!(streamed, expected);
    }

    // A two-turn chat: the same template, the same greedy replies as one process.
    let params = ChatParams {
        max_tokens: 12,
        ..ChatParams::default()
    };
    let mut messages = Vec::new();
    for (turn, question) in ["What is the capital of France?", "And of Italy?"]
        .into_iter()
        .enumerate()
    {
        messages.push(Message::user(question));
        let ask = Ask {
            prompt: Prompt::Messages(messages.clone()),
            max_tokens: params.max_tokens,
            ..Ask::default()
        };
        let reply = client.generate(&ask, |_| true).unwrap();
        let one = session
            .chat(&messages, &params, &CancelToken::new(), |_| {})
            .unwrap();
        assert_eq!(reply.text, one.text, "turn {turn}");
        messages.push(Message::assistant(reply.text));
    }
    assert!(messages[1].content.contains("Paris"), "{messages:?}");
    // A stop string ends the reply and is left out of it, as in one process.
    let params = ChatParams {
        stop: vec!["Paris".into()],
        ..params
    };
    let ask = Ask {
        prompt: Prompt::Messages(messages[..1].to_vec()),
        max_tokens: params.max_tokens,
        stop: params.stop.clone(),
        ..Ask::default()
    };
    let reply = client.generate(&ask, |_| true).unwrap();
    let one = session
        .chat(&messages[..1], &params, &CancelToken::new(), |_| {})
        .unwrap();
    assert_eq!((reply.finish.as_str(), &reply.text), ("stop", &one.text));
    assert!(!reply.text.contains("Paris"), "{reply:?}");

    client.shutdown().unwrap();
    up.join().unwrap().unwrap();
    assert!(!socket.exists(), "rank 0 removes its socket");
}

#[test]
fn a_cluster_that_stays_up_names_a_killed_rank_and_forms_again() {
    let Some(model) = minibar_testkit::default_gguf() else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cluster.sock");
    let (up, pids) = stay_up(&model, &socket, 3.0);
    let client = Client::new(&socket);
    let first = pids.recv().unwrap();
    client.wait_up(Duration::from_secs(120)).unwrap();
    let long = Ask {
        prompt: Prompt::Tokens(vec![1, 2, 3, 4]),
        max_tokens: 2000,
        ignore_eos: true,
        ..Ask::default()
    };
    let mut tokens = 0;
    let mut killed_at = None;
    let err = client
        .generate(&long, |e| {
            if let Event::Token { .. } = e {
                tokens += 1;
                if tokens == 3 {
                    // SAFETY: kill(2) on a rank this test started.
                    unsafe { libc::kill(first[1] as i32, libc::SIGKILL) };
                    killed_at = Some(Instant::now());
                }
            }
            true
        })
        .unwrap_err()
        .to_string();
    let took = killed_at
        .expect("the job started before the kill")
        .elapsed();
    eprintln!("rank 1 killed; the client heard after {took:?}: {err}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {err}");
    // Rank 0 names rank 1, whether it saw the doorbell close or the ring's send fail.
    assert!(err.starts_with("rank 1 (127.0.0.1:"), "{err}");
    assert!(
        err.contains("closed its connection") || err.contains("stopped taking activations"),
        "{err}"
    );
    // The cluster forms again, on fresh processes, and serves the next job.
    let second = pids.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(
        second.iter().all(|p| !first.contains(p)),
        "{first:?} {second:?}"
    );
    client.wait_up(Duration::from_secs(120)).unwrap();
    let short = Ask {
        max_tokens: 4,
        ..long.clone()
    };
    assert_eq!(client.generate(&short, |_| true).unwrap().tokens.len(), 4);
    // A client that stops the job early (Ctrl-C) gets the tokens so far, and the cluster
    // serves on.
    let mut seen = 0;
    let stopped = client
        .generate(&long, |_| {
            seen += 1;
            seen < 3
        })
        .unwrap();
    assert_eq!(stopped.finish, "cancelled", "{stopped:?}");
    assert!((3..10).contains(&stopped.tokens.len()), "{stopped:?}");
    assert_eq!(client.generate(&short, |_| true).unwrap().tokens.len(), 4);
    client.shutdown().unwrap();
    up.join().unwrap().unwrap();
}
