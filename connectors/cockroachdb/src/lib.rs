//! CockroachDB destination: the PostgreSQL wire protocol with CockroachDB's dialect.
