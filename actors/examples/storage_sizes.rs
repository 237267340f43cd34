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
    // Events by type and kind: where the log's bytes go.
    if let Ok(events) = db.open_tree("events") {
        let mut by: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for (_, val) in events.iter().flatten() {
            let text = String::from_utf8_lossy(&val);
            let start = text.find('{').unwrap_or(0);
            let v: serde_json::Value = serde_json::from_str(&text[start..]).unwrap_or_default();
            let key = format!(
                "{}/{}",
                v["type"].as_str().unwrap_or("?"),
                v["kind"].as_str().unwrap_or("-")
            );
            let e = by.entry(key).or_default();
            e.0 += 1;
            e.1 += val.len() as u64;
        }
        if let Ok(path) = std::env::var("STORAGE_SIZES_DUMP") {
            // One line per event: the key's interview id (hex) and the value, for offline analysis.
            let mut out = String::new();
            for (k, val) in events.iter().flatten() {
                let id = String::from_utf8_lossy(&k[..k.len().saturating_sub(8)]).to_string();
                out.push_str(&id);
                out.push('\t');
                out.push_str(&String::from_utf8_lossy(&val).replace('\n', " "));
                out.push('\n');
            }
            std::fs::write(path, out).expect("write dump");
        }
        println!(
            "\n{:<28} {:>9} {:>12} {:>10} {:>14}",
            "event", "count", "bytes", "mean", "per interview"
        );
        for (k, (n, b)) in by {
            println!(
                "{k:<28} {n:>9} {b:>12} {:>10.0} {:>14.0}",
                b as f64 / n as f64,
                b as f64 / per
            );
        }
    }
    println!(
        "keys + values: {total} bytes ({:.0} per interview); on disk: {on_disk} bytes ({:.0} per interview, {:.2}× the data)",
        total as f64 / per,
        on_disk as f64 / per,
        on_disk as f64 / total.max(1) as f64
    );
}
