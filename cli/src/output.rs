//! Human tables by default, JSON with `--output json`.

use serde_json::Value;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Output {
    /// Aligned tables.
    #[default]
    Text,
    /// JSON, for scripts.
    Json,
}

/// Prints `rows` (JSON objects) as a table of `columns` (key, heading), or as JSON.
pub fn table(out: Output, rows: &[Value], columns: &[(&str, &str)]) {
    if out == Output::Json {
        println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default());
        return;
    }
    let cell = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(l) if l.iter().all(Value::is_string) => l
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(k, _)| cell(&r[*k])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, h))| {
            cells
                .iter()
                .map(|c| c[i].len())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |items: Vec<String>| {
        items
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!(
        "{}",
        line(columns.iter().map(|(_, h)| h.to_string()).collect())
    );
    for c in cells {
        println!("{}", line(c));
    }
}

/// Prints one object: `key: value` lines, or JSON.
pub fn object(out: Output, v: &Value) {
    if out == Output::Json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    if let Value::Object(m) = v {
        for (k, v) in m {
            match v {
                Value::String(s) => println!("{k}: {s}"),
                other => println!("{k}: {other}"),
            }
        }
    }
}
