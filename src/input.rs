//! Reading feature rows from CSV (for the CLI, reports and tests).
//!
//! Strict: every row must have exactly the model's width, every field must
//! parse as a number (`NaN`, `inf` are numbers; the model's input policy
//! decides about them when scoring), and a header, if present, must match the
//! model's feature names. Errors name the line and column; nothing is
//! skipped. Never on the hot path.

#![forbid(unsafe_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a CSV file could not be read as feature rows.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The CSV structure is broken (e.g. invalid UTF-8, unbalanced quotes).
    #[error("line {line}: malformed CSV: {reason}")]
    Malformed {
        /// 1-based line number.
        line: u64,
        /// What the CSV reader reported.
        reason: String,
    },
    /// A row has the wrong number of fields.
    #[error("line {line}: {got} fields, the model takes {expected} features")]
    Width {
        /// 1-based line number.
        line: u64,
        /// Fields expected.
        expected: usize,
        /// Fields found.
        got: usize,
    },
    /// A field is not a number. The value itself is not quoted (it may be
    /// customer data); the position is.
    #[error("line {line}, column {column} ({name}): not a number")]
    NotANumber {
        /// 1-based line number.
        line: u64,
        /// 1-based column number.
        column: usize,
        /// Feature name, or `?` if unknown.
        name: String,
    },
    /// The header does not list the model's features in order.
    #[error("header column {column}: expected feature {expected:?}, found {found:?}")]
    Header {
        /// 1-based column number.
        column: usize,
        /// The model's feature name.
        expected: String,
        /// The header's name.
        found: String,
    },
    /// No data rows.
    #[error("no data rows")]
    Empty,
    /// The header lacks a feature the model needs (or names it twice).
    #[error("header: feature {name:?} is {problem}")]
    Column {
        /// The feature.
        name: String,
        /// "missing" or "named more than once".
        problem: &'static str,
    },
}

/// Rows of features, stored back to back.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRows {
    /// Features per row.
    pub width: usize,
    /// `rows() * width` values.
    pub values: Vec<f32>,
    /// 1-based line number of each row in the source (for error messages).
    pub lines: Vec<u64>,
}

impl FeatureRows {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.lines.len()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.width..(i + 1) * self.width]
    }
}

/// Read a CSV file of features (see [`read_features`]).
pub fn read_features_file(
    path: &Path,
    width: usize,
    names: Option<&[String]>,
) -> Result<FeatureRows, CsvError> {
    let file = std::fs::File::open(path).map_err(|source| CsvError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_features(file, width, names)
}

/// Read CSV features: an optional header (a first line with a field that is
/// neither empty nor a number), then rows of exactly `width` numbers.
pub fn read_features(
    reader: impl Read,
    width: usize,
    names: Option<&[String]>,
) -> Result<FeatureRows, CsvError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut out = FeatureRows {
        width,
        values: Vec::new(),
        lines: Vec::new(),
    };
    let mut record = csv::StringRecord::new();
    let mut first = true;
    loop {
        let line = csv.position().line();
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(CsvError::Malformed {
                    line: e.position().map_or(line, |p| p.line()),
                    reason: e.to_string(),
                })
            }
        }
        if record.len() != width {
            return Err(CsvError::Width {
                line,
                expected: width,
                got: record.len(),
            });
        }
        if first {
            first = false;
            // A header has a name in it; an empty field alone makes a bad row.
            if record
                .iter()
                .any(|f| !f.trim().is_empty() && parse(f).is_none())
            {
                check_header(&record, names)?;
                continue;
            }
        }
        for (column, field) in record.iter().enumerate() {
            let v = parse(field).ok_or_else(|| CsvError::NotANumber {
                line,
                column: column + 1,
                name: names
                    .and_then(|n| n.get(column))
                    .map_or_else(|| "?".to_string(), Clone::clone),
            })?;
            out.values.push(v);
        }
        out.lines.push(line);
    }
    if out.lines.is_empty() {
        return Err(CsvError::Empty);
    }
    Ok(out)
}

/// [`read_features_by_name`] on the first of `paths` whose header names
/// every one of `names` (a model reads its features from whichever of
/// several files carries them; the bundled 119-feature model reads
/// `german_wide_test.csv`, the others `german_test.csv`). The error is the
/// last file's.
pub fn read_features_by_name_from_any(
    paths: &[&Path],
    names: &[String],
) -> Result<FeatureRows, CsvError> {
    let mut last = Err(CsvError::Empty);
    for path in paths {
        last = read_features_by_name(path, names);
        if last.is_ok() {
            break;
        }
    }
    last
}

/// Read a CSV file whose header names (at least) the model's features, in
/// any order and among any other columns, and select those features in
/// model order. Every value of a selected column must be a number; other
/// columns are not read.
pub fn read_features_by_name(path: &Path, names: &[String]) -> Result<FeatureRows, CsvError> {
    let file = std::fs::File::open(path).map_err(|source| CsvError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(file);
    let malformed = |e: csv::Error| CsvError::Malformed {
        line: e.position().map_or(1, |p| p.line()),
        reason: e.to_string(),
    };
    let mut record = csv::StringRecord::new();
    if !csv.read_record(&mut record).map_err(malformed)? {
        return Err(CsvError::Empty);
    }
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let mut hits = record.iter().enumerate().filter(|(_, h)| h.trim() == name);
        match (hits.next(), hits.next()) {
            (Some((ix, _)), None) => columns.push(ix),
            (None, _) => {
                return Err(CsvError::Column {
                    name: name.clone(),
                    problem: "missing",
                })
            }
            (Some(_), Some(_)) => {
                return Err(CsvError::Column {
                    name: name.clone(),
                    problem: "named more than once",
                })
            }
        }
    }
    let mut out = FeatureRows {
        width: names.len(),
        values: Vec::new(),
        lines: Vec::new(),
    };
    loop {
        let line = csv.position().line();
        if !csv.read_record(&mut record).map_err(malformed)? {
            break;
        }
        for (k, &ix) in columns.iter().enumerate() {
            let v = record
                .get(ix)
                .and_then(parse)
                .ok_or_else(|| CsvError::NotANumber {
                    line,
                    column: ix + 1,
                    name: names[k].clone(),
                })?;
            out.values.push(v);
        }
        out.lines.push(line);
    }
    if out.lines.is_empty() {
        return Err(CsvError::Empty);
    }
    Ok(out)
}

fn parse(field: &str) -> Option<f32> {
    field.trim().parse::<f32>().ok()
}

fn check_header(record: &csv::StringRecord, names: Option<&[String]>) -> Result<(), CsvError> {
    let Some(names) = names else { return Ok(()) };
    for (i, (found, expected)) in record.iter().zip(names).enumerate() {
        if found.trim() != expected {
            return Err(CsvError::Header {
                column: i + 1,
                expected: expected.clone(),
                found: found.to_string(),
            });
        }
    }
    Ok(())
}

/// Read one numeric column (by header name) from a CSV file.
pub fn read_column(path: &Path, column: &str) -> Result<Vec<f64>, CsvError> {
    let file = std::fs::File::open(path).map_err(|source| CsvError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut csv = csv::ReaderBuilder::new().from_reader(file);
    let malformed = |e: csv::Error| CsvError::Malformed {
        line: e.position().map_or(1, |p| p.line()),
        reason: e.to_string(),
    };
    let headers = csv.headers().map_err(malformed)?.clone();
    let ix = headers
        .iter()
        .position(|h| h.trim() == column)
        .ok_or_else(|| CsvError::Column {
            name: column.to_string(),
            problem: "missing",
        })?;
    let mut values = Vec::new();
    for record in csv.records() {
        let record = record.map_err(malformed)?;
        let line = record.position().map_or(0, |p| p.line());
        let v = record
            .get(ix)
            .and_then(|f| f.trim().parse::<f64>().ok())
            .ok_or_else(|| CsvError::NotANumber {
                line,
                column: ix + 1,
                name: column.to_string(),
            })?;
        values.push(v);
    }
    if values.is_empty() {
        return Err(CsvError::Empty);
    }
    Ok(values)
}

/// Read one column of 0/1 labels (by header name) from a CSV file.
pub fn read_labels_file(path: &Path, column: &str) -> Result<Vec<bool>, CsvError> {
    let io = |source| CsvError::Io {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(io)?;
    let mut csv = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let malformed = |e: csv::Error| CsvError::Malformed {
        line: e.position().map_or(1, |p| p.line()),
        reason: e.to_string(),
    };
    let headers = csv.headers().map_err(malformed)?.clone();
    let ix = headers
        .iter()
        .position(|h| h == column)
        .ok_or_else(|| CsvError::Header {
            column: 1,
            expected: column.to_string(),
            found: headers.iter().collect::<Vec<_>>().join(","),
        })?;
    let mut labels = Vec::new();
    for record in csv.records() {
        let record = record.map_err(malformed)?;
        let line = record.position().map_or(0, |p| p.line());
        match record.get(ix).map(str::trim) {
            Some("1") => labels.push(true),
            Some("0") => labels.push(false),
            _ => {
                return Err(CsvError::NotANumber {
                    line,
                    column: ix + 1,
                    name: column.to_string(),
                })
            }
        }
    }
    if labels.is_empty() {
        return Err(CsvError::Empty);
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn header_and_rows() {
        let rows = read_features("a,b\n1,2\n3.5,-4\n".as_bytes(), 2, Some(&names())).unwrap();
        assert_eq!(rows.values, vec![1.0, 2.0, 3.5, -4.0]);
        assert_eq!(rows.lines, vec![2, 3]);
        let headerless = read_features("1,2\n".as_bytes(), 2, Some(&names())).unwrap();
        assert_eq!(headerless.rows(), 1);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = read_features("a,b\n1,2\n3,x\n".as_bytes(), 2, Some(&names())).unwrap_err();
        assert!(
            matches!(e, CsvError::NotANumber { line: 3, column: 2, ref name } if name == "b"),
            "{e}"
        );
        let e = read_features("1,2\n3\n".as_bytes(), 2, None).unwrap_err();
        assert!(
            matches!(
                e,
                CsvError::Width {
                    line: 2,
                    expected: 2,
                    got: 1
                }
            ),
            "{e}"
        );
        let e = read_features("a,c\n1,2\n".as_bytes(), 2, Some(&names())).unwrap_err();
        assert!(matches!(e, CsvError::Header { column: 2, .. }), "{e}");
        let e = read_features("a,b\n".as_bytes(), 2, Some(&names())).unwrap_err();
        assert!(matches!(e, CsvError::Empty), "{e}");
        let e = read_features("1,\n".as_bytes(), 2, None).unwrap_err();
        assert!(
            matches!(
                e,
                CsvError::NotANumber {
                    line: 1,
                    column: 2,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn by_name_selects_and_reorders_columns() {
        let dir = std::env::temp_dir().join(format!("tickscore-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rows.csv");
        std::fs::write(&path, "id,b,a\nx1,2,1\nx2,4,3\n").unwrap();
        let rows = read_features_by_name(&path, &names()).unwrap();
        assert_eq!(rows.values, vec![1.0, 2.0, 3.0, 4.0]);
        let e = read_features_by_name(&path, &["a".into(), "zz".into()]).unwrap_err();
        assert!(
            matches!(e, CsvError::Column { ref name, problem: "missing" } if name == "zz"),
            "{e}"
        );
        std::fs::write(&path, "a,b,a\n1,2,3\n").unwrap();
        let e = read_features_by_name(&path, &names()).unwrap_err();
        assert!(
            matches!(
                e,
                CsvError::Column {
                    problem: "named more than once",
                    ..
                }
            ),
            "{e}"
        );
        std::fs::write(&path, "a,b\n1,oops\n").unwrap();
        let e = read_features_by_name(&path, &names()).unwrap_err();
        assert!(
            matches!(
                e,
                CsvError::NotANumber {
                    line: 2,
                    column: 2,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn read_column_refuses_garbage_with_position() {
        let dir = std::env::temp_dir().join(format!("tickscore-col-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("col.csv");
        std::fs::write(&path, "a,y\n1,0.5\n2,-1e3\n").unwrap();
        assert_eq!(read_column(&path, "y").unwrap(), vec![0.5, -1000.0]);
        std::fs::write(&path, "a,y\n1,0.5\n2,x\n").unwrap();
        let e = read_column(&path, "y").unwrap_err();
        assert!(
            matches!(
                e,
                CsvError::NotANumber {
                    line: 3,
                    column: 2,
                    ..
                }
            ),
            "{e}"
        );
        std::fs::write(&path, "a,y\n1\n").unwrap();
        assert!(read_column(&path, "y").is_err(), "short row");
        std::fs::write(&path, b"a,y\n\xff\xfe,1\n").unwrap();
        assert!(read_column(&path, "y").is_err(), "invalid UTF-8");
        std::fs::write(&path, "a,y\n").unwrap();
        assert!(matches!(
            read_column(&path, "y").unwrap_err(),
            CsvError::Empty
        ));
        assert!(matches!(
            read_column(&path, "z").unwrap_err(),
            CsvError::Column { .. }
        ));
    }

    #[test]
    fn nan_is_a_number_here() {
        let rows = read_features("NaN,inf\n".as_bytes(), 2, None).unwrap();
        assert!(rows.values[0].is_nan() && rows.values[1].is_infinite());
    }
}
