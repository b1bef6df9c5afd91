//! The output contract's values: an ordered JSON-like tree, written as JSON exactly as Python's
//! `json.dumps(rec, separators=(",", ":"))` writes it (ensure_ascii, float repr), and as CSV cells as
//! Python's csv module writes them. Records are built once per flow, never per packet.

use std::fmt::Write;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A string from the vocabulary (state names, causes, kinds): no allocation per record.
    Static(&'static str),
    List(Vec<Value>),
    Obj(Fields),
}

/// An object's fields in insertion order (the order of the JSON contract).
pub type Fields = Vec<(&'static str, Value)>;

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v as i64)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(i64::from(v))
    }
}
impl From<u16> for Value {
    fn from(v: u16) -> Value {
        Value::Int(i64::from(v))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<&'static str> for Value {
    fn from(v: &'static str) -> Value {
        Value::Static(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl Value {
    /// The text of a string value, owned or from the vocabulary.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Static(s) => Some(s),
            _ => None,
        }
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(f) => f.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Python's `repr(float)`: shortest round-trip digits; scientific below 1e-4 and from 1e16 on.
pub fn py_float(x: f64, out: &mut String) {
    // Fast path: where Python writes fixed notation, ryu writes the same digits the same way
    // (ryu is fixed for 1e-5 < |x| < 1e16 and appends ".0" to integral values, as repr does).
    let a = x.abs();
    if (1e-4..1e16).contains(&a) {
        out.push_str(ryu::Buffer::new().format_finite(x));
        return;
    }
    py_float_slow(x, out);
}

fn py_float_slow(x: f64, out: &mut String) {
    if x.is_nan() {
        out.push_str("NaN");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // ryu's digits (shortest, and the closest of the shortest, as Python's repr picks them; Rust's
    // own `{:e}` does not always pick the closest), laid out the way repr lays them out.
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(x.abs());
    let (mantissa, exp) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // all significant digits and the decimal exponent of the first one
    let raw: String = format!("{int_part}{frac_part}");
    let lead = raw.len() - raw.trim_start_matches('0').len();
    let digits = raw.trim_start_matches('0').trim_end_matches('0');
    let exp10 = exp + int_part.len() as i32 - 1 - lead as i32;
    if x < 0.0 {
        out.push('-');
    }
    if !(-4..16).contains(&exp10) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp10 < 0 { '-' } else { '+' },
            exp10.abs()
        );
    } else if exp10 < 0 {
        out.push_str("0.");
        for _ in 0..(-exp10 - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let point = exp10 as usize + 1;
        if digits.len() <= point {
            out.push_str(digits);
            for _ in digits.len()..point {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
}

/// Printable ASCII without quotes or backslashes: JSON text as it is.
#[inline]
fn plain(s: &str) -> bool {
    // eight bytes at a time (every record's composed texts pass through here)
    let mut words = s.as_bytes().chunks_exact(8);
    for w in words.by_ref() {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        if !plain_word(u64::from_le_bytes(b)) {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// No byte of `w` is below 0x20, 0x7f or above, `"` or `\\` (the bit tricks of "Bit Twiddling
/// Hacks", exact as yes/no answers: `has_zero` for equality, `has_less` for n <= 128).
#[inline]
fn plain_word(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let has_less = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGH != 0;
    !(w & HIGH != 0
        || has_less(w, 0x20)
        || has_zero(w ^ (ONES * 0x7f))
        || has_zero(w ^ (ONES * u64::from(b'"')))
        || has_zero(w ^ (ONES * u64::from(b'\\'))))
}

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    if plain(s) {
        out.push_str(s); // the common case: printable ASCII, nothing to escape
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                // ensure_ascii: non-ASCII as \uXXXX, astral planes as surrogate pairs
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A vocabulary string or key: printable ASCII without quotes or backslashes by construction (the
/// vocabulary tests check every one), so it is copied without a scan.
#[inline(always)]
fn static_str(s: &'static str, out: &mut String) {
    debug_assert!(s
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'));
    out.push('"');
    out.push_str(s);
    out.push('"');
}

/// Compact JSON, as Python's `json.dumps(value, separators=(",", ":"))`.
pub fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        Value::Float(f) => py_float(*f, out),
        Value::Str(s) => json_str(s, out),
        Value::Static(s) => static_str(s, out),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Obj(fields) => {
            out.push('{');
            for (i, (k, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                static_str(k, out);
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
    }
}

/// One CSV cell as Python's csv module writes `str(value)` (QUOTE_MINIMAL, None -> empty).
pub fn write_csv_cell(v: &Value, out: &mut String) {
    let mut text = String::new();
    match v {
        Value::Null => {}
        Value::Bool(b) => text.push_str(if *b { "True" } else { "False" }),
        Value::Int(i) => {
            let _ = write!(text, "{}", i);
        }
        Value::Float(f) => py_float(*f, &mut text),
        Value::Str(s) => text.push_str(s),
        Value::Static(s) => text.push_str(s),
        Value::List(_) | Value::Obj(_) => write_json(v, &mut text),
    }
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&text);
    }
}

/// Where a record is written to: the record code walks the flow once and calls these in the
/// contract's order. `JsonWriter` writes JSON text straight into a buffer (the JSON Lines path: no
/// value tree, no allocation per field); `ValueBuilder` builds a `Value` (Python objects, CSV).
pub trait Emit {
    fn null(&mut self);
    fn bool(&mut self, v: bool);
    fn int(&mut self, v: i64);
    fn float(&mut self, v: f64);
    fn str(&mut self, v: &str);
    /// a vocabulary string (state, cue, kind): printable ASCII, nothing to escape
    fn vocab(&mut self, v: &'static str);
    fn begin_obj(&mut self);
    fn key(&mut self, k: &'static str);
    fn end_obj(&mut self);
    fn begin_list(&mut self);
    fn end_list(&mut self);

    /// A string that `write` composes (an address, a fingerprint): the JSON writer lets it write
    /// straight into the output, the others get it as one string. `write` only appends.
    fn str_with(&mut self, write: &mut dyn FnMut(&mut String)) {
        let mut text = String::new();
        write(&mut text);
        self.str(&text);
    }

    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(i) => self.int(i),
            None => self.null(),
        }
    }
    fn opt_float(&mut self, v: Option<f64>) {
        match v {
            Some(f) => self.float(f),
            None => self.null(),
        }
    }
    /// A whole value (for the few fields built as values).
    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.null(),
            Value::Bool(b) => self.bool(*b),
            Value::Int(i) => self.int(*i),
            Value::Float(f) => self.float(*f),
            Value::Str(s) => self.str(s),
            Value::Static(s) => self.vocab(s),
            Value::List(items) => {
                self.begin_list();
                for item in items {
                    self.value(item);
                }
                self.end_list();
            }
            Value::Obj(fields) => {
                self.begin_obj();
                for (k, item) in fields {
                    self.key(k);
                    self.value(item);
                }
                self.end_obj();
            }
        }
    }
}

/// Compact JSON text, byte for byte what `write_json` writes for the same value.
pub struct JsonWriter<'a> {
    out: &'a mut String,
    /// a value was written in the current container: the next one needs a comma
    comma: bool,
    /// the last float written (its bits) and where its text is in `out`: a record repeats its
    /// timestamps (both ends' transitions on one segment), copied then instead of formatted again
    last_float: Option<(u64, std::ops::Range<usize>)>,
}

impl<'a> JsonWriter<'a> {
    pub fn new(out: &'a mut String) -> Self {
        JsonWriter {
            out,
            comma: false,
            last_float: None,
        }
    }
    #[inline(always)]
    fn sep(&mut self) {
        if self.comma {
            self.out.push(',');
        }
    }
}

impl Emit for JsonWriter<'_> {
    #[inline]
    fn null(&mut self) {
        self.sep();
        self.out.push_str("null");
        self.comma = true;
    }
    #[inline]
    fn bool(&mut self, v: bool) {
        self.sep();
        self.out.push_str(if v { "true" } else { "false" });
        self.comma = true;
    }
    #[inline]
    fn int(&mut self, v: i64) {
        self.sep();
        self.out.push_str(itoa::Buffer::new().format(v));
        self.comma = true;
    }
    fn float(&mut self, v: f64) {
        self.sep();
        let start = self.out.len();
        match &self.last_float {
            // `out` only grows while the writer lives: the earlier text is still where it was
            Some((bits, at)) if *bits == v.to_bits() => self.out.extend_from_within(at.clone()),
            _ => py_float(v, self.out),
        }
        self.last_float = Some((v.to_bits(), start..self.out.len()));
        self.comma = true;
    }
    fn str(&mut self, v: &str) {
        self.sep();
        json_str(v, self.out);
        self.comma = true;
    }
    fn str_with(&mut self, write: &mut dyn FnMut(&mut String)) {
        self.sep();
        self.out.push('"');
        let start = self.out.len();
        write(self.out);
        if !plain(&self.out[start..]) {
            // rare (the composed texts are ASCII by construction): escape it as `str` would
            let text = self.out.split_off(start);
            self.out.truncate(start - 1);
            json_str(&text, self.out);
        } else {
            self.out.push('"');
        }
        self.comma = true;
    }
    #[inline(always)]
    fn vocab(&mut self, v: &'static str) {
        self.sep();
        static_str(v, self.out);
        self.comma = true;
    }
    #[inline]
    fn begin_obj(&mut self) {
        self.sep();
        self.out.push('{');
        self.comma = false;
    }
    // always: with the key a constant, its copy becomes a few stores (no memcpy call)
    #[inline(always)]
    fn key(&mut self, k: &'static str) {
        self.sep();
        static_str(k, self.out);
        self.out.push(':');
        self.comma = false;
    }
    #[inline]
    fn end_obj(&mut self) {
        self.out.push('}');
        self.comma = true;
    }
    #[inline]
    fn begin_list(&mut self) {
        self.sep();
        self.out.push('[');
        self.comma = false;
    }
    #[inline]
    fn end_list(&mut self) {
        self.out.push(']');
        self.comma = true;
    }
}

enum Open {
    Obj(Fields, &'static str),
    List(Vec<Value>),
}

/// Builds the `Value` the emitted calls describe.
#[derive(Default)]
pub struct ValueBuilder {
    stack: Vec<Open>,
    done: Option<Value>,
}

impl ValueBuilder {
    pub fn new() -> Self {
        Self::default()
    }
    /// The value built (Null if nothing was emitted).
    pub fn finish(self) -> Value {
        self.done.unwrap_or(Value::Null)
    }
    fn put(&mut self, v: Value) {
        match self.stack.last_mut() {
            Some(Open::Obj(fields, key)) => fields.push((key, v)),
            Some(Open::List(items)) => items.push(v),
            None => self.done = Some(v),
        }
    }
}

impl Emit for ValueBuilder {
    fn null(&mut self) {
        self.put(Value::Null);
    }
    fn bool(&mut self, v: bool) {
        self.put(Value::Bool(v));
    }
    fn int(&mut self, v: i64) {
        self.put(Value::Int(v));
    }
    fn float(&mut self, v: f64) {
        self.put(Value::Float(v));
    }
    fn str(&mut self, v: &str) {
        self.put(Value::Str(v.to_string()));
    }
    fn vocab(&mut self, v: &'static str) {
        self.put(Value::Static(v));
    }
    fn begin_obj(&mut self) {
        self.stack.push(Open::Obj(Vec::new(), ""));
    }
    fn key(&mut self, k: &'static str) {
        if let Some(Open::Obj(_, key)) = self.stack.last_mut() {
            *key = k;
        }
    }
    fn end_obj(&mut self) {
        if let Some(Open::Obj(fields, _)) = self.stack.pop() {
            self.put(Value::Obj(fields));
        }
    }
    fn begin_list(&mut self) {
        self.stack.push(Open::List(Vec::new()));
    }
    fn end_list(&mut self) {
        if let Some(Open::List(items)) = self.stack.pop() {
            self.put(Value::List(items));
        }
    }
}

/// The flat columns of `--format csv`, in order (documented in the README's schema section).
pub const CSV_COLUMNS: [&str; 30] = [
    "flow",
    "client",
    "server",
    "direction",
    "packets",
    "first_ts",
    "last_ts",
    "duration_ms",
    "handshake",
    "syn_to_synack_ms",
    "synack_to_ack_ms",
    "syn_count",
    "close",
    "client_final",
    "server_final",
    "client_states",
    "server_states",
    "transitions",
    "violations",
    "conn_state",
    "history",
    "completeness",
    "anomalies",
    "file",
    // the handshake's negotiation (src/negotiation.rs): its summary, warnings and p0f fingerprints
    "negotiated",
    "negotiation_warnings",
    "client_p0f",
    "server_p0f",
    "client_os",
    "server_os",
];

/// `retransmission=2;duplicate_ack=1`: the non-zero anomaly counts, for one-cell outputs.
pub fn anomaly_text(counts: Option<&Value>) -> String {
    let mut out = String::new();
    if let Some(Value::Obj(fields)) = counts {
        for (k, v) in fields {
            if let Value::Int(n) = v {
                if *n != 0 {
                    if !out.is_empty() {
                        out.push(';');
                    }
                    let _ = write!(out, "{k}={n}");
                }
            }
        }
    }
    out
}

fn states_text(v: Option<&Value>) -> (Value, Value) {
    let Some(Value::List(items)) = v else {
        return (Value::Null, Value::Null);
    };
    let names: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
    (
        names
            .last()
            .map_or(Value::Null, |s| Value::Str((*s).to_string())),
        Value::Str(names.join(">")),
    )
}

/// A record flattened into CSV_COLUMNS, written as one CSV line (without the newline).
pub fn write_csv_row(rec: &Value, out: &mut String) {
    let hs = rec.get("handshake");
    let hs_get = |k: &str| hs.and_then(|h| h.get(k)).cloned().unwrap_or(Value::Null);
    let (client_final, client_states) = states_text(rec.get("client_states"));
    let (server_final, server_states) = states_text(rec.get("server_states"));
    let count = |k: &str| match rec.get(k) {
        Some(Value::List(items)) => Value::Int(items.len() as i64),
        _ => Value::Null,
    };
    let neg_get = |path: &[&str]| {
        let mut v = rec.get("negotiation");
        for k in path {
            v = v.and_then(|x| x.get(k));
        }
        v.cloned().unwrap_or(Value::Null)
    };
    for (i, col) in CSV_COLUMNS.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let cell = match *col {
            "handshake" => hs_get("status"),
            "syn_to_synack_ms" | "synack_to_ack_ms" | "syn_count" => hs_get(col),
            "client_final" => client_final.clone(),
            "server_final" => server_final.clone(),
            "client_states" => client_states.clone(),
            "server_states" => server_states.clone(),
            "transitions" => count("transitions"),
            "violations" => rec.get("violation_count").cloned().unwrap_or(Value::Null),
            "anomalies" => Value::Str(anomaly_text(rec.get("anomalies"))),
            "negotiated" => neg_get(&["summary"]),
            "negotiation_warnings" => {
                match rec.get("negotiation").and_then(|n| n.get("warnings")) {
                    Some(Value::List(items)) => Value::Str(
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(";"),
                    ),
                    _ => Value::Null,
                }
            }
            "client_p0f" => neg_get(&["client", "p0f"]),
            "server_p0f" => neg_get(&["server", "p0f"]),
            "client_os" => neg_get(&["client", "os"]),
            "server_os" => neg_get(&["server", "os"]),
            other => rec.get(other).cloned().unwrap_or(Value::Null),
        };
        write_csv_cell(&cell, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn f(x: f64) -> String {
        let mut s = String::new();
        py_float(x, &mut s);
        s
    }
    #[test]
    fn floats_as_python_repr() {
        assert_eq!(f(1795538762.914274), "1795538762.914274");
        assert_eq!(f(0.439), "0.439");
        assert_eq!(f(100.0), "100.0");
        assert_eq!(f(1e16), "1e+16");
        assert_eq!(f(1.5e16), "1.5e+16");
        assert_eq!(f(123456789012345.6), "123456789012345.6");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(0.00001), "1e-05");
        assert_eq!(f(-2.5), "-2.5");
        assert_eq!(f(0.0), "0.0");
        // printed by Python 3.11's repr()
        assert_eq!(f(233115890514796.12), "233115890514796.12");
        assert_eq!(f(1.2345678901234566e-07), "1.2345678901234566e-07");
        assert_eq!(f(2.5e-05), "2.5e-05");
        assert_eq!(f(1e22), "1e+22");
        assert_eq!(f(1.7976931348623157e308), "1.7976931348623157e+308");
        assert_eq!(f(5e-324), "5e-324");
        assert_eq!(f(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(f(9999999999999998.0), "9999999999999998.0");
    }
    #[test]
    fn fast_float_path_agrees_with_the_slow_one() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..200_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = match i % 4 {
                0 => f64::from_bits(state),
                1 => 1.7e9 + (state % 1_000_000_000) as f64 / 1e6,
                2 => (state % 100_000_000) as f64 / 1000.0,
                _ => (state % 1000) as f64 * 10f64.powi((i % 40) as i32 - 20),
            };
            if !x.is_finite() {
                continue;
            }
            let (mut fast, mut slow) = (String::new(), String::new());
            py_float(x, &mut fast);
            py_float_slow(x, &mut slow);
            assert_eq!(fast, slow, "{x:e}");
        }
    }
    #[test]
    fn emitters_agree_with_write_json() {
        let v = Value::Obj(vec![
            (
                "a",
                Value::List(vec![1i64.into(), Value::Null, "x\"y".to_string().into()]),
            ),
            (
                "b",
                Value::Obj(vec![("c", 2.5.into()), ("d", Value::Static("CLOSED"))]),
            ),
            ("e", Value::List(vec![])),
            ("f", Value::Obj(vec![])),
            ("g", true.into()),
        ]);
        let mut expected = String::new();
        write_json(&v, &mut expected);
        let mut text = String::new();
        JsonWriter::new(&mut text).value(&v);
        assert_eq!(text, expected);
        let mut b = ValueBuilder::new();
        b.value(&v);
        assert_eq!(b.finish(), v);
    }
    #[test]
    fn str_with_writes_what_str_writes() {
        for text in ["10.0.0.1:80", "", "x\"y\\z", "§ é\n", "a\u{1F600}"] {
            let (mut direct, mut composed) = (String::new(), String::new());
            let mut w = JsonWriter::new(&mut direct);
            w.begin_list();
            w.str(text);
            w.str(text);
            w.end_list();
            let mut w = JsonWriter::new(&mut composed);
            w.begin_list();
            w.str_with(&mut |out| out.push_str(text));
            w.str_with(&mut |out| out.push_str(text));
            w.end_list();
            assert_eq!(composed, direct, "{text:?}");
            let mut b = ValueBuilder::new();
            b.str_with(&mut |out| out.push_str(text));
            assert_eq!(b.finish(), Value::Str(text.to_string()));
        }
    }
    #[test]
    fn plain_agrees_with_a_byte_by_byte_check() {
        let slow = |s: &str| {
            s.bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        };
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..100_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // mostly printable text with one byte from anywhere at a random place
            let len = (state % 24) as usize;
            let mut text: Vec<u8> = (0..len).map(|j| b' ' + ((state >> j) % 95) as u8).collect();
            if len > 0 && i % 2 == 0 {
                text[(state >> 40) as usize % len] = (state >> 48) as u8 & 0x7f;
            }
            let text = String::from_utf8(text).expect("ascii");
            assert_eq!(plain(&text), slow(&text), "{text:?}");
        }
        for s in [
            "abcdefgh\u{7f}",
            "abcdefg\u{1f}",
            "é1234567",
            "1234567\"",
            "\\1234567",
        ] {
            assert!(!plain(s) && !slow(s), "{s:?}");
        }
    }
    #[test]
    fn repeated_floats_are_written_alike() {
        let xs = [
            1.5,
            1.5,
            0.0,
            -0.0,
            -0.0,
            1e-7,
            1e-7,
            1700000000.162944,
            1.5,
        ];
        let v = Value::List(xs.iter().map(|x| Value::Float(*x)).collect());
        let mut expected = String::new();
        write_json(&v, &mut expected);
        let mut text = String::from("[1]\n"); // an earlier record in the same buffer
        JsonWriter::new(&mut text).value(&v);
        assert_eq!(text, format!("[1]\n{expected}"));
        assert_eq!(
            expected,
            "[1.5,1.5,0.0,-0.0,-0.0,1e-07,1e-07,1700000000.162944,1.5]"
        );
    }
    #[test]
    fn ascii_json() {
        let mut s = String::new();
        write_json(
            &Value::Obj(vec![
                ("r", "§3 \"x\"".to_string().into()),
                ("n", Value::Null),
            ]),
            &mut s,
        );
        assert_eq!(s, r#"{"r":"\u00a73 \"x\"","n":null}"#);
    }
}
