//! Building blocks several connectors share, kept apart from the contracts so that
//! [`source`](crate::source) and [`destination`](crate::destination) say only what a
//! connector promises, not how the shipped ones happen to keep those promises.

pub mod bisection;
pub mod sql_source;
pub mod unique_key;

pub use bisection::{AttemptError, Bisected, Bisection};
pub use sql_source::{normalize_query, reader_stream, ReaderMessage};
pub use unique_key::has_unique_key;
