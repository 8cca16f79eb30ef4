//! Integration tests of Tally live in `tests/`.
