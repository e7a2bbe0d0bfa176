//! MySQL and MariaDB source and destination.
