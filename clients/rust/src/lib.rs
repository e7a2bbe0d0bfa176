//! Ergonomic Rust client for the backflow.v1 gRPC API.
