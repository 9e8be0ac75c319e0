//! Strict JSON parsing with limits (filled in by the contract work).
