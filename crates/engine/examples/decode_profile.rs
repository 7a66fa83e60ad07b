//! Where a decode step's time goes: the whole step against its matrix products alone.
//! usage: cargo run --release -p minibar-engine --example decode_profile -- MODEL [STEPS]

use std::time::Instant;

use minibar_engine::{
    generate::{Conversation, GenerateOptions},
    layers::Linear,
    load, LoadOptions,
};
use mlx_rs::{ops::indexing::IndexOp, random, transforms::eval, Array};

fn time_linear(l: &Linear, reps: usize) -> f64 {
    let inp = match l {
        Linear::Dense { weight, .. } => weight.shape()[1],
        Linear::Quantized { weight, .. } => weight.shape()[1] * 32 / 4,
    };
    let x = random::normal::<f32>(&[1, 1, inp], None, None, None).unwrap();
    eval([&x]).unwrap();
    let t = Instant::now();
    for _ in 0..reps {
        let y = l.forward(&x).unwrap();
        eval([&y]).unwrap();
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("MODEL");
    let steps: usize = args.next().map_or(64, |s| s.parse().unwrap());
    let loaded = load(path.as_ref(), &LoadOptions::default()).unwrap();
    let model = &loaded.model;
    let mut conv = Conversation::new(model, 4096);
    let opts = GenerateOptions {
        sampling: Default::default(),
        max_tokens: steps,
        eos: vec![],
        ignore_eos: true,
    };
    let cancel = minibar_engine::CancelToken::new();
    let long: Vec<u32> = (0..512).map(|i| 100 + (i * 37) % 40000).collect();
    let mut warm = Conversation::new(model, 4096);
    let once = GenerateOptions {
        max_tokens: 1,
        ..opts.clone()
    };
    warm.generate(model, &long[..64], &once, &cancel, |_| true)
        .unwrap();
    let mut fresh = Conversation::new(model, 4096);
    let (_, pp) = fresh
        .generate(model, &long, &once, &cancel, |_| true)
        .unwrap();
    println!("prefill 512        {:8.1} t/s", pp.prefill_tps());
    let prompt: Vec<u32> = (1..33).collect();
    let (_, stats) = conv
        .generate(model, &prompt, &opts, &cancel, |_| true)
        .unwrap();
    let step = 1.0 / stats.decode_tps();
    let mut caches = model.make_caches();
    let ids = Array::from_slice(&prompt, &[1, prompt.len() as i32]);
    let l = model.forward(&ids, &mut caches, None).unwrap();
    eval([&l]).unwrap();
    let (mut build, mut run) = (0.0, 0.0);
    for i in 0..steps {
        let t = Instant::now();
        let ids = Array::from_slice(&[(i % 1000) as u32 + 5], &[1, 1]);
        let l = model.forward(&ids, &mut caches, None).unwrap();
        let t2 = Instant::now();
        eval([&l]).unwrap();
        build += (t2 - t).as_secs_f64();
        run += t2.elapsed().as_secs_f64();
    }
    // The same greedy decode, pipelined as mlx-lm does it: the next token is chosen in the
    // graph and the step after it is built and queued before the host reads it.
    let mut caches = model.make_caches();
    let ids = Array::from_slice(&prompt, &[1, prompt.len() as i32]);
    let l = model.forward(&ids, &mut caches, None).unwrap();
    let pick = |l: &Array| {
        let last = l.index((.., -1, ..));
        mlx_rs::ops::indexing::argmax_axis(&last, -1, true).unwrap()
    };
    let mut y = pick(&l);
    mlx_rs::transforms::async_eval([&y]).unwrap();
    let t = Instant::now();
    for _ in 0..steps {
        let l = model.forward(&y, &mut caches, None).unwrap();
        let next = pick(&l);
        mlx_rs::transforms::async_eval([&next]).unwrap();
        let _token: u32 = y.item_cast();
        y = next;
    }
    let _token: u32 = y.item_cast();
    println!(
        "pipelined greedy   {:8.2} ms",
        t.elapsed().as_secs_f64() / steps as f64 * 1e3
    );
    println!(
        "graph build        {:8.2} ms, eval {:.2} ms",
        build / steps as f64 * 1e3,
        run / steps as f64 * 1e3
    );
    let b = &model.blocks[0];
    let per_kind: Vec<f64> = b
        .linears()
        .into_iter()
        .map(|l| time_linear(l, 50))
        .collect();
    let layers = model.blocks.len() as f64;
    let blocks: f64 = per_kind.iter().sum::<f64>() * layers;
    let head = match &model.lm_head {
        Some(h) => time_linear(h, 10),
        None => time_linear(
            &model
                .embed
                .as_ref()
                .expect("a whole model has embeddings")
                .table,
            10,
        ),
    };
    let ms = |s: f64| s * 1e3;
    println!(
        "decode step        {:8.2} ms ({:.1} t/s)",
        ms(step),
        1.0 / step
    );
    println!(
        "block matmuls      {:8.2} ms (per layer, in order, q k v and gate up fused: {:?} us)",
        ms(blocks),
        per_kind
            .iter()
            .map(|s| (s * 1e6).round())
            .collect::<Vec<_>>()
    );
    println!("output matmul      {:8.2} ms", ms(head));
    println!("rest (overhead)    {:8.2} ms", ms(step - blocks - head));
}
