//! MongoDB destination over the plain MongoDB protocol.
