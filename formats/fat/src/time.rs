//! FAT timestamps.
//!
//! FAT stores local time with no zone: a date (years since 1980, month, day), a time
//! with 2-second resolution, and for creation a 10-millisecond count (0..=199) that
//! refines the seconds. This crate exposes the fields as stored ([`FatTime`]) and,
//! because the volume does not say which zone its writer used, converts to Unix
//! time by **treating the stored value as UTC**. That is what the pipeline needs
//! for stable, reproducible reports; a caller that knows the writer's zone can
//! apply the offset itself.

/// A timestamp as stored in a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FatTime {
    /// Bits 15–9 years since 1980, 8–5 month, 4–0 day.
    pub date: u16,
    /// Bits 15–11 hours, 10–5 minutes, 4–0 seconds / 2. Zero for access dates.
    pub time: u16,
    /// Creation time only: 10 ms units, 0..=199, added to the seconds.
    pub centis: u8,
}

/// A decoded FAT timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub millis: u16,
}

impl FatTime {
    /// True when no time is recorded (date 0, as mkfs and some writers leave it).
    pub fn is_unset(&self) -> bool {
        self.date == 0
    }

    /// The stored fields, or `None` if any is out of range (month 0 or 13,
    /// day 0, hour 24, minute 60, seconds 60 or more, centis 200 or more).
    pub fn decode(&self) -> Option<DateTime> {
        let day = (self.date & 0x1F) as u8;
        let month = ((self.date >> 5) & 0x0F) as u8;
        let year = 1980 + (self.date >> 9);
        let second2 = (self.time & 0x1F) as u8 * 2;
        let minute = ((self.time >> 5) & 0x3F) as u8;
        let hour = (self.time >> 11) as u8;
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second2 > 59
            || self.centis > 199
        {
            return None;
        }
        let extra = self.centis as u16 * 10;
        let second = second2 + (extra / 1000) as u8;
        Some(DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            millis: extra % 1000,
        })
    }

    /// Seconds and nanoseconds since 1970-01-01T00:00:00Z, reading the stored local
    /// time as UTC (see the module doc). `None` if unset or invalid.
    pub fn to_unix(&self) -> Option<(i64, u32)> {
        if self.is_unset() {
            return None;
        }
        let d = self.decode()?;
        let days = days_from_civil(d.year as i64, d.month as i64, d.day as i64);
        let secs = days * 86_400 + d.hour as i64 * 3600 + d.minute as i64 * 60 + d.second as i64;
        Some((secs, d.millis as u32 * 1_000_000))
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(y: u16, mo: u16, d: u16, h: u16, mi: u16, s: u16, centis: u8) -> FatTime {
        FatTime {
            date: ((y - 1980) << 9) | (mo << 5) | d,
            time: (h << 11) | (mi << 5) | (s / 2),
            centis,
        }
    }

    #[test]
    fn converts_as_utc() {
        // 2025-01-01T00:00:00Z, the fixtures' epoch.
        assert_eq!(
            t(2025, 1, 1, 0, 0, 0, 0).to_unix(),
            Some((1_735_689_600, 0))
        );
        assert_eq!(t(1980, 1, 1, 0, 0, 0, 0).to_unix(), Some((315_532_800, 0)));
        // 2024-02-29T23:59:58.990Z: leap day, odd second via the 10 ms count.
        assert_eq!(
            t(2024, 2, 29, 23, 59, 58, 199).to_unix(),
            Some((1_709_251_199, 990_000_000))
        );
        assert_eq!(t(2023, 2, 29, 0, 0, 0, 0).to_unix(), None);
        assert_eq!(FatTime::default().to_unix(), None);
        assert_eq!(
            FatTime {
                date: 0x21,
                time: 24 << 11,
                centis: 0
            }
            .decode(),
            None
        );
    }
}
