//! `cargo run --release --example jsonl -- FILE > out.jsonl`: the engine alone, no Python (for profiles).
use std::io::Write;

use _engine::analysis::{FileAnalysis, Format, Options};
use _engine::flows::TableOptions;

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
    let mut text = String::with_capacity(1 << 20);
    while fa.write_records(Format::Jsonl, 4096, &mut text) > 0 {
        out.write_all(text.as_bytes()).expect("write");
        text.clear();
    }
    eprintln!("{} frames, {} flows", fa.c.frames, fa.flow_count());
}
