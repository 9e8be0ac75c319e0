//! SSRF guard for URL-typed fields (filled in by the contract work).
