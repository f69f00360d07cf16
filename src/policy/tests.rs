//! Unit tests for `policy`; filled in below.
