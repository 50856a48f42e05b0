//! Multi-process cluster tests of Ironcore Backup (layer 4) — filled by issues 4 and 5.
//!
//! It will start real node processes with their own addresses, inject faults (kill -9, site
//! partitions, one-way isolation, slow links, full disks, corrupted chunks) and check that every
//! acknowledged snapshot stays restorable byte for byte and that no two leaders share a term.
//! Nothing here is linked into the product.
