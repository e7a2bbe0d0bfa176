//! What every Backflow service and the CLI share.

pub mod definitions;
