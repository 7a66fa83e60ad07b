//! Where a batched decode step's time goes as the batch grows: whole steps of a
//! [`DecodeBatch`] at several sizes, and the cache writes of one step alone.
//! usage: cargo run --release -p minibar-engine --example batch_profile -- MODEL [CONTEXT] [ROWS,..]

use std::time::Instant;

use minibar_engine::{cache::KvCache, continuous::DecodeBatch, load, LoadOptions};
use mlx_rs::{random, transforms::eval, Array};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("MODEL");
    let context: usize = args.next().map_or(260, |s| s.parse().unwrap());
    let sizes: Vec<usize> = args.next().map_or(vec![1, 2, 8, 16, 32], |s| {
        s.split(',').map(|n| n.parse().unwrap()).collect()
    });
    let loaded = load(path.as_ref(), &LoadOptions::default()).unwrap();
    let model = &loaded.model;
    let layers = model.make_caches().len();
    println!("| rows | step ms | ms per row | cache writes ms |");
    println!("|---:|---:|---:|---:|");
    for rows in sizes {
        let mut batch = DecodeBatch::new(model);
        let prompts: Vec<Vec<u32>> = (0..rows)
            .map(|r| {
                (0..context as u32)
                    .map(|i| 100 + (i * 31 + r as u32 * 7) % 4000)
                    .collect()
            })
            .collect();
        for chunk in prompts.chunks(8) {
            batch.join_many(model, chunk).unwrap();
        }
        let tokens: Vec<u32> = (0..rows as u32).map(|r| 200 + r).collect();
        for _ in 0..3 {
            batch.step(model, &tokens).unwrap();
        }
        let steps = 10;
        let t = Instant::now();
        for _ in 0..steps {
            batch.step(model, &tokens).unwrap();
        }
        let step = t.elapsed().as_secs_f64() * 1e3 / steps as f64;
        // The cache writes of one step: every layer's keys and values, one position per row.
        let mut caches: Vec<KvCache> = (0..layers).map(|_| KvCache::new()).collect();
        let kv =
            random::normal::<f32>(&[rows as i32, 3, context as i32, 64], None, None, None).unwrap();
        for c in &mut caches {
            let v = c.update_and_fetch(&kv, &kv).unwrap();
            eval([&v.keys, &v.values]).unwrap();
        }
        let one: Array = random::normal::<f32>(&[rows as i32, 3, 1, 64], None, None, None).unwrap();
        eval([&one]).unwrap();
        let t = Instant::now();
        for _ in 0..steps {
            let mut out = Vec::new();
            for c in &mut caches {
                let v = c.update_and_fetch(&one, &one).unwrap();
                out.push(v.keys);
                out.push(v.values);
            }
            eval(out.iter()).unwrap();
        }
        let writes = t.elapsed().as_secs_f64() * 1e3 / steps as f64;
        println!(
            "| {rows} | {step:.1} | {:.2} | {writes:.1} |",
            step / rows as f64
        );
    }
}
