//! Pure, synchronous transform stages built from configuration: one source transaction in,
//! zero or one out. The same stage chain is a `Row → Row` library call that the verifier reuses,
//! so a transformed target can still be verified.
