//! minibar-fuzz: the fuzz tests' shared helpers, used only as a dev-dependency.
//!
//! Every parser of untrusted input (GGUF, safetensors headers, config.json, tokenizer.json,
//! chat templates, models.toml) has a test that feeds it mutations of a real, valid file and
//! requires it never to panic: a malformed file is an error, not a crash. Runs are seeded
//! ([`SEED`]), so a failure reproduces on every machine, and proptest shrinks it to a small
//! input before reporting it.
//!
//! - [`fuzz`] runs one format's cases and prints how many ran (`make test` reports the counts).
//! - [`byte_mutations`] / [`text_mutations`] damage a file blindly: bit flips, boundary
//!   integers written over length fields, truncation, deletion, duplication, insertion.
//! - [`json_mutations`] damage a JSON document where it matters: values replaced by zeros,
//!   negatives, huge numbers, wrong types, path escapes; keys removed.

#![forbid(unsafe_code)]

/// The property-testing library, re-exported so fuzz tests need no version of their own.
pub use proptest;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

/// The fixed seed of every run: the same cases on every machine and every run.
pub const SEED: [u8; 32] = *b"minibar fuzz: same cases always!";

/// Cases per format: `MINIBAR_FUZZ_CASES`, else 10,000.
pub fn cases() -> u32 {
    std::env::var("MINIBAR_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(10_000)
}

/// Runs `check` on [`cases`] values of `strategy` from the fixed seed; a panic in `check` fails
/// the test with the smallest input proptest can shrink it to. `check` says whether the parser
/// accepted the input (so the report shows how deep the cases reach). Prints
/// `fuzz <format>: <n> cases (<k> accepted), 0 panics` on success.
pub fn fuzz<S>(format: &str, strategy: S, check: impl Fn(S::Value) -> bool)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases: cases(),
        // Reproducible from the seed alone; nothing written next to the sources.
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
    let ran = AtomicU64::new(0);
    let accepted = AtomicU64::new(0);
    let started = Instant::now();
    let outcome = runner.run(&strategy, |value| {
        ran.fetch_add(1, Ordering::Relaxed);
        if check(value) {
            accepted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    let ran = ran.load(Ordering::Relaxed);
    let accepted = accepted.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => println!(
            "fuzz {format}: {ran} cases ({accepted} accepted), 0 panics ({secs:.1} s, seed {:?})",
            std::str::from_utf8(&SEED).unwrap_or("")
        ),
        Err(e) => panic!("fuzz {format}: a case panicked after {ran} runs: {e}"),
    }
}

/// A position as a fraction of a length (`u64::MAX` is the end), so a mutation drawn once
/// applies to a file of any length.
#[derive(Clone, Copy, Debug)]
pub struct Pos(pub u64);

impl Pos {
    /// The index this position falls on in `len` items (0 when there are none).
    pub fn index(&self, len: usize) -> usize {
        ((len as u128 * self.0 as u128) >> 64) as usize
    }
}

fn pos() -> impl Strategy<Value = Pos> {
    any::<u64>().prop_map(Pos)
}

/// One blind change to a file's bytes.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flip one bit.
    Flip(Pos, u8),
    /// Overwrite one byte.
    Set(Pos, u8),
    /// Overwrite 1, 2, 4 or 8 bytes with a boundary integer (little-endian), the way a corrupt
    /// length or count field looks.
    Int(Pos, u64, u8),
    /// Cut the file here.
    Truncate(Pos),
    /// Remove up to this many bytes.
    Delete(Pos, u8),
    /// Repeat up to this many bytes in place.
    Duplicate(Pos, u8),
    /// Insert bytes.
    Insert(Pos, Vec<u8>),
}

/// Integers at the edges of every width: zero, one, powers of two, maxima, sign bits.
pub fn boundary_integer() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(31),
        Just(32),
        Just(33),
        Just(0x7f),
        Just(0xff),
        Just(0x7fff),
        Just(0xffff),
        Just(0x7fff_ffff),
        Just(0x8000_0000),
        Just(0xffff_ffff),
        Just(1 << 32),
        Just(1 << 62),
        Just(i64::MAX as u64),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (pos(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (pos(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        3 => (pos(), boundary_integer(), prop::sample::select(vec![1u8, 2, 4, 8]))
            .prop_map(|(i, v, w)| Mutation::Int(i, v, w)),
        1 => pos().prop_map(Mutation::Truncate),
        1 => (pos(), 1u8..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (pos(), 1u8..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        1 => (pos(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

/// Applies mutations in order to a copy of `seed`.
pub fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for m in mutations {
        let len = out.len();
        let at = |i: &Pos| i.index(len);
        match m {
            Mutation::Flip(i, bit) if len > 0 => out[at(i)] ^= 1 << bit,
            Mutation::Set(i, b) if len > 0 => out[at(i)] = *b,
            Mutation::Int(i, v, width) => {
                let start = at(i);
                let bytes = v.to_le_bytes();
                for (k, b) in bytes.iter().take(*width as usize).enumerate() {
                    if let Some(slot) = out.get_mut(start + k) {
                        *slot = *b;
                    }
                }
            }
            Mutation::Truncate(i) => out.truncate(at(i)),
            Mutation::Delete(i, n) => {
                let start = at(i);
                let stop = (start + *n as usize).min(len);
                out.drain(start..stop);
            }
            Mutation::Duplicate(i, n) => {
                let start = at(i);
                let stop = (start + *n as usize).min(len);
                let copy = out[start..stop].to_vec();
                out.splice(start..start, copy);
            }
            Mutation::Insert(i, bytes) => {
                let start = at(i);
                out.splice(start..start, bytes.iter().copied());
            }
            _ => {}
        }
    }
    out
}

/// `seed` with one to eight blind mutations.
pub fn byte_mutations(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(mutation(), 1..=8).prop_map(move |ms| apply(&seed, &ms))
}

/// Text with one to eight blind mutations, made valid UTF-8 again (invalid bytes replaced).
pub fn text_mutations(seed: &str) -> impl Strategy<Value = String> {
    byte_mutations(seed.as_bytes().to_vec())
        .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Text with pieces of `dictionary` (syntax of the format) inserted, and blind mutations on top:
/// reaches deeper into a grammar than bytes alone.
pub fn spliced_text(
    seed: &str,
    dictionary: &'static [&'static str],
) -> impl Strategy<Value = String> {
    let seed = seed.to_string();
    (
        prop::collection::vec((pos(), prop::sample::select(dictionary)), 1..=4),
        prop::collection::vec(mutation(), 0..=3),
    )
        .prop_map(move |(inserts, ms)| {
            let mut text = seed.clone();
            for (i, piece) in inserts {
                let mut at = i.index(text.len() + 1).min(text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.insert_str(at, piece);
            }
            String::from_utf8_lossy(&apply(text.as_bytes(), &ms)).into_owned()
        })
}

/// JSON values that break assumptions: zeros, negatives, huge and fractional numbers, wrong
/// types, empty and path-escaping strings, empty containers.
pub fn hostile_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(0)),
        Just(Value::from(-1)),
        Just(Value::from(1)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(i64::MAX)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i32::MAX)),
        Just(Value::from(1u64 << 31)),
        Just(Value::from(0.5)),
        Just(Value::from(-0.0)),
        Just(Value::from(1e308)),
        Just(Value::Null),
        Just(Value::Bool(true)),
        Just(Value::from("")),
        Just(Value::from("../../etc/passwd")),
        Just(Value::from("/abs/path")),
        Just(Value::Array(Vec::new())),
        Just(Value::Object(Default::default())),
        any::<i32>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
    ]
}

/// Every node of a JSON document, as JSON pointers (the root is "").
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let key = k.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// One structural change to a JSON document.
#[derive(Clone, Debug)]
pub enum JsonMutation {
    /// Replace the node at this position with a hostile value.
    Replace(Pos, Value),
    /// Remove the node at this position from its object or array.
    Remove(Pos),
}

/// Applies JSON mutations in order to a copy of `seed`.
pub fn apply_json(seed: &Value, mutations: &[JsonMutation]) -> Value {
    let mut doc = seed.clone();
    for m in mutations {
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        let (Some(i), replacement) = (match m {
            JsonMutation::Replace(i, v) => (Some(i), Some(v)),
            JsonMutation::Remove(i) => (Some(i), None),
        }) else {
            continue;
        };
        let Some(ptr) = all.get(i.index(all.len())) else {
            continue;
        };
        match replacement {
            Some(v) => {
                if let Some(node) = doc.pointer_mut(ptr) {
                    *node = v.clone();
                }
            }
            None => {
                let Some((parent, last)) = ptr.rsplit_once('/') else {
                    continue;
                };
                let key = last.replace("~1", "/").replace("~0", "~");
                match doc.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&key);
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(i) = key.parse::<usize>() {
                            if i < a.len() {
                                a.remove(i);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    doc
}

/// A JSON document with one to four structural mutations, serialized; one case in five also
/// gets blind byte mutations on the text.
pub fn json_mutations(seed: Value) -> impl Strategy<Value = String> {
    let change = prop_oneof![
        4 => (pos(), hostile_json()).prop_map(|(i, v)| JsonMutation::Replace(i, v)),
        1 => pos().prop_map(JsonMutation::Remove),
    ];
    (
        prop::collection::vec(change, 1..=4),
        prop::option::weighted(0.2, prop::collection::vec(mutation(), 1..=4)),
    )
        .prop_map(move |(changes, blind)| {
            let text = apply_json(&seed, &changes).to_string();
            match blind {
                Some(ms) => String::from_utf8_lossy(&apply(text.as_bytes(), &ms)).into_owned(),
                None => text,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;

    #[test]
    fn mutations_stay_in_bounds() {
        let seed = b"0123456789".to_vec();
        let out = apply(
            &seed,
            &[
                Mutation::Int(Pos(u64::MAX / 20 * 19), u64::MAX, 8),
                Mutation::Delete(Pos(u64::MAX / 2 + 1), 2),
                Mutation::Duplicate(Pos(0), 2),
            ],
        );
        assert_eq!(out, b"010123478\xff".to_vec());
        assert!(apply(b"", &[Mutation::Flip(Pos(u64::MAX / 3), 1)]).is_empty());
    }

    #[test]
    fn json_mutations_reach_nested_values() {
        let seed = serde_json::json!({"a": {"b/c": [1, 2]}, "d": 3});
        let mut all = Vec::new();
        pointers(&seed, String::new(), &mut all);
        assert_eq!(all, ["/a/b~1c/0", "/a/b~1c/1", "/a/b~1c", "/a", "/d", ""]);
        let out = apply_json(&seed, &[JsonMutation::Replace(Pos(0), Value::from(0))]);
        assert_eq!(out["a"]["b/c"][0], 0);
        let out = apply_json(&seed, &[JsonMutation::Remove(Pos(u64::MAX / 5 * 3))]);
        assert!(out.get("a").is_none(), "{out}");
    }

    #[test]
    fn the_same_seed_gives_the_same_cases() {
        let draw = || {
            let mut runner = TestRunner::new_with_rng(
                Config::default(),
                TestRng::from_seed(RngAlgorithm::ChaCha, &SEED),
            );
            let s = byte_mutations(b"GGUF\x03\0\0\0".to_vec());
            (0..20)
                .map(|_| s.new_tree(&mut runner).unwrap().current())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }
}
