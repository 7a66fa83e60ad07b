//! The exported Markdown, CSV and JSON parse back and carry every field of every row.

mod support;

use minibar_bench::export::{self, markdown_cells, Row, FIELDS, MARKDOWN_COLUMNS};

#[test]
fn json_parses_back_to_the_same_rows_with_every_field() {
    let run = support::sample_run(1.0);
    let expected = export::rows(&run);
    assert_eq!(
        expected.len(),
        2 * 3 + 2,
        "three tests per model plus two batch sizes"
    );
    let text = export::to_json(&run).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let objects = value.as_array().unwrap();
    assert_eq!(objects.len(), expected.len());
    for obj in objects {
        let keys: Vec<&str> = obj
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for f in FIELDS {
            assert!(keys.contains(f), "JSON row lacks {f}");
        }
        assert_eq!(
            keys.len(),
            FIELDS.len(),
            "JSON row has fields FIELDS does not list"
        );
    }
    let back: Vec<Row> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, expected);
}

#[test]
fn csv_parses_back_with_every_field() {
    let run = support::sample_run(1.0);
    let expected = export::rows(&run);
    let text = export::to_csv(&run).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(headers, FIELDS);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), expected.len());
    for (record, row) in records.iter().zip(&expected) {
        let values: Vec<&str> = record.iter().collect();
        assert_eq!(values, row.values());
        let idx = |name: &str| FIELDS.iter().position(|f| *f == name).unwrap();
        assert_eq!(record[idx("avg_ts")].parse::<f64>().unwrap(), row.avg_ts);
        let samples: Vec<f64> = serde_json::from_str(&record[idx("samples_ts")]).unwrap();
        assert_eq!(samples, row.samples_ts);
        assert_eq!(record[idx("model_filename")], row.model_filename);
    }
}

/// Splits a Markdown table line into cells, honouring `\|` escapes.
fn cells(line: &str) -> Vec<String> {
    let inner = line
        .trim()
        .strip_prefix('|')
        .unwrap()
        .strip_suffix('|')
        .unwrap();
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

#[test]
fn markdown_parses_back_with_every_column() {
    let run = support::sample_run(1.0);
    let expected = export::rows(&run);
    let text = export::to_markdown(&run);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(cells(lines[0]), MARKDOWN_COLUMNS);
    assert!(cells(lines[1]).iter().all(|c| c == "---" || c == "---:"));
    assert_eq!(lines.len(), 2 + expected.len());
    for (line, row) in lines[2..].iter().zip(&expected) {
        let got = cells(line);
        assert_eq!(got.len(), MARKDOWN_COLUMNS.len());
        assert_eq!(got, markdown_cells(row));
        let ts: f64 = got[6].split('±').next().unwrap().trim().parse().unwrap();
        assert!((ts - row.avg_ts).abs() < 0.006, "{ts} vs {}", row.avg_ts);
    }
    assert!(text.contains("| tg128 @ d4096 |"));
    assert!(text.contains("tiny, \"quoted\" \\| piped"));
}
