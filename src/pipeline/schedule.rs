//! `on.schedule`: five-field cron patterns in UTC, and which of their slots are due.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Reads a five-field pattern (`0 3 * * *`), or an alias (`@daily`).
pub fn parse(pattern: &str) -> Result<Cron, String> {
    let fields = pattern.split_whitespace().count();
    if !pattern.trim_start().starts_with('@') && fields != 5 {
        return Err(format!(
            "`{pattern}` has {fields} fields; a schedule is five: minute hour day-of-month \
             month day-of-week (UTC)"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(pattern)
        .map_err(|err| format!("`{pattern}` is not a cron pattern: {err}"))
}

/// The latest slot of `cron` after `after` and at or before `now` (milliseconds since the
/// epoch): the one run a schedule owes now, however many slots were missed.
pub fn latest_slot(cron: &Cron, after: i64, now: i64) -> Option<i64> {
    let now = DateTime::<Utc>::from_timestamp_millis(now)?;
    let slot = cron.find_previous_occurrence(&now, true).ok()?;
    let slot = slot.timestamp_millis();
    (slot > after).then_some(slot)
}

/// The first slot of `cron` after `now`.
pub fn next_slot(cron: &Cron, now: i64) -> Option<i64> {
    let now = DateTime::<Utc>::from_timestamp_millis(now)?;
    cron.find_next_occurrence(&now, false)
        .ok()
        .map(|slot| slot.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn only_the_latest_missed_slot_is_owed() {
        let nightly = parse("0 3 * * *").unwrap();
        let since = at("2026-11-28T12:00:00Z");
        // Three nights missed: one run is owed, for the last of them.
        assert_eq!(
            latest_slot(&nightly, since, at("2026-11-30T10:00:00Z")),
            Some(at("2026-11-30T03:00:00Z"))
        );
        // Once that slot fired, nothing until the next.
        let fired = at("2026-11-30T03:00:00Z");
        assert_eq!(
            latest_slot(&nightly, fired, at("2026-11-30T23:59:00Z")),
            None
        );
        assert_eq!(
            latest_slot(&nightly, fired, at("2026-12-01T03:00:00Z")),
            Some(at("2026-12-01T03:00:00Z"))
        );
        assert_eq!(
            next_slot(&nightly, at("2026-11-30T10:00:00Z")),
            Some(at("2026-12-01T03:00:00Z"))
        );
    }

    #[test]
    fn patterns_are_five_fields() {
        assert!(parse("* * * * *").is_ok());
        assert!(parse("@hourly").is_ok());
        assert!(parse("0 0 3 * * *").unwrap_err().contains("6 fields"));
        assert!(parse("61 * * * *").is_err());
    }
}
