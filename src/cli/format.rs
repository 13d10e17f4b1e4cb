//! Human-readable sizes and times for tables.

/// `1.2 MB` style (decimal units, as podman prints).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `3 minutes ago` style.
pub fn ago(epoch_seconds: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let delta = now.saturating_sub(epoch_seconds);
    let (n, unit) = match delta {
        0..=59 => return "just now".into(),
        60..=3599 => (delta / 60, "minute"),
        3600..=86_399 => (delta / 3600, "hour"),
        _ => (delta / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Pretty JSON of `value`, for `--json` outputs.
pub fn json<T: serde::Serialize>(value: &T) -> Result<String, crate::cli::errors::CliError> {
    serde_json::to_string_pretty(value).map_err(|e| crate::cli::errors::CliError::Internal {
        what: "the JSON output".into(),
        source: Box::new(e),
    })
}

/// Left-aligned columns separated by two spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::size(999), "999 B");
        assert_eq!(super::size(1_234_567), "1.2 MB");
    }
}
