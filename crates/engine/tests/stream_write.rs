//! Converted weights are written a tensor at a time: MLX's peak memory while writing a model
//! is about one tensor, not the model, and the file reads back bit for bit. Alone in its own
//! binary: MLX's peak-memory counter is process-wide.

use std::collections::HashMap;

use minibar_engine::convert::write::PendingFolder;
use mlx_rs::{Array, Dtype};

const TENSORS: usize = 8;
const ELEMENTS: i32 = 1 << 20; // 4 MB each in f32

/// Lazy arrays: nothing is computed until the writer asks.
fn model() -> HashMap<String, Array> {
    let mut m = HashMap::new();
    for i in 0..TENSORS {
        let a = mlx_rs::ops::arange::<_, f32>(0.0, ELEMENTS as f64, None).unwrap();
        let a = a.multiply(Array::from_f32(i as f32 + 1.0)).unwrap();
        m.insert(format!("layers.{i}.weight"), a);
    }
    // Other dtypes the converters write: packed integers and half precision.
    let packed = mlx_rs::ops::arange::<_, u32>(0, 96, None).unwrap();
    m.insert("packed.weight".into(), packed.reshape(&[8, 12]).unwrap());
    let half = mlx_rs::ops::arange::<_, f32>(0.0, 10.0, None).unwrap();
    m.insert(
        "norm.weight".into(),
        half.as_dtype(Dtype::Bfloat16).unwrap(),
    );
    m
}

#[test]
fn weights_are_written_one_tensor_at_a_time_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let folder = PendingFolder::new(&dest).unwrap();
    mlx_rs::memory::clear_cache().unwrap();
    mlx_rs::memory::reset_peak_memory().unwrap();
    let mut calls = 0;
    let written = folder
        .stream_weights(model(), &mut |_, _| {
            calls += 1;
            true
        })
        .unwrap();
    let peak = mlx_rs::memory::peak_memory().unwrap();
    let one = ELEMENTS as usize * 4;
    assert_eq!(written, TENSORS * one + 96 * 4 + 10 * 2);
    // One tensor and its inputs (arange, the product, the contiguous byte view) at most:
    // all eight at once would be 32 MB.
    assert!(peak <= 3 * one, "peak {peak} bytes for {one}-byte tensors");
    assert_eq!(
        calls,
        TENSORS + 2 + 1,
        "once per tensor, and once when done"
    );
    let path = folder.commit().unwrap();

    let back = Array::load_safetensors(path.join("model.safetensors")).unwrap();
    let want = model();
    assert_eq!(back.len(), want.len());
    for (name, a) in &want {
        let b = &back[name];
        assert_eq!(b.dtype(), a.dtype(), "{name}");
        assert_eq!(b.shape(), a.shape(), "{name}");
        let f32s = |x: &Array| {
            x.as_dtype(Dtype::Float32)
                .unwrap()
                .as_slice::<f32>()
                .to_vec()
        };
        assert!(f32s(b) == f32s(a), "{name} differs");
    }
}

#[test]
fn a_cancelled_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let folder = PendingFolder::new(&dest).unwrap();
    let e = folder
        .stream_weights(model(), &mut |done, _| done < 3)
        .unwrap_err();
    assert!(matches!(e, minibar_engine::EngineError::Cancelled));
    drop(folder);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
