//! GGUF metadata reading: every value type, corrupt and truncated files, and the default model
//! file against llama.cpp's own Python reader (`gguf`).

mod common;

use std::path::Path;

use minibar_testkit::{gguf_string as string, GgufWriter as Writer};
use minibar_text::{GgufError, GgufMetadata, GgufValue};
use serde_json::Value;

fn parse(bytes: &[u8]) -> Result<GgufMetadata, GgufError> {
    GgufMetadata::from_reader(bytes, bytes.len() as u64, Path::new("test.gguf"))
}

fn str_value(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    string(&mut v, s);
    v
}

fn sample() -> Writer {
    let mut w = Writer::default();
    w.key("u8", 0, &[7])
        .key("i8", 1, &(-3i8).to_le_bytes())
        .key("u16", 2, &500u16.to_le_bytes())
        .key("i16", 3, &(-500i16).to_le_bytes())
        .key("u32", 4, &70000u32.to_le_bytes())
        .key("i32", 5, &(-70000i32).to_le_bytes())
        .key("f32", 6, &1.5f32.to_le_bytes())
        .key("bool", 7, &[1])
        .key("str", 8, &str_value("héllo"))
        .key("u64", 10, &(1u64 << 40).to_le_bytes())
        .key("i64", 11, &(-(1i64 << 40)).to_le_bytes())
        .key("f64", 12, &0.25f64.to_le_bytes());
    let mut arr = 8u32.to_le_bytes().to_vec();
    arr.extend(2u64.to_le_bytes());
    arr.extend(str_value("a b"));
    arr.extend(str_value("ü"));
    w.key("strs", 9, &arr);
    let mut ints = 5u32.to_le_bytes().to_vec();
    ints.extend(3u64.to_le_bytes());
    for i in [1i32, -2, 3] {
        ints.extend(i.to_le_bytes());
    }
    w.key("ints", 9, &ints);
    // Four f32 values then an F16 2x2 tensor right after them.
    w.tensor("a", &[4], 0, 0).tensor("b", &[2, 2], 1, 16);
    w
}

#[test]
fn reads_every_value_type_and_the_tensor_directory() {
    let bytes = sample().bytes(24);
    let m = parse(&bytes).unwrap();
    assert_eq!(m.version, 3);
    assert_eq!(m.get("u8"), Some(&GgufValue::U8(7)));
    assert_eq!(m.get_i64("i8").unwrap(), Some(-3));
    assert_eq!(m.get_u64("u16").unwrap(), Some(500));
    assert_eq!(m.get_i64("i16").unwrap(), Some(-500));
    assert_eq!(m.get_u64("u32").unwrap(), Some(70000));
    assert_eq!(m.get_i64("i32").unwrap(), Some(-70000));
    assert_eq!(m.get_f64("f32").unwrap(), Some(1.5));
    assert_eq!(m.get_bool("bool").unwrap(), Some(true));
    assert_eq!(m.get_str("str").unwrap(), Some("héllo"));
    assert_eq!(m.get_u64("u64").unwrap(), Some(1 << 40));
    assert_eq!(m.get_i64("i64").unwrap(), Some(-(1 << 40)));
    assert_eq!(m.get_f64("f64").unwrap(), Some(0.25));
    assert_eq!(m.get_str_array("strs").unwrap(), Some(vec!["a b", "ü"]));
    assert_eq!(m.get_i64_array("ints").unwrap(), Some(vec![1, -2, 3]));
    assert_eq!(
        m.get_u64("i8").unwrap_err().to_string(),
        "GGUF metadata key 'i8' is int8, expected unsigned integer"
    );
    assert!(matches!(m.get_str("u8"), Err(GgufError::WrongType { .. })));
    assert!(matches!(
        m.require_str("absent"),
        Err(GgufError::MissingKey { .. })
    ));
    assert_eq!(m.get_str("absent").unwrap(), None);
    assert_eq!(m.tensors.len(), 2);
    assert_eq!(m.tensors[1].name, "b");
    assert_eq!(m.tensors[1].dims, vec![2, 2]);
    assert_eq!(m.tensors[1].byte_size(), Some(8));
    assert_eq!(m.data_offset % 32, 0);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = sample().bytes(24);
    for len in 0..bytes.len() {
        let err =
            parse(&bytes[..len]).expect_err(&format!("a file cut at {len} bytes must not parse"));
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                GgufError::Truncated { .. } | GgufError::BadMagic { .. }
            ),
            "cut at {len}: unexpected error {msg}"
        );
        assert!(!msg.contains('\n'), "errors are one line: {msg}");
    }
}

#[test]
fn absurd_counts_fail_fast_without_allocating() {
    // An array claiming 2^60 strings in a tiny file.
    let mut arr = 8u32.to_le_bytes().to_vec();
    arr.extend((1u64 << 60).to_le_bytes());
    let bytes = Writer::default().key("tokens", 9, &arr).bytes(0);
    assert!(matches!(parse(&bytes), Err(GgufError::Truncated { .. })));

    // A string claiming u64::MAX bytes.
    let mut w = Writer::default();
    string(&mut w.kv, "k");
    w.kv.extend(8u32.to_le_bytes());
    w.kv.extend(u64::MAX.to_le_bytes());
    w.n_kv = 1;
    assert!(matches!(
        parse(&w.bytes(0)),
        Err(GgufError::Truncated { .. })
    ));

    // Header claiming 2^62 key/value pairs and 2^62 tensors.
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend((1u64 << 62).to_le_bytes());
    bytes.extend((1u64 << 62).to_le_bytes());
    assert!(matches!(parse(&bytes), Err(GgufError::Truncated { .. })));
}

#[test]
fn metadata_values_are_capped_so_memory_is_bounded() {
    // One byte in the file becomes a 32-byte value in memory: past the cap, the file is refused.
    let n = minibar_text::gguf::MAX_METADATA_VALUES;
    let mut arr = 0u32.to_le_bytes().to_vec();
    arr.extend(n.to_le_bytes());
    arr.resize(arr.len() + n as usize, 7);
    let bytes = Writer::default().key("blob", 9, &arr).bytes(0);
    let e = parse(&bytes).unwrap_err();
    assert!(
        matches!(e, GgufError::Corrupt { ref problem, .. } if problem.contains("metadata values")),
        "{e}"
    );
}

#[test]
fn tensor_sizes_that_overflow_are_corrupt() {
    for dims in [&[1u64 << 62, 1 << 62][..], &[u64::MAX][..], &[33][..]] {
        // F32 overflows the byte count; Q4_0 (type 2) needs whole blocks of 32.
        let ty = if dims == [33] { 2 } else { 0 };
        let bytes = Writer::default().tensor("t", dims, ty, 0).bytes(64);
        let e = parse(&bytes).unwrap_err();
        assert!(
            matches!(e, GgufError::Corrupt { ref problem, .. } if problem.contains("impossible size")),
            "{dims:?}: {e}"
        );
    }
}

#[test]
fn corrupt_structures_are_named() {
    assert!(matches!(
        parse(b"GGML\x03\0\0\0"),
        Err(GgufError::BadMagic { .. })
    ));
    let mut v = b"GGUF".to_vec();
    v.extend(99u32.to_le_bytes());
    v.extend([0u8; 16]);
    assert!(matches!(
        parse(&v),
        Err(GgufError::UnsupportedVersion { version: 99, .. })
    ));
    let bad_type = Writer::default().key("k", 42, &[0; 8]).bytes(0);
    assert!(matches!(parse(&bad_type), Err(GgufError::Corrupt { .. })));
    let bad_bool = Writer::default().key("k", 7, &[2]).bytes(0);
    assert!(matches!(parse(&bad_bool), Err(GgufError::Corrupt { .. })));
    let mut deep = Writer::default();
    let mut nested = Vec::new();
    for _ in 0..10 {
        nested.extend(9u32.to_le_bytes());
        nested.extend(1u64.to_le_bytes());
    }
    nested.extend([0u8; 64]);
    deep.key("k", 9, &nested);
    assert!(matches!(
        parse(&deep.bytes(0)),
        Err(GgufError::Corrupt { .. })
    ));
}

#[test]
fn tensor_data_cut_short_is_reported() {
    // The directory promises 24 bytes of data; give 20 (tensor 'a' fits, 'b' does not).
    let bytes = sample().bytes(20);
    match parse(&bytes) {
        Err(GgufError::Truncated { what, .. }) => assert!(what.contains("tensor 'b'"), "{what}"),
        other => panic!("expected truncated tensor data, got {other:?}"),
    }
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = GgufMetadata::open("/nonexistent/model.gguf").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");
}

/// Our value as the JSON that the Python reader's `contents()` gives.
fn to_json(v: &GgufValue) -> Value {
    match v {
        GgufValue::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        GgufValue::String(s) => Value::from(s.as_str()),
        GgufValue::Bool(b) => Value::from(*b),
        GgufValue::F32(f) => Value::from(f64::from(*f)),
        GgufValue::F64(f) => Value::from(*f),
        GgufValue::U64(u) => Value::from(*u),
        other => Value::from(other.as_i64().unwrap()),
    }
}

#[test]
fn default_gguf_matches_the_gguf_python_reader() {
    let Some(path) = minibar_testkit::default_gguf() else {
        return;
    };
    let Some(python) = minibar_testkit::reference_python() else {
        return;
    };
    let ours = GgufMetadata::open(&path).unwrap();
    let theirs = common::run_reference(&python, "gguf_metadata.py", &[path.as_os_str()]);
    assert_eq!(theirs["version"], ours.version);
    assert_eq!(theirs["data_offset"], ours.data_offset);
    let kv = theirs["kv"].as_object().unwrap();
    assert_eq!(kv.len(), ours.kv.len(), "same number of keys");
    for (key, value) in &ours.kv {
        let t = &kv[key];
        assert_eq!(
            t["type"].as_str().unwrap(),
            value.type_name().to_uppercase(),
            "{key}"
        );
        assert_eq!(t["value"], to_json(value), "{key}");
    }
    let tensors = theirs["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), ours.tensors.len());
    for (t, o) in tensors.iter().zip(&ours.tensors) {
        assert_eq!(t["name"], o.name.as_str());
        assert_eq!(t["type"], o.ggml_type);
        assert_eq!(t["offset"], o.offset);
        let dims: Vec<u64> = serde_json::from_value(t["dims"].clone()).unwrap();
        assert_eq!(dims, o.dims, "{}", o.name);
    }
}

#[test]
fn default_gguf_cut_short_is_a_one_line_error() {
    let Some(path) = minibar_testkit::default_gguf() else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let full = GgufMetadata::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Inside the vocabulary, just past the metadata, and one byte short of the end.
    for cut in [100_000, full.data_offset as usize + 10, bytes.len() - 1] {
        let p = dir.path().join("cut.gguf");
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let err = GgufMetadata::open(&p).expect_err("a cut file must not open");
        let msg = err.to_string();
        assert!(
            matches!(err, GgufError::Truncated { .. }),
            "cut at {cut}: {msg}"
        );
        assert!(msg.contains("cut.gguf") && !msg.contains('\n'), "{msg}");
    }
}
