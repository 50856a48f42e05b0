//! Keeping datastores healthy: the GC (mark, then a sweep on every storage node), verify and
//! repair, prune, and the work a node does on its own chunk directory for them.

pub mod gc;
pub mod jobs;
pub mod mark;
pub mod prune;
pub mod verify;
