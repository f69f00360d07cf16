//! Unit tests for `reject`; filled in below.
