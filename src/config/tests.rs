//! Unit tests for `config`; filled in below.
