//! Durations as pipelines write them. Concourse reads `timeout:` and friends with Go's
//! `time.ParseDuration`, so its users write `90s`, `1h30m`, `1.5h`, `500ms`: we accept exactly
//! that grammar, and reject what it rejects (a bare number other than `0`, an unknown unit,
//! anything over Go's limit of about 292 years). Hand-written: no crate implements Go's grammar
//! (humantime accepts words and spaces Go refuses, and rejects `1.5h`).

use std::time::Duration;

/// Go's limit: an `int64` of nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a positive duration in Go's grammar; `None` for a malformed, zero or negative one,
/// so callers can name the field.
pub fn parse(s: &str) -> Option<Duration> {
    match parse_go(s) {
        Ok(nanos) if nanos > 0 => Some(Duration::from_nanos(nanos as u64)),
        _ => None,
    }
}

/// Go's `time.ParseDuration`: the signed number of nanoseconds, or why not.
pub fn parse_go(original: &str) -> Result<i64, String> {
    let invalid = || format!("invalid duration {original:?}");
    let mut s = original;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // The integer part; overflow is an error.
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u128 = 0;
        for c in s[..digits].bytes() {
            whole = whole * 10 + u128::from(c - b'0');
            if whole > MAX_NANOS + 1 {
                return Err(invalid());
            }
        }
        let had_whole = digits > 0;
        s = &s[digits..];
        // The fraction; digits past what fits are ignored, as Go does.
        let (mut fraction, mut scale, mut had_fraction) = (0u128, 1f64, false);
        if let Some(rest) = s.strip_prefix('.') {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            had_fraction = digits > 0;
            let mut overflow = false;
            for c in rest[..digits].bytes() {
                if overflow {
                    continue;
                }
                let next = fraction * 10 + u128::from(c - b'0');
                if next > MAX_NANOS + 1 {
                    overflow = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            s = &rest[digits..];
        }
        if !had_whole && !had_fraction {
            return Err(invalid());
        }
        let unit_len = s
            .bytes()
            .take_while(|c| *c != b'.' && !c.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(format!("missing unit in duration {original:?}"));
        }
        let unit: u128 = match &s[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            other => return Err(format!("unknown unit {other:?} in duration {original:?}")),
        };
        s = &s[unit_len..];
        let limit = MAX_NANOS + 1;
        if whole > limit / unit {
            return Err(invalid());
        }
        let mut value = whole * unit;
        if fraction > 0 {
            value += (fraction as f64 * (unit as f64 / scale)) as u128;
            if value > limit {
                return Err(invalid());
            }
        }
        total += value;
        if total > limit {
            return Err(invalid());
        }
    }
    if negative {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > MAX_NANOS {
        return Err(invalid());
    }
    Ok(total as i64)
}

/// Go's `Duration.String()` for whole seconds and up (`15m0s`, `1h30m0s`, `90ms`), how
/// Concourse users see durations printed.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        // Under a second Go picks one unit with a fraction; we keep ms with a fraction.
        let ms = nanos as f64 / 1e6;
        return format!("{}ms", trim(ms));
    }
    let secs = d.as_secs();
    let frac = d.subsec_nanos();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let seconds = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{}s", trim(s as f64 + f64::from(frac) / 1e9))
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `now + d`, saturating at a far future instead of panicking on overflow.
pub fn deadline_after(d: Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's own table (src/time/time_test.go, parseDurationTests), in nanoseconds.
    #[test]
    fn go_parse_duration_table() {
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("-5s", -5_000_000_000),
            ("+5s", 5_000_000_000),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5_000_000_000),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.0s", 1_000_000_000),
            ("1.00s", 1_000_000_000),
            ("1.004s", 1_004_000_000),
            ("1.0040s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12\u{b5}s", 12_000),
            ("12\u{3bc}s", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14_000_000_000),
            ("15m", 900_000_000_000),
            ("16h", 57_600_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("10.5s4m", 250_500_000_000),
            ("-2m3.4s", -123_400_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 1_200_000_000_000),
            ("9007199254740993ns", 9_007_199_254_740_993),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("0.100000000000000000000h", 360_000_000_000),
            ("0.830103483285477580700h", 2_988_372_539_827),
            ("1.5h", 5_400_000_000_000),
            ("500ms", 500_000_000),
            ("0s", 0),
            ("1h30m", 5_400_000_000_000),
        ];
        for (s, want) in ok {
            assert_eq!(parse_go(s), Ok(*want), "{s}");
        }
        let bad = [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "\u{85}\u{85}",
            "\u{ffff}",
            "9223372036854775808ns",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            "-9223372036854775809ns",
            "1 hour",
            "10 minutes",
            "1h 30m",
            "1H",
            "307445734561825861m",
            "5x",
            "10",
        ];
        for s in bad {
            assert!(parse_go(s).is_err(), "{s:?} must be refused");
        }
    }

    #[test]
    fn parse_keeps_positive_durations_only() {
        assert_eq!(parse("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("0s"), None);
        assert_eq!(parse("-1s"), None);
        assert_eq!(parse("307445734561825861m"), None);
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(format(Duration::from_secs(900)), "15m0s");
        assert_eq!(format(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format(Duration::from_secs(3)), "3s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        let far = deadline_after(Duration::MAX);
        assert!(far > std::time::Instant::now());
    }
}
