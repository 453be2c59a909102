//! The sizes rule 1 holds every ticket to, before anything in it is read: small
//! enough that a stranger's ticket costs the proxy next to nothing to refuse, large
//! enough for any honest ticket (a typical one is under 400 bytes).

/// Largest ticket accepted (rule 1).
pub const MAX_TICKET_LEN: usize = 4096;
/// Largest decoded header or claims JSON (rule 1).
pub const MAX_JSON_LEN: usize = 2048;
