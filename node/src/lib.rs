//! The Ironcore Backup node daemon (layer 3) — filled by issue 5.
//!
//! It will wire the parts into one process per node: chunkstore, raft and transport, the HTTPS
//! API on TCP 8007, and the services the manuals name (api, scheduler, worker, verifier, gc,
//! sync, notify). It only wires: formats live in `chunkstore`, protocols in `transport` and
//! `raft`, and planners are pure functions it calls.
