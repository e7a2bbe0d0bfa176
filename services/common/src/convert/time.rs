//! `google.protobuf.Duration` ↔ [`std::time::Duration`], for every interval on the wire
//! (heartbeats, poll waits, schedules, stage timings).

use std::time::Duration;

/// A std duration on the wire, saturating at the largest representable value instead of
/// failing, since no interval Backflow sends comes near it.
pub fn duration_to_proto(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Below one billion, so it fits.
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A wire duration as a std one; `None` for a negative duration, which no Backflow interval
/// can be, so the caller falls back to its default or refuses the field.
pub fn duration_from_proto(d: &prost_types::Duration) -> Option<Duration> {
    Duration::try_from(*d).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_and_negative_ones_are_refused() {
        let d = Duration::from_millis(1_500);
        assert_eq!(duration_from_proto(&duration_to_proto(d)), Some(d));
        let negative = prost_types::Duration {
            seconds: -1,
            nanos: 0,
        };
        assert_eq!(duration_from_proto(&negative), None);
        assert_eq!(
            duration_to_proto(Duration::MAX).seconds,
            i64::MAX,
            "saturates"
        );
    }
}
