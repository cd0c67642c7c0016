//! The pseudonymisation kernel: one million Kundennummern to keyed pseudonyms, on one core and
//! spread over all cores as the pipeline does. Run with `cargo bench -p pseudagg-keys`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pseudagg_core::Month;
use pseudagg_keys::{MasterKey, PSEUDONYM_LEN, Pseudonymiser};
use rayon::prelude::*;

const N: usize = 1_000_000;

fn identifiers() -> Vec<String> {
    (0..N)
        .map(|i| {
            format!(
                "{:03}{}{:06}",
                100 + i % 900,
                char::from(b'A' + (i % 26) as u8),
                i
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let key = MasterKey::from_bytes([7; 32]);
    let p = Pseudonymiser::new(&key, "vkb", Month::new(2025, 3).unwrap());
    let ids = identifiers();
    let mut out = vec![[0u8; PSEUDONYM_LEN]; N];
    let mut g = c.benchmark_group("pseudonymise");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("1M identifiers, one core", |b| {
        b.iter(|| {
            for (id, slot) in ids.iter().zip(out.iter_mut()) {
                p.pseudonym_into(id, slot);
            }
        });
    });
    g.bench_function("1M identifiers, all cores", |b| {
        b.iter(|| {
            ids.par_chunks(8192)
                .zip(out.par_chunks_mut(8192))
                .for_each(|(ids, slots)| {
                    for (id, slot) in ids.iter().zip(slots.iter_mut()) {
                        p.pseudonym_into(id, slot);
                    }
                });
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
