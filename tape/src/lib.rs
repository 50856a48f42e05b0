//! Tape archive of Ironcore Backup (layer 2) — filled by a later issue.
//!
//! It will own writing cold snapshots (their chunks and indexes, read through `chunkstore`) to
//! tape media, the media catalog format, and restore from tape. It must never decide what is
//! cold (the node asks it to archive) and never bypass the chunk verification of `chunkstore`.
