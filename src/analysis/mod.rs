//! Analysis: numerical core (in progress).
