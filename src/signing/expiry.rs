//! URL lifetimes and the timestamps GCS V4 signing writes.

use super::SigningError;
use time::{OffsetDateTime, UtcOffset};

/// How long a signed URL or POST policy stays valid: 1 second to 7 days (the GCS V4 limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expiry(u32);

impl Expiry {
    /// The longest lifetime GCS accepts for a V4 signature: 7 days.
    pub const MAX_SECONDS: u32 = 604_800;

    /// Accepts 1..=604800 seconds.
    pub fn from_secs(secs: i64) -> Result<Self, SigningError> {
        if (1..=i64::from(Self::MAX_SECONDS)).contains(&secs) {
            Ok(Self(secs as u32))
        } else {
            Err(SigningError::InvalidExpiry(secs))
        }
    }

    /// The lifetime in seconds.
    pub fn as_secs(self) -> u32 {
        self.0
    }
}

/// The signing time in the two shapes V4 signing uses: `20190201T090000Z` and `20190201`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) at: OffsetDateTime,
    datetime: [u8; 16],
}

impl Stamp {
    pub(crate) fn new(at: OffsetDateTime) -> Result<Self, SigningError> {
        let at = at
            .to_offset(UtcOffset::UTC)
            .replace_nanosecond(0)
            .unwrap_or(at);
        let year = at.year();
        if !(0..=9999).contains(&year) {
            return Err(SigningError::InvalidTime("year must be 0000-9999"));
        }
        let mut datetime = *b"00000000T000000Z";
        put_digits(&mut datetime[0..4], year as u32);
        put_digits(&mut datetime[4..6], u32::from(u8::from(at.month())));
        put_digits(&mut datetime[6..8], u32::from(at.day()));
        put_digits(&mut datetime[9..11], u32::from(at.hour()));
        put_digits(&mut datetime[11..13], u32::from(at.minute()));
        put_digits(&mut datetime[13..15], u32::from(at.second()));
        Ok(Self { at, datetime })
    }

    /// `YYYYMMDDTHHMMSSZ`, the `X-Goog-Date` value.
    pub(crate) fn datetime(&self) -> &str {
        // Only ASCII digits, 'T' and 'Z' are ever written.
        std::str::from_utf8(&self.datetime).unwrap_or_default()
    }

    /// `YYYYMMDD`, the date of the credential scope.
    pub(crate) fn date(&self) -> &str {
        &self.datetime()[..8]
    }
}

fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `2020-01-23T04:35:40Z`: RFC 3339 in UTC with whole seconds, as POST policies and the API write it.
pub fn rfc3339_seconds(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn expiry_bounds() {
        assert!(Expiry::from_secs(0).is_err());
        assert!(Expiry::from_secs(-5).is_err());
        assert_eq!(Expiry::from_secs(1).map(Expiry::as_secs).ok(), Some(1));
        assert_eq!(
            Expiry::from_secs(604_800).map(Expiry::as_secs).ok(),
            Some(604_800)
        );
        assert_eq!(
            Expiry::from_secs(604_801).map_err(|e| e.code()).err(),
            Some("invalid_expiry")
        );
    }

    #[test]
    fn stamps_are_utc() {
        let stamp = Stamp::new(datetime!(2019-02-01 10:00:00.75 +01:00)).expect("stamp");
        assert_eq!(stamp.datetime(), "20190201T090000Z");
        assert_eq!(stamp.date(), "20190201");
        assert_eq!(rfc3339_seconds(stamp.at), "2019-02-01T09:00:00Z");
    }
}
