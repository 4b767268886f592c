//! The one duration convention of the command line: a bare number is seconds
//! (`--timeout 1800`), anything else is humantime (`90s`, `5m`, `250ms`, `1h 30m`).

use std::time::Duration;

/// Parses a command-line duration (clap `value_parser`).
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!(
            "{s:?} is not a duration: give seconds >= 0 (e.g. 30) or a unit (e.g. 500ms, 5m)"
        ));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("{s:?} is not a duration ({e}): give seconds (e.g. 30) or a unit (e.g. 500ms, 5m)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_numbers_are_seconds_and_units_are_humantime() {
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert!(parse("-3").is_err());
        assert!(parse("soon").is_err());
    }
}
