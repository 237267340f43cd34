//! Where an interview's bytes go on disk: opens a data directory's sled database (a copy: sled takes
//! a lock) and prints, per tree, its entries and the bytes of their keys and values, against the
//! files' size on disk (sled's space amplification). `cargo run --release -p actors --example
//! storage_sizes -- DATA_DIR [INTERVIEWS]` (INTERVIEWS: divide by this many).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: storage_sizes DATA_DIR [INTERVIEWS]");
    let per: f64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1.0);
    let on_disk = dir_size(std::path::Path::new(&dir));
    let db = sled::Config::new().path(&dir).open().expect("open");
    let mut total = 0u64;
    println!(
        "{:<16} {:>9} {:>12} {:>12} {:>12}",
        "tree", "entries", "key bytes", "value bytes", "per interview"
    );
    for name in db.tree_names() {
        let t = db.open_tree(&name).expect("tree");
        let (mut n, mut k, mut v) = (0u64, 0u64, 0u64);
        for kv in t.iter() {
            let (key, val) = kv.expect("read");
            n += 1;
            k += key.len() as u64;
            v += val.len() as u64;
        }
        total += k + v;
        println!(
            "{:<16} {:>9} {:>12} {:>12} {:>12.0}",
            String::from_utf8_lossy(&name),
            n,
            k,
            v,
            (k + v) as f64 / per
        );
    }
    println!(
        "keys + values: {total} bytes ({:.0} per interview); on disk: {on_disk} bytes ({:.0} per interview, {:.2}× the data)",
        total as f64 / per,
        on_disk as f64 / per,
        on_disk as f64 / total.max(1) as f64
    );
}
