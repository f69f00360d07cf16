//! Unit tests for `claims`; filled in below.
