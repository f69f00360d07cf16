//! Unit tests for `decision`; filled in below.
