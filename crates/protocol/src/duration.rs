//! Durations as pipelines write them: `90s`, `10m`, `1h`, `1h30m`.

use std::time::Duration;

/// Parses `90s`, `10m`, `1h30m`; `None` for anything else (a bare number, zero, a unit we do
/// not know), so callers can name the field.
pub fn parse(s: &str) -> Option<Duration> {
    let (mut total, mut number) = (0u64, String::new());
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total += match c {
            's' => n,
            'm' => n * 60,
            'h' => n * 3600,
            _ => return None,
        };
    }
    (number.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_concourse_ones() {
        assert_eq!(parse("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("10"), None);
        assert_eq!(parse("5x"), None);
        assert_eq!(parse("0s"), None);
    }
}
