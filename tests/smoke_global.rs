//! A quick end-to-end check with `RustyAlloc` as this test binary's global allocator.

use rustydb_memory::RustyAlloc;

#[global_allocator]
static GLOBAL: RustyAlloc = RustyAlloc::new();

#[test]
fn collections_work_across_threads() {
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut v: Vec<String> = Vec::new();
                for i in 0..20_000 {
                    v.push(format!("{t}-{i}"));
                }
                let big = vec![t as u8; 1 << 20];
                assert!(big.iter().all(|&b| b == t as u8));
                v.iter().enumerate().all(|(i, s)| *s == format!("{t}-{i}"))
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap());
    }
    let s = GLOBAL.stats();
    assert!(s.bytes_mapped > 0 && s.segments > 0);
}
