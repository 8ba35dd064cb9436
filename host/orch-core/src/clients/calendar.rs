//! UTC calendar arithmetic on Unix milliseconds (the proleptic Gregorian
//! calendar), after Howard Hinnant's `days_from_civil` / `civil_from_days`.
//!
//! Every function is total: instants before 1970 work, and the extremes of
//! `i64` saturate instead of overflowing.

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// Days in a 400-year era of the Gregorian calendar.
const ERA_DAYS: i64 = 146_097;

/// Days from 0000-03-01 to 1970-01-01.
const EPOCH_SHIFT: i64 = 719_468;

/// The day (days since 1970-01-01, negative before) that contains `ms`.
pub(super) fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The Unix milliseconds at 00:00 UTC of `day`.
pub(super) fn day_start_ms(day: i64) -> i64 {
    day.saturating_mul(DAY_MS)
}

/// Days since the last Monday (0 on a Monday, 6 on a Sunday).
pub(super) fn days_since_monday(day: i64) -> i64 {
    // 1970-01-01 was a Thursday, three days after a Monday.
    (day + 3).rem_euclid(7)
}

/// The day number of a civil date (`month` 1–12, `day` 1–31).
pub(super) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    // Months counted from March, so that the leap day ends the year.
    let month_from_march = (i64::from(month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * ERA_DAYS + day_of_era - EPOCH_SHIFT
}

/// The civil date `(year, month 1–12, day 1–31)` of a day number.
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + EPOCH_SHIFT;
    let era = days.div_euclid(ERA_DAYS);
    let day_of_era = days - era * ERA_DAYS;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = (month_from_march + 2) % 12 + 1;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // In range by construction: month 1–12, day 1–31.
    (year, month as u32, day as u32)
}

/// `ms` as an RFC 3339 UTC timestamp to the second, e.g.
/// `2024-03-01T00:00:00Z`.
pub(super) fn format_utc(ms: i64) -> String {
    let day = day_of(ms);
    let (year, month, day_of_month) = civil_from_days(day);
    let seconds = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day_of_month:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_leap(year: i64) -> bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    fn month_len(year: i64, month: u32) -> u32 {
        match month {
            2 if is_leap(year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_709_251_199_999), "2024-02-29T23:59:59Z");
        assert_eq!(format_utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn walking_day_by_day_follows_the_gregorian_calendar() {
        // 1600-01-01 to about 2400: every century rule and leap year.
        let first = days_from_civil(1600, 1, 1);
        let mut date = civil_from_days(first);
        assert_eq!(date, (1600, 1, 1));
        for day in first + 1..first + 300_000 {
            let (y, m, d) = date;
            let expected = if d < month_len(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            date = civil_from_days(day);
            assert_eq!(date, expected, "day {day}");
            assert_eq!(days_from_civil(date.0, date.1, date.2), day);
        }
    }

    #[test]
    fn weeks_start_on_monday() {
        // 1970-01-05 and 2024-01-01 were Mondays; 1969-12-28 a Sunday.
        assert_eq!(days_since_monday(days_from_civil(1970, 1, 5)), 0);
        assert_eq!(days_since_monday(days_from_civil(2024, 1, 1)), 0);
        assert_eq!(days_since_monday(days_from_civil(2024, 1, 7)), 6);
        assert_eq!(days_since_monday(days_from_civil(1969, 12, 28)), 6);
        assert_eq!(days_since_monday(0), 3, "1970-01-01 was a Thursday");
    }

    #[test]
    fn extremes_saturate() {
        assert_eq!(day_start_ms(day_of(i64::MIN)), i64::MIN);
        assert_eq!(day_start_ms(day_of(i64::MAX) + 1), i64::MAX);
        assert!(format_utc(i64::MIN).ends_with('Z'));
        assert!(format_utc(i64::MAX).ends_with('Z'));
    }
}
