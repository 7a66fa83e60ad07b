//! MLX's peak memory while loading, then above the weights for one prompt's prefill and for
//! its generation, to compare with mlx-lm's (`mx.get_peak_memory()` after `model(prompt)` on
//! the same folder).
//! usage: cargo run --release -p minibar-engine --example peak_probe -- MODEL [PROMPT] [GEN]

use minibar_engine::{
    generate::{Conversation, GenerateOptions},
    load, CancelToken, LoadOptions,
};

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("MODEL");
    let prompt_len: u32 = args.next().map_or(512, |s| s.parse().unwrap());
    let gen: usize = args.next().map_or(128, |s| s.parse().unwrap());
    mlx_rs::memory::reset_peak_memory().unwrap();
    let loaded = load(path.as_ref(), &LoadOptions::default()).unwrap();
    let model = &loaded.model;
    let weights = mlx_rs::memory::active_memory().unwrap();
    let load_peak = mlx_rs::memory::peak_memory().unwrap();
    let cancel = CancelToken::new();
    let prompt: Vec<u32> = (0..prompt_len).map(|i| 100 + (i * 37) % 40000).collect();
    println!(
        "weights {:.1} MB, loading peak {:.1} MB",
        mb(weights),
        mb(load_peak)
    );
    for (label, max_tokens) in [("prefill", 1), ("prefill + generation", gen)] {
        mlx_rs::memory::reset_peak_memory().unwrap();
        let opts = GenerateOptions {
            sampling: Default::default(),
            max_tokens,
            eos: vec![],
            ignore_eos: true,
        };
        let mut c = Conversation::new(model, prompt.len() + gen + 8);
        c.generate(model, &prompt, &opts, &cancel, |_| true)
            .unwrap();
        let peak = mlx_rs::memory::peak_memory().unwrap();
        println!(
            "{label:22} peak {:.1} MB ({:+.1} MB above the weights)",
            mb(peak),
            mb(peak - weights)
        );
    }
}
