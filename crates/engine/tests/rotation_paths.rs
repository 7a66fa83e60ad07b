//! The CPU rotates queries and keys with precomputed tables, Metal with MLX's RoPE kernel.
//! Both graphs run here on MLX's CPU backend, where the kernel's own fallback stands in for
//! Metal's: for every tiny architecture and rotary variant, a prompt and then single-token
//! steps (the fused-projection path) must give the same logits either way.

mod support;

use minibar_engine::{load, Backend, Dequantize, LoadOptions};
use mlx_rs::{ops::indexing::IndexOp, Array, Dtype};
use support::*;

fn run(model: &minibar_engine::LoadedModel, prompt: &[u32], backend: Backend) -> Vec<Vec<f32>> {
    let m = &model.model;
    let mut caches = m.make_caches();
    let mut out = Vec::new();
    let mut ids = Array::from_slice(prompt, &[1, prompt.len() as i32]);
    for step in 0..4u32 {
        let h = m.hidden_as_on(&ids, &mut caches, None, backend).unwrap();
        let last = m
            .logits(&h.index((.., -1.., ..)))
            .unwrap()
            .reshape(&[-1])
            .unwrap()
            .as_dtype(Dtype::Float32)
            .unwrap();
        last.eval().unwrap();
        out.push(last.as_slice::<f32>().to_vec());
        ids = Array::from_slice(&[7 + step * 13], &[1, 1]);
    }
    out
}

#[test]
fn tables_and_kernel_rotate_alike() {
    let Some(python) = python() else { return };
    let root = tiny_models(&python);
    let prompt: Vec<u32> = vec![3, 17, 42, 7, 99, 128, 5, 64, 200, 11, 31, 250];
    let mut names: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(
        names.len() >= 11,
        "expected every tiny model, found {names:?}"
    );
    for dir in names {
        let model = load(
            &dir,
            &LoadOptions {
                dequantize: Dequantize::Never,
                dtype: None,
                ..Default::default()
            },
        )
        .unwrap();
        let cpu = run(&model, &prompt, Backend::Cpu);
        let metal = run(&model, &prompt, Backend::Metal);
        for (step, (a, b)) in cpu.iter().zip(&metal).enumerate() {
            let err = relative_error(a, b);
            assert!(
                err <= 1e-5,
                "{}: step {step}: tables and kernel differ by {err:.2e}",
                dir.display()
            );
        }
    }
}
