//! Printing results: log entries like logcli (`<time> <labels> <line>`, raw lines, or JSON
//! lines), metric results as an aligned table, and plain lists. Colours only when stdout
//! is a terminal and `NO_COLOR` is unset.

use std::io::{self, IsTerminal, Write};

use clap::ValueEnum;
use silt_query::format::float_plain;
use silt_query::{Direction, MetricResult, StreamResult};

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    /// `<time> <labels> <line>`
    Default,
    /// The line only.
    Raw,
    /// One JSON object per entry.
    Jsonl,
}

/// ANSI styles, or nothing when colours are off.
#[derive(Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    pub fn for_stdout() -> Style {
        Style { on: io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) }
    }
    fn paint(self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn labels(self, s: &str) -> String {
        self.paint("36", s)
    }
    pub fn bold(self, s: &str) -> String {
        self.paint("1", s)
    }
}

pub fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ts).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

pub fn print_lines<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    for l in lines {
        writeln!(w, "{}", l.as_ref())?;
    }
    w.flush()?;
    Ok(())
}

/// Entries of all streams merged in the query's direction, like logcli.
pub fn print_streams(streams: &[StreamResult], direction: Direction, output: Output) -> anyhow::Result<()> {
    let mut rows: Vec<(i64, usize, &str)> =
        streams.iter().enumerate().flat_map(|(si, s)| s.entries.iter().map(move |e| (e.ts, si, e.line.as_str()))).collect();
    rows.sort_by_key(|r| (r.0, r.1));
    if direction == Direction::Backward {
        rows.reverse();
    }
    let style = Style::for_stdout();
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    let labels: Vec<String> = streams.iter().map(|s| style.labels(&s.labels.to_string())).collect();
    for (ts, si, line) in rows {
        match output {
            Output::Raw => writeln!(w, "{line}")?,
            Output::Default => writeln!(w, "{} {} {line}", style.dim(&rfc3339(ts)), labels[si])?,
            Output::Jsonl => {
                let labels: serde_json::Map<String, serde_json::Value> = streams[si].labels.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
                writeln!(w, "{}", serde_json::json!({ "timestamp": ts.to_string(), "labels": labels, "line": line }))?
            }
        }
    }
    w.flush()?;
    Ok(())
}

/// A metric result as aligned rows (`time  labels  value`), or one JSON object per point.
pub fn print_metric(r: &MetricResult, output: Output) -> anyhow::Result<()> {
    let rows: Vec<(i64, String, f64)> = match r {
        MetricResult::Matrix(series) => series.iter().flat_map(|(l, pts)| pts.iter().map(move |(t, v)| (*t, l.to_string(), *v))).collect(),
        MetricResult::Vector(t, samples) => samples.iter().map(|(l, v)| (*t, l.to_string(), *v)).collect(),
        MetricResult::Scalar(t, v) => vec![(*t, String::new(), *v)],
    };
    let style = Style::for_stdout();
    let stdout = io::stdout();
    let mut w = io::BufWriter::new(stdout.lock());
    let width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (t, labels, v) in &rows {
        match output {
            Output::Jsonl => writeln!(w, "{}", serde_json::json!({"timestamp": rfc3339(*t), "labels": labels, "value": float_plain(*v)}))?,
            _ => writeln!(w, "{}  {}  {}", style.dim(&rfc3339(*t)), style.labels(&format!("{labels:<width$}")), float_plain(*v))?,
        }
    }
    w.flush()?;
    Ok(())
}

/// A table with a header row, columns padded to their widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let style = Style::for_stdout();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let fmt = |cells: &mut dyn Iterator<Item = &str>| -> String {
        cells.zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    let mut out = vec![style.bold(&fmt(&mut header.iter().copied()))];
    out.extend(rows.iter().map(|r| fmt(&mut r.iter().map(String::as_str))));
    print_lines(out)
}
