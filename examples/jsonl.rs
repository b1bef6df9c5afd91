//! `cargo run --release --example jsonl -- FILE > out.jsonl`: the engine alone, no Python (for profiles).
use std::io::Write;

use _engine::analysis::{FileAnalysis, Options};
use _engine::flows::TableOptions;
use _engine::record::write_json;

fn main() {
    let path = std::env::args().nth(1).expect("usage: jsonl FILE");
    let opts = Options {
        table: TableOptions {
            streaming: true,
            ..TableOptions::default()
        },
        check_checksums: false,
    };
    let mut fa = FileAnalysis::open(&path, opts);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = String::new();
    while let Some(rec) = fa.next_record() {
        line.clear();
        write_json(&rec, &mut line);
        line.push('\n');
        out.write_all(line.as_bytes()).expect("write");
    }
    eprintln!("{} frames, {} flows", fa.frames, fa.flow_count());
}
