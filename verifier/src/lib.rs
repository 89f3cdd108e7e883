//! Verification: canonical row hashing, row-level diff of source against target, lag and drift.
