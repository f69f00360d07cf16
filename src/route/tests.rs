//! Unit tests for `route`; filled in below.
