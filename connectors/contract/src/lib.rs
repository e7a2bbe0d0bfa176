//! The destination contract suite, one set of cases instantiated per destination.
