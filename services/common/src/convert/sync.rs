//! A sync's mode, mappings and engine options on the wire. The control plane validates what
//! clients send and the worker what a lease carries, each reporting in its own error type; the
//! conversions and defaults underneath are these, so both read a definition the same way.

use backflow_engine::{Mapping, SyncMode, SyncOptions};
use backflow_proto::v1;

/// Why a wire `SyncMode` has no engine mode; each service words its own error around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncModeError {
    /// `SYNC_MODE_UNSPECIFIED`: the sender left the field unset.
    #[error("is not set (SYNC_MODE_UNSPECIFIED)")]
    Unspecified,
    /// A value this build does not know, e.g. from a newer client.
    #[error("{0} is not a known mode")]
    Unknown(i32),
}

/// The engine's mode of a wire `SyncMode`; an unset or unknown mode is refused rather than
/// guessed, since a wrong mode may delete rows.
pub fn sync_mode_from_proto(mode: i32) -> Result<SyncMode, SyncModeError> {
    match v1::SyncMode::try_from(mode) {
        Ok(v1::SyncMode::Upsert) => Ok(SyncMode::Upsert),
        Ok(v1::SyncMode::Insert) => Ok(SyncMode::Insert),
        Ok(v1::SyncMode::Update) => Ok(SyncMode::Update),
        Ok(v1::SyncMode::Mirror) => Ok(SyncMode::Mirror),
        Ok(v1::SyncMode::Unspecified) => Err(SyncModeError::Unspecified),
        Err(_) => Err(SyncModeError::Unknown(mode)),
    }
}

/// The engine's mode on the wire.
pub fn sync_mode_to_proto(mode: SyncMode) -> v1::SyncMode {
    match mode {
        SyncMode::Upsert => v1::SyncMode::Upsert,
        SyncMode::Insert => v1::SyncMode::Insert,
        SyncMode::Update => v1::SyncMode::Update,
        SyncMode::Mirror => v1::SyncMode::Mirror,
    }
}

/// A column rename from the wire (unchecked: empty names are the caller's to refuse).
pub fn mapping_from_proto(m: &v1::Mapping) -> Mapping {
    Mapping {
        from: m.from.clone(),
        to: m.to.clone(),
    }
}

/// A column rename on the wire.
pub fn mapping_to_proto(m: &Mapping) -> v1::Mapping {
    v1::Mapping {
        from: m.from.clone(),
        to: m.to.clone(),
    }
}

/// The engine options of a wire `SyncOptions`, every unset field taking
/// [`SyncOptions::default`]'s value so an old sender gets today's defaults. Values are not
/// range-checked here: each caller refuses out-of-range values in its own error type.
pub fn sync_options_from_proto(o: &v1::SyncOptions) -> SyncOptions {
    let defaults = SyncOptions::default();
    SyncOptions {
        allow_empty_source: o.allow_empty_source.unwrap_or(defaults.allow_empty_source),
        max_delete_fraction: o
            .max_delete_fraction
            .unwrap_or(defaults.max_delete_fraction),
        max_rejected_rows: o.max_rejected_rows.map_or(defaults.max_rejected_rows, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        }),
        batch_size: o.batch_size.map_or(defaults.batch_size, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        }),
    }
}

/// The engine options on the wire, every field set. `max_attempts` is not an engine option
/// (the control plane retries runs), so it stays unset for the caller to fill in.
pub fn sync_options_to_proto(o: &SyncOptions) -> v1::SyncOptions {
    v1::SyncOptions {
        allow_empty_source: Some(o.allow_empty_source),
        max_delete_fraction: Some(o.max_delete_fraction),
        max_rejected_rows: Some(o.max_rejected_rows as u64),
        batch_size: Some(u32::try_from(o.batch_size).unwrap_or(u32::MAX)),
        max_attempts: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_round_trips_and_unset_or_unknown_modes_are_refused() {
        for mode in [
            SyncMode::Upsert,
            SyncMode::Insert,
            SyncMode::Update,
            SyncMode::Mirror,
        ] {
            assert_eq!(
                sync_mode_from_proto(sync_mode_to_proto(mode).into()),
                Ok(mode)
            );
        }
        assert_eq!(
            sync_mode_from_proto(v1::SyncMode::Unspecified.into()),
            Err(SyncModeError::Unspecified)
        );
        assert_eq!(sync_mode_from_proto(42), Err(SyncModeError::Unknown(42)));
    }

    #[test]
    fn unset_options_take_the_engine_defaults_and_set_ones_round_trip() {
        assert_eq!(
            sync_options_from_proto(&v1::SyncOptions::default()),
            SyncOptions::default()
        );
        let options = SyncOptions {
            allow_empty_source: true,
            max_delete_fraction: 0.1,
            max_rejected_rows: 7,
            batch_size: 100,
        };
        assert_eq!(
            sync_options_from_proto(&sync_options_to_proto(&options)),
            options
        );
    }
}
