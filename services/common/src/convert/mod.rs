//! The conversions between the `backflow.v1` wire messages and the engine's types that both
//! ends of the wire need: the worker encodes a run's counts, timings and rejected rows and the
//! control plane decodes them, and both read a sync's mode, mappings and options. Keeping each
//! pair in one place means the two ends cannot drift apart (a field added to one side only, a
//! default filled differently).
//!
//! Only plain, total conversions live here. Validation that reports in a service's own error
//! type (the control plane's field violations, the worker's lease errors) stays with that
//! service, built on these functions. The orphan rule rules out `From` impls between two
//! foreign types, hence the named functions.

pub mod connector;
pub mod run;
pub mod sync;
pub mod time;
