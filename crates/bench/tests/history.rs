//! The SQLite history keeps every run with its samples and compares runs.

mod support;

use minibar_bench::{history::compare_runs, History};

#[test]
fn saves_lists_loads_compares_and_deletes_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/bench.sqlite");
    let mut first = support::sample_run(1.0);
    let mut second = support::sample_run(1.25);
    {
        let mut h = History::open(&path).unwrap();
        let a = h.save(&mut first).unwrap();
        let b = h.save(&mut second).unwrap();
        assert_eq!(first.id, Some(a));
        assert!(b > a);
    }
    // Reopened: the history persists on disk.
    let mut h = History::open(&path).unwrap();
    let list = h.list().unwrap();
    assert_eq!(
        list.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![second.id.unwrap(), first.id.unwrap()]
    );
    assert_eq!(
        list[0].models,
        vec!["SmolLM2-135M-Instruct.Q4_1", "tiny, \"quoted\" | piped"]
    );
    assert_eq!(list[0].mode, "full");

    let loaded = h.load(first.id.unwrap()).unwrap().unwrap();
    assert_eq!(loaded, first);
    assert_eq!(h.latest().unwrap().unwrap(), second);

    let samples = h.samples(first.id.unwrap()).unwrap();
    // 2 models x 3 tests x 3 samples, plus 2 batch sizes x 2 samples.
    assert_eq!(samples.len(), 2 * 3 * 3 + 2 * 2);
    assert_eq!(samples[0].test, "pp512");
    assert_eq!(samples[0].ts, 250.0);
    assert_eq!(samples[1].repetition, 1);

    let cmp = h.compare(first.id.unwrap(), second.id.unwrap()).unwrap();
    assert_eq!(cmp.len(), 2 * 3 + 2);
    for c in &cmp {
        assert!((c.ratio - 1.25).abs() < 1e-9, "{c:?}");
    }
    assert_eq!(cmp, compare_runs(&first, &second));
    assert!(h.compare(first.id.unwrap(), 999).is_err());

    assert!(h.delete(first.id.unwrap()).unwrap());
    assert!(!h.delete(first.id.unwrap()).unwrap());
    assert!(h.load(first.id.unwrap()).unwrap().is_none());
    assert!(
        h.samples(first.id.unwrap()).unwrap().is_empty(),
        "samples go with their run"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sqlite");
    std::fs::write(
        &path,
        "this is not SQLite, just some text long enough to be a header....",
    )
    .unwrap();
    let err = History::open(&path)
        .err()
        .expect("opening garbage must fail");
    assert!(err.to_string().contains("bench.sqlite"), "{err}");
}
