//! Building blocks several connectors share, kept apart from the contracts so that
//! [`source`](crate::source) and [`destination`](crate::destination) say only what a
//! connector promises, not how the shipped ones happen to keep those promises.

pub mod bisection;
pub mod existing_table;
pub mod sql_source;

pub use bisection::{AttemptError, Bisected, Bisection};
pub use existing_table::{check_required_columns_written, has_unique_key};
pub use sql_source::{check_read_only, normalize_query, reader_stream, ReaderMessage};
