//! Unit tests for `jwks`; filled in below.
