//! Unit tests for `verify`; filled in below.
